package datasets

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// damagedContents is what buildDamageStore writes.
type damagedContents struct {
	snaps   []collector.Snapshot
	records map[Bucket]int // AppendRecord/Put entries per bucket
}

// buildDamageStore writes a store of 2 sources x 1500 snapshots (1 pool of
// 4 servers, 1 s apart), 300 decisions, 300 rewards, 40 events, 3 policy
// versions, a model and a meta record, spread over a few hundred pages.
func buildDamageStore(t testing.TB, path string) damagedContents {
	t.Helper()
	s, err := OpenWith(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var c damagedContents
	for i := 0; i < 1500; i += 100 {
		var batch []collector.Snapshot
		for j := i; j < i+100; j++ {
			at := t0.Add(time.Duration(j) * time.Second)
			batch = append(batch, synth("a", at, 1, 4, uint64(j)), synth("b", at, 1, 4, uint64(j)))
		}
		if err := s.Append(batch...); err != nil {
			t.Fatal(err)
		}
		c.snaps = append(c.snaps, batch...)
	}
	c.records = map[Bucket]int{}
	for i := 0; i < 300; i++ {
		at := t0.Add(time.Duration(i) * 5 * time.Second)
		for _, b := range []Bucket{BucketDecisions, BucketRewards} {
			if err := s.AppendRecord(b, at, fmt.Appendf(nil, `{"pool":"web","seq":%d,"why":"steady load, weights kept"}`, i)); err != nil {
				t.Fatal(err)
			}
			c.records[b]++
		}
	}
	for i := 0; i < 40; i++ {
		if err := s.AppendEvent(Event{Time: t0.Add(time.Duration(i) * time.Minute), Kind: "weight", Pool: "web", Server: "s1", Value: float64(i)}); err != nil {
			t.Fatal(err)
		}
		c.records[BucketEvents]++
	}
	for i := 0; i < 3; i++ {
		if _, err := s.PutPolicy("web", bytes.Repeat([]byte(`{"q":[1,2,3]}`), 200)); err != nil {
			t.Fatal(err)
		}
		c.records[BucketPolicies]++
	}
	if err := s.Put(BucketModels, "gmm/v000001", bytes.Repeat([]byte("m"), 9000)); err != nil { // overflow pages
		t.Fatal(err)
	}
	c.records[BucketModels]++
	if err := s.Put(BucketMeta, "pool/web", []byte(`{"mode":"auto"}`)); err != nil {
		t.Fatal(err)
	}
	c.records[BucketMeta]++
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return c
}

// pagesOf lists the in-use branch and leaf pages of the pristine file at
// path, by bucket name ("root" for the top level) and page type, plus
// "freelist" and "hwm" (the page count, one past the last page used).
func pagesOf(t *testing.T, path string) map[string][]uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	raw, err := openRaw(f, st.Size(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]uint64{}
	w := &walker{f: raw, reached: make([]bool, raw.meta.hwm), page: func(path []string, id uint64, flags uint16) {
		kind := "leaf"
		if flags == pageBranch {
			kind = "branch"
		}
		name := bucketName(path) + " " + kind
		out[name] = append(out[name], id)
	}}
	w.bucket(nil, raw.meta.root, 0, nil)
	if w.problemCount != 0 {
		t.Fatalf("pristine store: %v", w.problems)
	}
	out["freelist"] = []uint64{raw.meta.freelist}
	out["hwm"] = []uint64{raw.meta.hwm}
	return out
}

// copyFile copies src to a new file in dir and returns its path.
func copyFile(t *testing.T, src, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// scribble writes n bytes from rng over path at off.
func scribble(t *testing.T, path string, off int64, n int, rng *rand.Rand) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// exercise runs every Store call on the damaged store at path and fails
// the test if one panics or returns an error that is not ErrCorrupt (or
// ErrNotFound from Get). It returns whether the check found damage and
// the snapshots read back (nil if reading failed).
func exercise(t *testing.T, path string) (damaged bool, snaps []collector.Snapshot) {
	t.Helper()
	ok := func(what string, err error) bool {
		t.Helper()
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want nil or ErrCorrupt", what, err)
		}
		if err != nil && !strings.Contains(err.Error(), "lbtune dataset recover "+path) {
			t.Errorf("%s: error %q does not say how to recover", what, err)
		}
		return err == nil
	}
	if _, err := VerifyPath(path); !ok("VerifyPath", err) {
		damaged = true
	}
	s, err := Open(path)
	if !ok("Open", err) {
		if !damaged {
			t.Errorf("Open failed (%v) but the check found nothing", err)
		}
		return true, nil
	}
	defer func() { ok("Close", s.Close()) }()
	if _, err := s.Verify(); !ok("Verify", err) {
		damaged = true
	}
	if ok("Range", s.Range("", time.Time{}, time.Time{}, func(sn collector.Snapshot) error {
		snaps = append(snaps, sn)
		return nil
	})) == false {
		snaps = nil
	}
	for _, b := range userBuckets {
		ok("RangeRecords "+string(b), s.RangeRecords(b, time.Time{}, time.Time{}, func(time.Time, []byte) error { return nil }))
		_, err := s.Keys(b)
		ok("Keys "+string(b), err)
	}
	_, err = s.Get(BucketMeta, "pool/web")
	if !errors.Is(err, ErrNotFound) {
		ok("Get", err)
	}
	_, _, err = s.LatestPolicy("web")
	if !errors.Is(err, ErrNotFound) {
		ok("LatestPolicy", err)
	}
	_, err = s.Count()
	ok("Count", err)
	_, err = s.Sources()
	ok("Sources", err)
	_, err = s.BucketSizes()
	ok("BucketSizes", err)
	ok("Append", s.Append(synth("c", t0.Add(time.Hour), 1, 2, 1)))
	ok("AppendRecord", s.AppendRecord(BucketDecisions, t0.Add(time.Hour), []byte(`{}`)))
	_, err = s.Prune(t0.Add(10 * time.Second))
	ok("Prune", err)
	if s.Failed() != nil {
		damaged = true
	}
	return damaged, snaps
}

// TestDamagedStore damages a store in the ways of issue 15 (truncation,
// 256 random bytes) and checks that no call panics, every error is
// ErrCorrupt with the recovery command, damage to the header of a page in
// use or to snapshot values is always noticed, and a store the check finds
// sound reads back what was written.
func TestDamagedStore(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	want := buildDamageStore(t, pristine)
	st, err := os.Stat(pristine)
	if err != nil {
		t.Fatal(err)
	}
	size := st.Size()
	const ps = 4096
	pages := pagesOf(t, pristine)
	first := func(kind string) int64 {
		ids := pages[kind]
		if len(ids) == 0 {
			t.Fatalf("no %s page in the test store (have %v)", kind, pages)
		}
		return int64(ids[len(ids)/2]) * ps
	}
	type tc struct {
		name string
		// damage changes the file at path.
		damage func(t *testing.T, path string)
		// mustNotice: the check must report damage.
		mustNotice bool
	}
	truncate := func(n int64) func(*testing.T, string) {
		return func(t *testing.T, path string) {
			if err := os.Truncate(path, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := func(off int64, seed uint64) func(*testing.T, string) {
		return func(t *testing.T, path string) { scribble(t, path, off, 256, rand.New(rand.NewPCG(seed, 7))) }
	}
	tests := []tc{
		{"truncated to half", truncate(size / 2), true},
		{"truncated to 3 pages", truncate(3 * ps), true},
		// bbolt's file grows ahead of its pages: cut into the last page
		// used, and just after it (no damage).
		{"truncated mid-page", truncate(int64(pages["hwm"][0])*ps - ps/2), true},
		{"spare pages cut", truncate(int64(pages["hwm"][0]) * ps), false},
		{"freelist page header", at(int64(pages["freelist"][0])*ps, 1), true},
		{"root page header", at(first("root leaf"), 2), true},
		{"snapshots branch page header", at(first("snapshots branch"), 3), true},
		{"snapshots leaf page header", at(first("snapshots leaf"), 4), true},
		{"snapshot values", at(first("snapshots leaf")+ps/4, 5), true},
		{"decisions leaf page header", at(first("decisions leaf"), 6), true},
	}
	// 256 random bytes at random offsets past the meta pages (a damaged
	// meta page makes bbolt use the other one: an older, sound state).
	for seed := uint64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		for i := 0; i < 3; i++ {
			off := 2*ps + rng.Int64N(size-2*ps-256)
			tests = append(tests, tc{fmt.Sprintf("random seed %d at %d", seed, off), at(off, seed*100+uint64(i)), false})
		}
	}
	noticed := 0
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := copyFile(t, pristine, dir, fmt.Sprintf("case%d.db", i))
			tc.damage(t, path)
			damaged, snaps := exercise(t, path)
			if damaged {
				noticed++
			}
			if tc.mustNotice && !damaged {
				t.Fatal("the check did not notice the damage")
			}
			if !damaged && !reflect.DeepEqual(snaps, want.snaps) {
				t.Errorf("the check found nothing, but %d snapshots read back differ from the %d written", len(snaps), len(want.snaps))
			}
		})
	}
	t.Logf("damage noticed in %d of %d cases", noticed, len(tests))
}

