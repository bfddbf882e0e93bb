package collector

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestPoolP95Estimate: the pool p95 every consumer reads is the pool's own
// percentile when given, else the servers' p95s weighted by requests, a
// server without one counting ln(20) x its mean (HAProxy and vts report
// only means).
func TestPoolP95Estimate(t *testing.T) {
	p := func(v float64) *float64 { return &v }
	srv := func(req, mean float64, p95 *float64) ServerRates {
		return ServerRates{Name: "s", State: StateUp, Requests: req, MeanLatencyMs: mean, Gauges: Gauges{P95Ms: p95}}
	}
	tests := []struct {
		name string
		pr   PoolRates
		want float64
	}{
		{"pool percentile wins", PoolRates{SourceP95Ms: p(300), Servers: []ServerRates{srv(10, 50, p(90))}}, 300},
		{"server percentiles", PoolRates{Servers: []ServerRates{srv(30, 50, p(100)), srv(10, 50, p(200))}}, 125},
		{"means only (HAProxy)", PoolRates{Servers: []ServerRates{srv(10, 100, nil)}}, 100 * math.Log(20)},
		{"idle servers ignored", PoolRates{Servers: []ServerRates{srv(0, 900, nil), srv(5, 10, p(40))}}, 40},
		{"nothing served", PoolRates{Servers: []ServerRates{srv(0, 0, nil)}}, 0},
	}
	for _, tc := range tests {
		if got := tc.pr.P95Ms(); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if math.Abs(P95PerMean-math.Log(20)) > 1e-15 {
		t.Errorf("P95PerMean = %v, want ln(20)", P95PerMean)
	}
}

// TestPoolSummary checks ErrorRatio, MeanMs and ServersUp on one pool:
// requests weight the mean, servers without a latency are left out of it,
// backups and draining servers are not serving.
func TestPoolSummary(t *testing.T) {
	pr := PoolRates{Servers: []ServerRates{
		{Name: "a", State: StateUp, Requests: 10, MeanLatencyMs: 20, Responses: [5]float64{1: 9, 4: 1}},
		{Name: "b", State: StateUp, Requests: 30, MeanLatencyMs: 40, Errors: 2},
		{Name: "c", State: StateUp, Requests: 10, Responses: [5]float64{4: 10}}, // no latency
		{Name: "d", State: StateDrain, Requests: 0, MeanLatencyMs: 500},
		{Name: "e", State: StateUp, Backup: true},
	}}
	tests := []struct {
		name      string
		got, want float64
	}{
		{"error ratio", pr.ErrorRatio(), 13.0 / 50},
		{"mean", pr.MeanMs(), (10*20 + 30*40) / 40.0},
		{"servers up", float64(pr.ServersUp()), 3},
		{"idle error ratio", (&PoolRates{}).ErrorRatio(), 0},
		{"idle mean", (&PoolRates{}).MeanMs(), 0},
	}
	for _, tc := range tests {
		if math.Abs(tc.got-tc.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// pointSnaps builds n one-second snapshots of pool "web": server a serves
// 10 req/s at 20 ms with a p95 gauge of 80 ms, server b 30 req/s at 40 ms
// without percentiles, b is draining from the third.
func pointSnaps(n int) []Snapshot {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p95 := 80.0
	var out []Snapshot
	for i := range n {
		bState := StateUp
		if i >= 2 {
			bState = StateDrain
		}
		k := uint64(i)
		out = append(out, Snapshot{
			Time: t0.Add(time.Duration(i) * time.Second), Source: "test",
			Pools: []Pool{{Name: "web", Queue: 1, Servers: []Server{
				{Name: "a", Weight: 3, State: StateUp,
					Counters: Counters{Requests: 10 * k, LatencySumMs: 200 * k, Responses: [5]uint64{0, 10 * k}},
					Gauges:   Gauges{Active: 2, P95Ms: &p95}},
				{Name: "b", Weight: 1, State: bState,
					Counters: Counters{Requests: 30 * k, LatencySumMs: 1200 * k, Responses: [5]uint64{0, 27 * k, 0, 0, 3 * k}},
					Gauges:   Gauges{Active: 3}},
			}}, {Name: "other"}},
		})
	}
	return out
}

func TestPoolPoints(t *testing.T) {
	pts := PoolPoints(nil, pointSnaps(4), "web")
	if len(pts) != 3 {
		t.Fatalf("got %d points from 4 snapshots, want 3", len(pts))
	}
	tests := []struct {
		name      string
		got, want float64
	}{
		{"rate", pts[0].Rate, 40},
		{"active", pts[0].Active, 5},
		{"queue", pts[0].Queue, 1},
		// (10 x 20 + 30 x 40) / 40 = 35 ms
		{"mean", pts[0].MeanMs, 35},
		// a's percentile, b's ln(20) x mean, weighted by requests
		{"p95", pts[0].P95Ms, (10*80 + 30*P95PerMean*40) / 40},
		// 3 of 40 requests were 5xx
		{"errors", pts[0].ErrorRatio, 0.075},
		{"servers before drain", float64(pts[0].Servers), 2},
		{"servers after drain", float64(pts[2].Servers), 1},
	}
	for _, tc := range tests {
		if math.Abs(tc.got-tc.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if pts[2].Weights["a"] != 3 || len(pts[2].Weights) != 1 {
		t.Errorf("weights after drain %v, want only a:3", pts[2].Weights)
	}
	// A pool-level p95 (access logs) wins over the servers'.
	withPool := pointSnaps(3)
	p95 := 55.0
	withPool[2].Pools[0].P95Ms = &p95
	if got := PoolPoints(nil, withPool, "web"); got[1].P95Ms != 55 || got[0].P95Ms == 55 {
		t.Errorf("p95 with a pool-level value %v, without %v; want 55 and the servers' estimate", got[1].P95Ms, got[0].P95Ms)
	}
	if got := PoolPoints(nil, pointSnaps(4), "missing"); len(got) != 0 {
		t.Errorf("unknown pool gave %d points", len(got))
	}
}

// benchSnaps is 30 minutes of 1 s snapshots of one pool of servers
// servers: what the dashboard charts per pool.
func benchSnaps(servers int) []Snapshot {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p95 := 120.0
	out := make([]Snapshot, 1800)
	for i := range out {
		k := uint64(i)
		sv := make([]Server, servers)
		for j := range sv {
			sv[j] = Server{Name: fmt.Sprintf("s%03d", j), Weight: 10, State: StateUp,
				Counters: Counters{Requests: 50 * k, LatencySumMs: 2000 * k, Responses: [5]uint64{1: 50 * k}},
				Gauges:   Gauges{Active: 3, P95Ms: &p95}}
		}
		out[i] = Snapshot{Time: t0.Add(time.Duration(i) * time.Second), Source: "bench",
			Pools: []Pool{{Name: "web", Servers: sv}}}
	}
	return out
}

// BenchmarkPoolPoints derives 30 minutes of dashboard points (1799 intervals).
func BenchmarkPoolPoints(b *testing.B) {
	for _, n := range []int{20, 200} {
		snaps := benchSnaps(n)
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			dst := make([]PoolPoint, 0, len(snaps))
			b.ReportAllocs()
			for b.Loop() {
				dst = PoolPoints(dst[:0], snaps, "web")
			}
		})
	}
}
