package chart

import (
	"fmt"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// benchSnaps is 30 minutes of 1 s snapshots of one pool of servers
// servers: what the dashboard charts per pool.
func benchSnaps(servers int) []collector.Snapshot {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p95 := 120.0
	out := make([]collector.Snapshot, 1800)
	for i := range out {
		k := uint64(i)
		sv := make([]collector.Server, servers)
		for j := range sv {
			sv[j] = collector.Server{Name: fmt.Sprintf("s%03d", j), Weight: 10, State: collector.StateUp,
				Counters: collector.Counters{Requests: 50 * k, LatencySumMs: 2000 * k, Responses: [5]uint64{1: 50 * k}},
				Gauges:   collector.Gauges{Active: 3, P95Ms: &p95}}
		}
		out[i] = collector.Snapshot{Time: t0.Add(time.Duration(i) * time.Second), Source: "bench",
			Pools: []collector.Pool{{Name: "web", Servers: sv}}}
	}
	return out
}

// BenchmarkPoints derives 30 minutes of dashboard points (1799 intervals).
func BenchmarkPoints(b *testing.B) {
	for _, n := range []int{20, 200} {
		snaps := benchSnaps(n)
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			dst := make([]Point, 0, len(snaps))
			b.ReportAllocs()
			for b.Loop() {
				dst = Points(dst[:0], snaps, "web")
			}
		})
	}
}
