package datasets

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// captures is the shared directory of real balancer captures, relative to
// this package directory (the repository root's ../shared/captures).
const captures = "../../shared/captures"

// replayInto scrapes every capture of a replaying source URI into a new
// store and returns its path.
func replayInto(t *testing.T, uri string) (string, int) {
	t.Helper()
	if _, err := os.Stat(captures); err != nil {
		t.Fatalf("real captures missing: %v (they live in ../shared/captures beside the repository)", err)
	}
	src, err := collector.Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	s, path := openTemp(t)
	n := 0
	for ; n < 1000; n++ {
		sn, err := src.Scrape(context.Background())
		if errors.Is(err, collector.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatalf("scrape %d: %v", n, err)
		}
		if err := s.Append(sn); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, n
}

func TestSummarizeCaptures(t *testing.T) {
	tests := []struct {
		name       string
		uri        string
		snapshots  int
		minPools   int
		minServers int
	}{
		// 64 vts documents across two reloads, a weight change, a dead
		// backend and a full restart (see captures/vts/timeline.tsv).
		{"vts", "vts+file:" + captures + "/vts", 64, 1, 4},
		{"haproxy show stat", "haproxy+file:" + captures + "/haproxy/captures", 0, 1, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, scraped := replayInto(t, tc.uri)
			sum, err := Summarize(path)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.snapshots
			if want == 0 { // whatever the replay yields, but a real recording
				want = max(scraped, 10)
			}
			if sum.Snapshots != want || scraped != want {
				t.Fatalf("%d snapshots stored, %d scraped, want %d", sum.Snapshots, scraped, want)
			}
			if sum.Pools < tc.minPools || sum.Servers < tc.minServers {
				t.Errorf("pools %d servers %d, want >= %d, %d", sum.Pools, sum.Servers, tc.minPools, tc.minServers)
			}
			if sum.MinRate == nil || *sum.MinRate < 0 {
				t.Fatalf("min_rate %v: want a non-negative rate", sum.MinRate)
			}
			if sum.Intervals != sum.Snapshots-1 || sum.Unordered != 0 {
				t.Errorf("intervals %d unordered %d for %d snapshots", sum.Intervals, sum.Unordered, sum.Snapshots)
			}
			if !sum.End.After(sum.Start) {
				t.Errorf("span %s..%s", sum.Start, sum.End)
			}
			for _, p := range sum.PoolStats {
				if p.MeanRate < 0 || p.MinServerRate < 0 {
					t.Errorf("pool %s: negative rate %+v", p.Name, p)
				}
			}
			t.Logf("%+v", sum)
		})
	}
}