// TestFailedStoreRefuses damages the file under an open store: the first
// call that meets the bad page gives ErrCorrupt, every later call the same
// error without reading the file, and Close still releases the lock.
func TestFailedStoreRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	buildDamageStore(t, path)
	pages := pagesOf(t, path)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// Make the snapshots bucket's branch page a freelist page under bbolt's map.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x10, 0}, int64(pages["snapshots branch"][0])*4096+8); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	err = s.Range("", time.Time{}, time.Time{}, func(collector.Snapshot) error { return nil })
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Range over a damaged page: %v, want ErrCorrupt", err)
	}
	if !errors.Is(s.Failed(), ErrCorrupt) {
		t.Fatalf("Failed() = %v after the panic, want ErrCorrupt", s.Failed())
	}
	// Calls that would not touch the bad page refuse too.
	calls := map[string]error{
		"Get":    func() error { _, err := s.Get(BucketMeta, "pool/web"); return err }(),
		"Append": s.Append(synth("a", t0.Add(time.Hour), 1, 1, 1)),
		"Count":  func() error { _, err := s.Count(); return err }(),
		"Check":  s.Check(),
	}
	for name, err := range calls {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), s.Failed().Error()) {
			t.Errorf("%s after failure: %v, want the store's ErrCorrupt", name, err)
		}
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 3*closeWait {
		t.Errorf("Close took %s", d)
	}
	// The lock is released: a read-only open does not wait for it.
	if _, err := OpenReadOnly(path); errors.Is(err, ErrLocked) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestOpenEmptyFile: a 0-byte file is initialised as a new store, with a
