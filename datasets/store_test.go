package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lbtune/lbtune/collector"
)

// t0 is the fixed start time of the synthetic snapshots.
var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// synth returns a realistic snapshot of source at t with pools x servers
// members whose counters grow with seq.
func synth(source string, t time.Time, pools, servers int, seq uint64) collector.Snapshot {
	sn := collector.Snapshot{Time: t, Source: source}
	for p := 0; p < pools; p++ {
		pl := collector.Pool{Name: fmt.Sprintf("pool%03d", p), Queue: float64(seq % 3)}
		for s := 0; s < servers; s++ {
			req := seq*100 + uint64(s)*7
			p95 := 12.5 + float64(s)
			pl.Servers = append(pl.Servers, collector.Server{
				Name:    fmt.Sprintf("srv%04d", s),
				Address: fmt.Sprintf("10.0.%d.%d:8080", p, s%250),
				Weight:  1 + s%5,
				State:   collector.StateUp,
				Counters: collector.Counters{
					Requests: req, BytesIn: req * 310, BytesOut: req * 2048,
					Responses: [5]uint64{0, req - req/50, 0, req / 100, req / 100}, Errors: seq / 10,
					LatencySumMs: req * 23,
				},
				Gauges: collector.Gauges{Active: float64(s % 9), AvgResponseMs: 23.4, P95Ms: &p95},
			})
		}
		sn.Pools = append(sn.Pools, pl)
	}
	return sn
}

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func collect(t *testing.T, s *Store, source string, from, to time.Time) []collector.Snapshot {
	t.Helper()
	var out []collector.Snapshot
	if err := s.Range(source, from, to, func(sn collector.Snapshot) error {
		out = append(out, sn)
		return nil
	}); err != nil {
		t.Fatalf("Range: %v", err)
	}
	return out
}

func TestStoreRange(t *testing.T) {
	s, _ := openTemp(t)
	var all []collector.Snapshot
	// 600 snapshots per source (more than rangeChunk), two sources interleaved,
	// appended out of order in batches.
	for i := 599; i >= 0; i -= 3 {
		var batch []collector.Snapshot
		for j := i; j > i-3 && j >= 0; j-- {
			batch = append(batch, synth("a", t0.Add(time.Duration(j)*time.Second), 2, 3, uint64(j)),
				synth("b", t0.Add(time.Duration(j)*time.Second+time.Millisecond), 1, 2, uint64(j)))
		}
		if err := s.Append(batch...); err != nil {
			t.Fatalf("Append: %v", err)
		}
		all = append(all, batch...)
	}
	tests := []struct {
		name     string
		source   string
		from, to time.Time
		want     int
		first    time.Time
	}{
		{"all", "", time.Time{}, time.Time{}, 1200, t0},
		{"source a", "a", time.Time{}, time.Time{}, 600, t0},
		{"source b", "b", time.Time{}, time.Time{}, 600, t0.Add(time.Millisecond)},
		{"unknown source", "c", time.Time{}, time.Time{}, 0, time.Time{}},
		// [10s, 20s): a at 10..19 and b at 10.001..19.001 -> 20.
		{"window", "", t0.Add(10 * time.Second), t0.Add(20 * time.Second), 20, t0.Add(10 * time.Second)},
		// from is inclusive, to exclusive: b at 10.001 is in, a at 11 is out.
		{"half open", "", t0.Add(10 * time.Second), t0.Add(11 * time.Second), 2, t0.Add(10 * time.Second)},
		{"from only", "a", t0.Add(590 * time.Second), time.Time{}, 10, t0.Add(590 * time.Second)},
		{"to only", "b", time.Time{}, t0.Add(5 * time.Second), 5, t0.Add(time.Millisecond)},
		{"empty window", "", t0.Add(time.Hour), t0.Add(2 * time.Hour), 0, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := collect(t, s, tc.source, tc.from, tc.to)
			if len(got) != tc.want {
				t.Fatalf("got %d snapshots, want %d", len(got), tc.want)
			}
			if len(got) > 0 && !got[0].Time.Equal(tc.first) {
				t.Errorf("first at %s, want %s", got[0].Time, tc.first)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Time.Before(got[i-1].Time) {
					t.Fatalf("not in time order at %d: %s after %s", i, got[i].Time, got[i-1].Time)
				}
				if tc.source != "" && got[i].Source != tc.source {
					t.Fatalf("source %q in range of %q", got[i].Source, tc.source)
				}
			}
		})
	}
	// Stored snapshots come back exactly (byte-equal JSON).
	byKey := map[string]string{}
	for _, sn := range all {
		byKey[sn.Source+sn.Time.String()] = mustJSON(t, sn)
	}
	for _, sn := range collect(t, s, "", time.Time{}, time.Time{}) {
		if got, want := mustJSON(t, sn), byKey[sn.Source+sn.Time.String()]; got != want {
			t.Fatalf("snapshot %s at %s changed:\n got %s\nwant %s", sn.Source, sn.Time, got, want)
		}
	}
	srcs, err := s.Sources()
	if err != nil || !reflect.DeepEqual(srcs, []string{"a", "b"}) {
		t.Fatalf("Sources = %v, %v; want [a b]", srcs, err)
	}
}

