package datasets

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// recordsStore is a store with n records in BucketDecisions, one a second
// from t0, valued "r<i>", plus a key written with Put (skipped by reads).
func recordsStore(t testing.TB, n int, t0 time.Time) *Store {
	t.Helper()
	s, err := OpenWith(filepath.Join(t.TempDir(), "records.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	recs := make([]TimedRecord, n)
	for i := range recs {
		recs[i] = TimedRecord{Time: t0.Add(time.Duration(i) * time.Second), Value: fmt.Appendf(nil, "r%d", i)}
	}
	for len(recs) > 0 {
		k := min(len(recs), 10_000)
		if err := s.AppendRecords(BucketDecisions, recs[:k]); err != nil {
			t.Fatal(err)
		}
		recs = recs[k:]
	}
	if err := s.Put(BucketDecisions, "zz-not-a-record-key", []byte("x")); err != nil {
		t.Fatal(err)
	}
	return s
}

func values(recs []TimedRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

func TestLatestRecords(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	s := recordsStore(t, 10, t0)
	even := func(_ time.Time, v []byte) (bool, error) { return (v[len(v)-1]-'0')%2 == 0, nil }
	tests := []struct {
		name       string
		from       time.Time
		limit      int
		keep       func(time.Time, []byte) (bool, error)
		wantLatest []string
	}{
		{"all, zero from", time.Time{}, 100, nil, []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"}},
		{"limit 1, Unix 1", time.Unix(1, 0), 1, nil, []string{"r9"}},
		{"limit 3", time.Time{}, 3, nil, []string{"r7", "r8", "r9"}},
		{"from inclusive", t0.Add(7 * time.Second), 100, nil, []string{"r7", "r8", "r9"}},
		{"from between records", t0.Add(6500 * time.Millisecond), 2, nil, []string{"r8", "r9"}},
		{"from after the last", t0.Add(time.Hour), 5, nil, []string{}},
		{"from before 1678", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), 2, nil, []string{"r8", "r9"}},
		{"from after 2262", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 2, nil, []string{}},
		{"kept ones only", time.Time{}, 3, even, []string{"r4", "r6", "r8"}},
		{"kept ones from", t0.Add(5 * time.Second), 10, even, []string{"r6", "r8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.LatestRecords(BucketDecisions, tc.from, tc.limit, tc.keep)
			if err != nil || !reflect.DeepEqual(values(got), tc.wantLatest) {
				t.Errorf("LatestRecords = %q, %v; want %q", values(got), err, tc.wantLatest)
			}
			for i, r := range got {
				if i > 0 && r.Time.Before(got[i-1].Time) {
					t.Errorf("LatestRecords not in time order: %v", got)
				}
			}
		})
	}
	got, _ := s.LatestRecords(BucketDecisions, time.Time{}, 1, nil)
	if want := t0.Add(9 * time.Second); len(got) != 1 || !got[0].Time.Equal(want) {
		t.Errorf("newest record time %v, want %s", got, want)
	}
}

func TestRecordsErrors(t *testing.T) {
	s := recordsStore(t, 3, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))
	for _, limit := range []int{0, -1} {
		if _, err := s.LatestRecords(BucketDecisions, time.Time{}, limit, nil); err == nil {
			t.Errorf("LatestRecords limit %d accepted", limit)
		}
	}
	boom := errors.New("boom")
	fail := func(time.Time, []byte) (bool, error) { return false, boom }
	if _, err := s.LatestRecords(BucketDecisions, time.Time{}, 1, fail); !errors.Is(err, boom) {
		t.Errorf("LatestRecords keep error = %v, want boom", err)
	}
	if _, err := s.LatestRecords("nope", time.Time{}, 1, nil); !errors.Is(err, ErrBucket) {
		t.Errorf("unknown bucket: %v, want ErrBucket", err)
	}
	if err := s.AppendRecords(BucketDecisions, []TimedRecord{{Time: time.Now(), Value: []byte("a")}, {Value: []byte("zero time")}}); err == nil {
		t.Error("AppendRecords with a zero time accepted")
	}
	if got, _ := s.LatestRecords(BucketDecisions, time.Time{}, 10, nil); len(got) != 3 {
		t.Errorf("a refused batch stored something: %d records", len(got))
	}
}

// TestRecordsVisitOnlyWhatTheyReturn: with a limit, the walk stops, so a
// read costs O(limit) whatever the size of the bucket.
func TestRecordsVisitOnlyWhatTheyReturn(t *testing.T) {
	s := recordsStore(t, 20_000, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name string
		read func(keep func(time.Time, []byte) (bool, error)) ([]TimedRecord, error)
	}{
		{"latest", func(k func(time.Time, []byte) (bool, error)) ([]TimedRecord, error) {
			return s.LatestRecords(BucketDecisions, time.Unix(1, 0), 5, k)
		}},
	} {
		visited := 0
		got, err := tc.read(func(time.Time, []byte) (bool, error) { visited++; return true, nil })
		if err != nil || len(got) != 5 || visited != 5 {
			t.Errorf("%s: %d records, %d visited, %v; want 5 and 5", tc.name, len(got), visited, err)
		}
	}
}

// TestAppendRecordsMatchesAppendRecord: a batch is keyed like single
// appends, so RangeRecords reads both the same.
func TestAppendRecordsMatchesAppendRecord(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	s := recordsStore(t, 0, t0)
	if err := s.AppendRecord(BucketDecisions, t0, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRecords(BucketDecisions, []TimedRecord{{Time: t0, Value: []byte("b")}, {Time: t0.Add(-time.Second), Value: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.RangeRecords(BucketDecisions, time.Time{}, time.Time{}, func(_ time.Time, v []byte) error {
		got = append(got, string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"c", "a", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("RangeRecords = %q, want %q", got, want)
	}
	latest, _ := s.LatestRecords(BucketDecisions, time.Time{}, 10, nil)
	if want := []string{"c", "a", "b"}; !reflect.DeepEqual(values(latest), want) {
		t.Errorf("LatestRecords = %q, want %q (same nanosecond in insertion order)", values(latest), want)
	}
}