// warning in the log; read-only it is refused.
func TestOpenEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(path); !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "empty (0 bytes)") {
		t.Errorf("OpenReadOnly of an empty file: %v, want ErrSchema naming it empty", err)
	}
	var logs bytes.Buffer
	s, err := OpenWith(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "store file is empty (0 bytes): initialising a new store") || !strings.Contains(got, path) {
		t.Errorf("log %q: want a WARN naming the file and saying it is initialised", got)
	}
	logs.Reset()
	s, err = OpenWith(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if logs.Len() != 0 {
		t.Errorf("reopening the initialised store logged %q", logs.String())
	}
	if err := CheckPath(path); err != nil {
		t.Errorf("CheckPath of the initialised store: %v", err)
	}
}

// TestRecover copies a sound store whole, and as much as is readable of a
// damaged one, never changing the old file.
func TestRecover(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	want := buildDamageStore(t, pristine)
	pages := pagesOf(t, pristine)
	st, _ := os.Stat(pristine)
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		// lostSnapshots: snapshots lost exactly, -1 for "some, fewer than all"
		lostSnapshots int
		lostPages     bool
		countsKnown   bool // the sources bucket survives
	}{
		{"sound", func(*testing.T, string) {}, 0, false, true},
		{"truncated to half", func(t *testing.T, p string) {
			if err := os.Truncate(p, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, -1, true, false},
		{"one snapshots leaf page header", func(t *testing.T, p string) {
			scribble(t, p, int64(pages["snapshots leaf"][3])*4096, 256, rand.New(rand.NewPCG(1, 1)))
		}, -1, true, true},
		{"values inside a snapshots leaf", func(t *testing.T, p string) {
			scribble(t, p, int64(pages["snapshots leaf"][5])*4096+1024, 256, rand.New(rand.NewPCG(2, 2)))
		}, -1, false, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := copyFile(t, pristine, dir, fmt.Sprintf("old%d.db", i))
			tc.damage(t, old)
			before := sha256File(t, old)
			nu := filepath.Join(dir, fmt.Sprintf("new%d.db", i))
			rep, err := Recover(old, nu)
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if sha256File(t, old) != before {
				t.Error("Recover changed the old file")
			}
			if (rep.LostPages > 0) != tc.lostPages {
				t.Errorf("lost pages %d, want some: %v (%v)", rep.LostPages, tc.lostPages, rep.Problems)
			}
			copied, lost := rep.Copied["snapshots"], len(want.snaps)-rep.Copied["snapshots"]
			switch {
			case tc.lostSnapshots >= 0 && lost != tc.lostSnapshots:
				t.Errorf("copied %d of %d snapshots, want %d lost", copied, len(want.snaps), tc.lostSnapshots)
			case tc.lostSnapshots < 0 && (lost <= 0 || copied == 0):
				t.Errorf("copied %d of %d snapshots, want some lost and some copied", copied, len(want.snaps))
			}
			// The old store's per-source counts, when readable, make the
			// loss exact (damage to snapshot pages leaves them whole).
			if tc.countsKnown && rep.SnapshotsStored != len(want.snaps) {
				t.Errorf("SnapshotsStored %d, want %d", rep.SnapshotsStored, len(want.snaps))
			}
			if rep.SnapshotsStored >= 0 && rep.Lost["snapshots"] != rep.SnapshotsStored-copied {
				t.Errorf("lost %d snapshots, want stored %d - copied %d", rep.Lost["snapshots"], rep.SnapshotsStored, copied)
			}
			if tc.lostSnapshots == 0 {
				for b, n := range want.records {
					if rep.Copied[string(b)] != n {
						t.Errorf("copied %d %s, want %d", rep.Copied[string(b)], b, n)
					}
				}
				if len(rep.Lost) != 0 || rep.ProblemCount != 0 {
					t.Errorf("sound store: lost %v, problems %v", rep.Lost, rep.Problems)
				}
			}
			// The new store is sound and holds exactly the copied snapshots, each as written.
			s, err := OpenReadOnly(nu)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Check(); err != nil {
				t.Fatalf("the new store: %v", err)
			}
			byKey := map[string]collector.Snapshot{}
			for _, sn := range want.snaps {
				byKey[sn.Source+sn.Time.String()] = sn
			}
			got := collect(t, s, "", time.Time{}, time.Time{})
			if len(got) != copied {
				t.Errorf("new store holds %d snapshots, report says %d", len(got), copied)
			}
			for _, sn := range got {
				if w, ok := byKey[sn.Source+sn.Time.String()]; !ok || !reflect.DeepEqual(sn, w) {
					t.Fatalf("recovered snapshot %s at %s is not one written", sn.Source, sn.Time)
				}
			}
			counts, err := s.Count()
			if err != nil {
				t.Fatal(err)
			}
			if counts["a"]+counts["b"] != copied {
				t.Errorf("source counts %v, want a sum of %d", counts, copied)
			}
			if n := rep.Copied["decisions"]; n > 0 {
				// A later AppendRecord does not reuse a copied sequence number.
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				w, err := Open(nu)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				if err := w.AppendRecord(BucketDecisions, t0, []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
				keys, _ := w.Keys(BucketDecisions)
				if len(keys) != n+1 {
					t.Errorf("after one more decision: %d keys, want %d", len(keys), n+1)
				}
			}
		})
	}
	if _, err := Recover(pristine, pristine); err == nil {
		t.Error("Recover into the old file: no error")
	}
}

func sha256File(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestTruncatedUnderOpenStore cuts the file under an open store: bbolt's
// map then points past the end of the file, and reading there faults
// (SIGBUS). The fault must become ErrCorrupt, not kill the process.
func TestTruncatedUnderOpenStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	buildDamageStore(t, path)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Truncate(path, 3*4096); err != nil {
		t.Fatal(err)
	}
	err = s.Range("", time.Time{}, time.Time{}, func(collector.Snapshot) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !errors.Is(s.Failed(), ErrCorrupt) {
		t.Fatalf("Range over a file cut under it: %v (Failed %v), want ErrCorrupt", err, s.Failed())
	}
	t.Logf("%v", err)
}

// TestCheckSoundStores: stores in the shapes lbtune leaves them (after
// prunes that free pages, after deletes, reopened) pass the check; a
// false alarm would stop `lbtune run` from starting.
func TestCheckSoundStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	buildDamageStore(t, path)
	steps := []struct {
		name string
		do   func(s *Store) error
	}{
		{"as built", func(*Store) error { return nil }},
		{"pruned half the snapshots", func(s *Store) error { _, err := s.Prune(t0.Add(750 * time.Second)); return err }},
		{"pruned decisions", func(s *Store) error { _, err := s.PruneRecords(BucketDecisions, t0.Add(time.Hour)); return err }},
		{"deleted a model", func(s *Store) error { return s.Delete(BucketModels, "gmm/v000001") }},
		{"appended after", func(s *Store) error { return s.Append(synth("a", t0.Add(2*time.Hour), 1, 4, 1)) }},
		{"pruned everything", func(s *Store) error { _, err := s.Prune(t0.Add(10 * time.Hour)); return err }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.do(s); err != nil {
				t.Fatal(err)
			}
			if rep, err := s.Verify(); err != nil {
				t.Fatalf("open store: %v (%v)", err, rep.Problems)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if rep, err := VerifyPath(path); err != nil || rep.Free == 0 && st.name != "as built" {
				t.Fatalf("closed store: %v, %d free pages (want some after a prune or delete)", err, rep.Free)
			}
		})
	}
}