func TestStoreAppendValidatesAndReplaces(t *testing.T) {
	s, _ := openTemp(t)
	good := synth("a", t0, 1, 2, 1)
	bad := synth("a", t0.Add(time.Second), 1, 2, 2)
	bad.Pools[0].Servers[1].State = "sleeping"
	if err := s.Append(good, bad); err == nil {
		t.Fatal("Append accepted an invalid snapshot")
	}
	if n := len(collect(t, s, "", time.Time{}, time.Time{})); n != 0 {
		t.Fatalf("a failed batch stored %d snapshots, want 0", n)
	}
	if err := s.Append(collector.Snapshot{Source: "a"}); err == nil {
		t.Fatal("Append accepted a snapshot without time")
	}
	// Same time and source twice: replaced, counted once.
	again := synth("a", t0, 1, 2, 7)
	if err := s.Append(good); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(again); err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, "a", time.Time{}, time.Time{})
	if len(got) != 1 || got[0].Pools[0].Servers[0].Counters.Requests != 700 {
		t.Fatalf("after replacing: %d snapshots, want 1 with requests 700", len(got))
	}
	counts, err := s.Count()
	if err != nil || counts["a"] != 1 {
		t.Fatalf("Count = %v, %v; want a:1", counts, err)
	}
}

func TestStorePrune(t *testing.T) {
	s, _ := openTemp(t)
	for i := 0; i < 50; i++ {
		if err := s.Append(synth("a", t0.Add(time.Duration(i)*time.Minute), 1, 1, uint64(i)),
			synth("b", t0.Add(time.Duration(i)*time.Minute), 1, 1, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		before  time.Time
		deleted int
		left    int
	}{
		{"nothing older", t0, 0, 100},
		{"first ten minutes", t0.Add(10 * time.Minute), 20, 80},
		{"again is a no-op", t0.Add(10 * time.Minute), 0, 80},
		{"everything", t0.Add(time.Hour), 80, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.Prune(tc.before)
			if err != nil || n != tc.deleted {
				t.Fatalf("Prune = %d, %v; want %d", n, err, tc.deleted)
			}
			if got := len(collect(t, s, "", time.Time{}, time.Time{})); got != tc.left {
				t.Fatalf("%d left, want %d", got, tc.left)
			}
		})
	}
	if srcs, err := s.Sources(); err != nil || len(srcs) != 0 {
		t.Fatalf("Sources after pruning all = %v, %v; want none", srcs, err)
	}
}

func TestStoreBuckets(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Put(BucketModels, "gmm/v1", []byte("model-bytes")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(BucketModels, "gmm/v1")
	if err != nil || string(v) != "model-bytes" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if _, err := s.Get(BucketPolicies, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}
	if err := s.Put(Bucket("bogus"), "k", nil); !errors.Is(err, ErrBucket) {
		t.Fatalf("Put to unknown bucket: %v, want ErrBucket", err)
	}
	keys, err := s.Keys(BucketModels)
	if err != nil || !reflect.DeepEqual(keys, []string{"gmm/v1"}) {
		t.Fatalf("Keys = %v, %v", keys, err)
	}
	// Records at the same nanosecond do not collide and keep insertion order.
	for i := 0; i < 5; i++ {
		if err := s.AppendRecord(BucketDecisions, t0, []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AppendRecord(BucketDecisions, t0.Add(-time.Second), []byte("early")); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = s.RangeRecords(BucketDecisions, time.Time{}, time.Time{}, func(ts time.Time, v []byte) error {
		got = append(got, ts.Sub(t0).String()+"="+string(v))
		return nil
	})
	want := []string{"-1s=early", "0s=a", "0s=b", "0s=c", "0s=d", "0s=e"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("RangeRecords = %v, %v; want %v", got, err, want)
	}
	if n, err := s.PruneRecords(BucketDecisions, t0); err != nil || n != 1 {
		t.Fatalf("PruneRecords = %d, %v; want the one early record", n, err)
	}
	stop := errors.New("stop")
	n := 0
	err = s.RangeRecords(BucketDecisions, t0, time.Time{}, func(time.Time, []byte) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("callback error: got %v after %d calls, want stop after 1", err, n)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(foreign, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
	_ = db.Close()

	future := filepath.Join(dir, "future.db")
	s, err := Open(future)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(schemaBucket).Put(schemaKey, []byte("99")) })
	_ = s.Close()

	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte("this is not a bbolt file, it is text and long enough to read a page header from it"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		readOnly bool
		want     error // nil: any error
	}{
		{"foreign bbolt file", foreign, false, ErrSchema},
		{"foreign bbolt file read-only", foreign, true, ErrSchema},
		{"future schema", future, false, ErrSchema},
		{"future schema read-only", future, true, ErrSchema},
		{"not bbolt", garbage, true, nil},
		{"missing read-only", filepath.Join(dir, "missing.db"), true, os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := Open
			if tc.readOnly {
				open = OpenReadOnly
			}
			s, err := open(tc.path)
			if err == nil {
				_ = s.Close()
				t.Fatal("opened without error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Append(synth("a", t0, 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r1, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := OpenReadOnly(path) // readers share the file
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if got := len(collect(t, r2, "", time.Time{}, time.Time{})); got != 1 {
		t.Fatalf("read-only store has %d snapshots, want 1", got)
	}
	if err := r1.Append(synth("a", t0.Add(time.Second), 1, 1, 2)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append on read-only: %v, want ErrReadOnly", err)
	}
	if err := r1.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyOldStore opens, read-only, a store that has only the schema
// bucket (as one made before later buckets existed would): reads see empty
// buckets instead of failing.
func TestReadOnlyOldStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(schemaBucket)
		if err != nil {
			return err
		}
		return b.Put(schemaKey, []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	s, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := collect(t, s, "", time.Time{}, time.Time{}); len(got) != 0 {
		t.Fatalf("Range: %d snapshots", len(got))
	}
	if err := s.RangeRecords(BucketEvents, time.Time{}, time.Time{}, func(time.Time, []byte) error { return nil }); err != nil {
		t.Fatalf("RangeRecords: %v", err)
	}
	if _, err := s.Get(BucketModels, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
	if keys, err := s.Keys(BucketPolicies); err != nil || len(keys) != 0 {
		t.Fatalf("Keys = %v, %v", keys, err)
	}
	if srcs, err := s.Sources(); err != nil || len(srcs) != 0 {
		t.Fatalf("Sources = %v, %v", srcs, err)
	}
	if _, err := s.Keys(Bucket("bogus")); !errors.Is(err, ErrBucket) {
		t.Fatalf("Keys of an undeclared bucket: %v, want ErrBucket", err)
	}
	if _, err := Summarize(path); err != nil {
		t.Fatalf("Summarize: %v", err)
	}
}

func TestLocked(t *testing.T) {
	_, path := openTemp(t) // held open for writing until cleanup
	for _, ro := range []bool{false, true} {
		s, err := OpenWith(path, Options{ReadOnly: ro, LockTimeout: 50 * time.Millisecond})
		if err == nil {
			_ = s.Close()
			t.Fatalf("read-only=%v: opened a store another writer holds", ro)
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("read-only=%v: error %v, want ErrLocked", ro, err)
		}
	}
}

// TestAppendFillsPages: snapshots of many sources appended in time order
// (as the collector loops write them, several per commit) and records
// fill the leaf pages to ~appendFill, not bbolt's default half.
func TestAppendFillsPages(t *testing.T) {
	s, _ := openTemp(t)
	for i := range 300 {
		at := t0.Add(time.Duration(i) * time.Second)
		var batch []collector.Snapshot
		for src := range 20 {
			batch = append(batch, synth(fmt.Sprintf("sim:p%d", src), at.Add(time.Duration(src)*time.Millisecond), 1, 5, uint64(i)))
		}
		if err := s.Append(batch...); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendRecord(BucketDecisions, at, bytes.Repeat([]byte("d"), 300)); err != nil {
			t.Fatal(err)
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{snapshotsBucket, []byte(BucketDecisions)} {
			st := tx.Bucket(name).Stats()
			if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); fill < 0.8 {
				t.Errorf("bucket %s: leaf pages %.0f%% full (%d of %d bytes in %d pages), want >= 80%%", name, 100*fill, st.LeafInuse, st.LeafAlloc, st.LeafPageN)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
