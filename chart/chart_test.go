package chart

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
)

// snaps builds n one-second snapshots of pool "web": server a serves 10
// req/s at 20 ms, server b 30 req/s at 40 ms, b is draining from the third.
func snaps(n int) []collector.Snapshot {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p95 := 80.0
	var out []collector.Snapshot
	for i := range n {
		bState := collector.StateUp
		if i >= 2 {
			bState = collector.StateDrain
		}
		k := uint64(i)
		out = append(out, collector.Snapshot{
			Time: t0.Add(time.Duration(i) * time.Second), Source: "test",
			Pools: []collector.Pool{{Name: "web", Queue: 1, Servers: []collector.Server{
				{Name: "a", Weight: 3, State: collector.StateUp,
					Counters: collector.Counters{Requests: 10 * k, LatencySumMs: 200 * k, Responses: [5]uint64{0, 10 * k}},
					Gauges:   collector.Gauges{Active: 2, P95Ms: &p95}},
				{Name: "b", Weight: 1, State: bState,
					Counters: collector.Counters{Requests: 30 * k, LatencySumMs: 1200 * k, Responses: [5]uint64{0, 27 * k, 0, 0, 3 * k}},
					Gauges:   collector.Gauges{Active: 3}},
			}}, {Name: "other"}},
		})
	}
	return out
}

func TestDecisionMetric(t *testing.T) {
	t0 := time.Unix(100, 0)
	ds := []agent.Decision{
		{Time: t0, Pool: "web", Metrics: map[string]float64{"util": 0.7, "p95_ms": 120}},
		{Time: t0.Add(time.Second), Pool: "web", Metrics: map[string]float64{"util": 0.9, "rate": 3}},
		{Time: t0.Add(2 * time.Second), Pool: "other", Metrics: map[string]float64{"p95_ms": 1}},
		{Time: t0.Add(3 * time.Second), Pool: "web"},
	}
	got := DecisionMetric(ds, "web", "p95_ms")
	want := []MetricPoint{{t0, "p95_ms", 120}, {t0.Add(time.Second), "rate", 3}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("point %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestWritePNGs(t *testing.T) {
	dir := t.TempDir()
	pts := collector.PoolPoints(nil, snaps(30), "web")
	h := History{Pool: "web", Points: pts, Target: 50 * time.Millisecond,
		Metric: []MetricPoint{{pts[3].Time, "p95_ms", 80}, {pts[9].Time, "p95_ms", 60}},
		Phases: []Phase{{Start: pts[0].Time, End: pts[10].Time, Label: "low"}, {Start: pts[10].Time, End: pts[20].Time, Label: "high"}}}
	files, err := WritePNGs(dir, h)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"web-load.png", "web-latency.png", "web-servers.png", "web-decision-metric.png"}
	if len(files) != len(want) {
		t.Fatalf("wrote %v, want %v", files, want)
	}
	for i, f := range files {
		if filepath.Base(f) != want[i] {
			t.Errorf("file %d = %s, want %s", i, f, want[i])
		}
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
			t.Errorf("%s is %v, want a full-size chart", f, b)
		}
	}
	if _, err := WritePNGs(dir, History{Pool: "empty"}); err == nil {
		t.Error("no points: want an error")
	}
}