func TestSummarizer(t *testing.T) {
	z := NewSummarizer()
	// Source a: every second for 10 s, then a 5 s hole, then 2 more, with a
	// restart (counters back to low values) at the last one. Source b
	// interleaves at a 1 s interval.
	times := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 15}
	for i, sec := range times {
		seq := uint64(10 + i)
		if i == len(times)-1 {
			seq = 1 // restart: counters fall back
		}
		z.Add(synth("a", t0.Add(time.Duration(sec)*time.Second), 2, 3, seq))
		z.Add(synth("b", t0.Add(time.Duration(sec)*time.Second+time.Millisecond), 1, 1, uint64(i)))
	}
	z.Add(synth("b", t0, 1, 1, 0)) // out of order for b
	z.AddEvent(Event{Time: t0, Kind: "weight"})
	s := z.Summary()
	checks := []struct {
		name      string
		got, want float64
	}{
		{"snapshots", float64(s.Snapshots), 25},
		{"events", float64(s.Events), 1},
		{"pools (pool000, pool001)", float64(s.Pools), 2},
		{"servers (3 in pool000 + 3 in pool001)", float64(s.Servers), 6},
		{"intervals (11 per source)", float64(s.Intervals), 22},
		{"median interval", s.MedianIntervalS, 1},
		{"gaps (a and b over 9..14 s)", float64(len(s.Gaps)), 2},
		{"gap seconds", s.Gaps[0].Seconds, 5},
		{"unordered", float64(s.Unordered), 1},
		// the restart interval: srv0000 of a went from seq 20 to 1, counted
		// from zero: 1*100 requests over 1 s.
		{"resets (a restart: 6 servers; b first: none)", float64(s.Resets), 6},
		{"duration", s.DurationS, 15.001},
		{"pool000 servers", float64(s.PoolStats[0].Servers), 3},
		// a's pool000: 3 servers each +100 requests/s per 1 s step, +100/5
		// per s over the gap, and 3*100+0+7+14 = 321/s after the restart.
		{"pool000 max rate", s.PoolStats[0].MaxRate, 321},
		// pool001 (only in a) at each interval's end: queue seq%3, active
		// 0+1+2, 3 servers up; seq%3 over the 11 intervals sums to 12.
		{"pool001 mean cost", s.PoolStats[1].MeanCost, 6 + 12.0/11},
	}
	for _, c := range checks {
		if diff := c.got - c.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s.MinRate == nil || *s.MinRate != 20 {
		t.Errorf("min_rate = %v, want 20 (a's 100 requests over the 5 s gap)", s.MinRate)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	src, srcPath := openTemp(t)
	var snaps []collector.Snapshot
	for i := 0; i < 1200; i++ { // more than one import batch
		snaps = append(snaps, synth([]string{"a", "b"}[i%2], t0.Add(time.Duration(i)*time.Second), 2, 3, uint64(i)))
	}
	if err := src.Append(snaps...); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{
		{Time: t0.Add(10 * time.Second), Kind: "weight", Pool: "pool000", Server: "srv0001", Value: 5},
		{Time: t0.Add(2 * time.Hour), Kind: "reload"}, // after the last snapshot
	} {
		if err := src.AppendEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	export := func(s *Store, name string) ([]byte, int, int) {
		t.Helper()
		path := filepath.Join(dir, name)
		w, err := CreateFile(path, Header{Source: "a,b", Created: t0})
		if err != nil {
			t.Fatal(err)
		}
		n, e, err := Export(s, w, "", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		loaded, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(mustJSON(t, loaded)), n, e
	}
	first, n, e := export(src, "one.jsonl.gz")
	if n != 1200 || e != 2 {
		t.Fatalf("exported %d snapshots %d events, want 1200, 2", n, e)
	}
	if string(first) != mustJSON(t, snaps) {
		t.Fatal("exported snapshots differ from the stored ones")
	}
	_ = srcPath

	dst, _ := openTemp(t)
	for round := 0; round < 2; round++ { // importing twice stores once
		r, err := OpenFile(filepath.Join(dir, "one.jsonl.gz"))
		if err != nil {
			t.Fatal(err)
		}
		n, e, err := Import(dst, r)
		_ = r.Close()
		if err != nil || n != 1200 || e != 2 {
			t.Fatalf("import round %d: %d snapshots %d events, %v", round, n, e, err)
		}
	}
	second, n, e := export(dst, "two.jsonl")
	if n != 1200 || e != 2 {
		t.Fatalf("re-exported %d snapshots %d events, want 1200, 2", n, e)
	}
	if string(first) != string(second) {
		t.Fatal("export -> import -> export changed the snapshots")
	}
	if _, err := dst.Get(BucketMeta, "import/a,b"); err != nil {
		t.Errorf("import header not kept: %v", err)
	}
	sizes, err := dst.BucketSizes()
	if err != nil || sizes[BucketEvents] != 2 || sizes[BucketMeta] != 1 || len(sizes) != 2 {
		t.Errorf("BucketSizes = %v, %v; want events:2 meta:1", sizes, err)
	}
}

// TestSummarizerLatency: a pool's mean_ms and p95_ms weight each
// interval's PoolRates.MeanMs and P95Ms by the requests it served.
func TestSummarizerLatency(t *testing.T) {
	// cum builds a snapshot with one server whose cumulative counters are
	// reqs requests and sumMs of latency, and the pool p95 the source gave.
	cum := func(sec int, reqs, sumMs uint64, p95 *float64) collector.Snapshot {
		return collector.Snapshot{Time: t0.Add(time.Duration(sec) * time.Second), Source: "log", Pools: []collector.Pool{{
			Name: "p", P95Ms: p95, Servers: []collector.Server{{Name: "s", State: collector.StateUp,
				Counters: collector.Counters{Requests: reqs, Responses: [5]uint64{0, reqs}, LatencySumMs: sumMs}}}}}}
	}
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name      string
		snaps     []collector.Snapshot
		mean, p95 float64
	}{
		// 10 requests at 10 ms (p95 20), then 30 at 2 ms (p95 6):
		// mean (10*10 + 30*2) / 40 = 4, p95 (10*20 + 30*6) / 40 = 9.5.
		{name: "weighted by requests", snaps: []collector.Snapshot{cum(0, 0, 0, nil), cum(1, 10, 100, f(20)), cum(3, 40, 160, f(6))}, mean: 4, p95: 9.5},
		// An idle interval (no request) weighs nothing even if its p95 is odd.
		{name: "idle interval left out", snaps: []collector.Snapshot{cum(0, 0, 0, nil), cum(1, 10, 100, f(20)), cum(2, 10, 100, f(500))}, mean: 10, p95: 20},
		// No percentile from the source: P95PerMean x the mean.
		{name: "estimated p95", snaps: []collector.Snapshot{cum(0, 0, 0, nil), cum(1, 10, 100, nil)}, mean: 10, p95: 10 * collector.P95PerMean},
		{name: "one snapshot: unknown", snaps: []collector.Snapshot{cum(0, 10, 100, f(20))}, mean: 0, p95: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z := NewSummarizer()
			for _, sn := range tc.snaps {
				z.Add(sn)
			}
			ps := z.Summary().PoolStats[0]
			if math.Abs(ps.MeanMs-tc.mean) > 1e-9 || math.Abs(ps.P95Ms-tc.p95) > 1e-9 {
				t.Errorf("mean_ms %v p95_ms %v, want %v %v", ps.MeanMs, ps.P95Ms, tc.mean, tc.p95)
			}
		})
	}
}
