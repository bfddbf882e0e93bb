package tuner

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/datasets"
)

// decisionsStore is a store with n decisions, one a second from t0,
// alternating pools web and api.
func decisionsStore(tb testing.TB, n int, t0 time.Time) *datasets.Store {
	tb.Helper()
	st, err := datasets.OpenWith(filepath.Join(tb.TempDir(), "decisions.db"), datasets.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	var batch []datasets.TimedRecord
	for i := range n {
		pool := []string{"web", "api"}[i%2]
		at := t0.Add(time.Duration(i) * time.Second)
		b, err := json.Marshal(Record{Seq: uint64(i), Decision: agent.Decision{Time: at, Pool: pool, Policy: "threshold",
			Servers: 2 + i%3, Reason: fmt.Sprintf("decision %d", i), Metrics: map[string]float64{"p95_ms": float64(i % 400)}, Outcome: "applied"}})
		if err != nil {
			tb.Fatal(err)
		}
		batch = append(batch, datasets.TimedRecord{Time: at, Value: b})
		if len(batch) == 10_000 || i == n-1 {
			if err := st.AppendRecords(datasets.BucketDecisions, batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return st
}

func seqs(recs []Record) []uint64 {
	out := []uint64{}
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

// TestReadDecisionsLimit: with a limit, ReadDecisions answers the newest
// limit decisions (of the pool) at or after since, oldest first, the same
// as reading everything and keeping the tail.
func TestReadDecisionsLimit(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	st := decisionsStore(t, 20, t0)
	tests := []struct {
		pool  string
		since time.Time
		limit int
		want  []uint64
	}{
		{"", time.Unix(1, 0), 1, []uint64{19}},
		{"", time.Unix(0, 0), 3, []uint64{17, 18, 19}},
		{"web", time.Time{}, 3, []uint64{14, 16, 18}},
		{"api", time.Unix(1, 0), 2, []uint64{17, 19}},
		{"api", t0.Add(15 * time.Second), 10, []uint64{15, 17, 19}},
		{"", t0.Add(18 * time.Second), 200, []uint64{18, 19}},
		{"nope", time.Time{}, 5, []uint64{}},
		{"", t0.Add(time.Hour), 5, []uint64{}},
	}
	for _, tc := range tests {
		got, err := ReadDecisions(st, tc.pool, tc.since, tc.limit)
		if err != nil || !reflect.DeepEqual(seqs(got), tc.want) {
			t.Errorf("ReadDecisions(%q, %s, %d) = %v, %v; want %v", tc.pool, tc.since, tc.limit, seqs(got), err, tc.want)
		}
		all, err := ReadDecisions(st, tc.pool, tc.since, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) > tc.limit {
			all = all[len(all)-tc.limit:]
		}
		if !reflect.DeepEqual(seqs(all), tc.want) {
			t.Errorf("limit 0 then tail = %v, want %v", seqs(all), tc.want)
		}
	}
}

// TestReadDecisionsLimitReadsOnlyTheNewest: since=1&limit=1 does not read
// the whole history: an undecodable old record does not fail it (today it
// would, having decoded every record since 1970).
func TestReadDecisionsLimitReadsOnlyTheNewest(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	st := decisionsStore(t, 100, t0)
	if err := st.AppendRecord(datasets.BucketDecisions, t0.Add(-time.Hour), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDecisions(st, "", time.Unix(1, 0), 1)
	if err != nil || !reflect.DeepEqual(seqs(got), []uint64{99}) {
		t.Fatalf("ReadDecisions(since=1, limit=1) = %v, %v; want [99]", seqs(got), err)
	}
	if _, err := ReadDecisions(st, "", time.Unix(1, 0), 101); err == nil {
		t.Error("a limit reaching the bad record did not fail")
	}
}

// BenchmarkDecisionsSinceLimit is /v1/decisions?since=1&limit=N (the
// API's ReadDecisions) on stores of 20k and 200k decisions: time per call
// must not grow with the store.
func BenchmarkDecisionsSinceLimit(b *testing.B) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for _, n := range []int{20_000, 200_000} {
		st := decisionsStore(b, n, t0)
		for _, q := range []struct {
			pool  string
			limit int
		}{{"", 1}, {"", 200}, {"web", 200}} {
			b.Run(fmt.Sprintf("store=%dk/pool=%s/limit=%d", n/1000, q.pool, q.limit), func(b *testing.B) {
				for b.Loop() {
					recs, err := ReadDecisions(st, q.pool, time.Unix(1, 0), q.limit)
					if err != nil || len(recs) != q.limit {
						b.Fatalf("%d records, %v", len(recs), err)
					}
				}
			})
		}
	}
}
