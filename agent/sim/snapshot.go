package sim

import (
	"context"
	"fmt"
	"sort"

	"github.com/lbtune/lbtune/collector"
)

// Scrape returns the snapshot a balancer in front of the simulated pools
// would report now (it satisfies collector.Source): per server cumulative
// counters (requests dispatched, 2xx completions, errors for requests lost
// to failures, exact latency sum), gauges Active (in service) and Queue
// (waiting at the server), AvgResponseMs and P50/P95/P99 over the requests
// completed since the previous Scrape, and the pool's P50/P95/P99 over the
// same requests. A pool with StatsSamples reports as HAProxy's stats
// socket does instead: each server's AvgResponseMs is its sliding
// average, with no latency sum and no percentiles. Booting servers are
// not in the balancer yet and do not appear; a failed server appears
// once as down.
func (s *Sim) Scrape(ctx context.Context) (collector.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return collector.Snapshot{}, fmt.Errorf("scrape %s: %w", s, err)
	}
	snap := collector.Snapshot{Time: s.Now(), Source: s.String(), Pools: make([]collector.Pool, 0, len(s.pools))}
	for _, p := range s.pools {
		cp := collector.Pool{Name: p.cfg.Name, Servers: make([]collector.Server, 0, len(p.all))}
		keep := p.all[:0]
		for _, id := range p.all {
			sv := &s.servers[id]
			cp.Servers = append(cp.Servers, s.serverSnapshot(sv, p.cfg.StatsSamples))
			if sv.state == stDown {
				sv.state = stGone
				continue
			}
			keep = append(keep, id)
		}
		p.all = keep
		if len(p.ivLat) > 0 && p.cfg.StatsSamples > 0 {
			p.ivLat = p.ivLat[:0] // the stats socket has no percentiles
		} else if len(p.ivLat) > 0 {
			p50, p95, p99 := float64(quantile32(p.ivLat, 0.50)), float64(quantile32(p.ivLat, 0.95)), float64(quantile32(p.ivLat, 0.99))
			cp.P50Ms, cp.P95Ms, cp.P99Ms = &p50, &p95, &p99
			p.ivLat = p.ivLat[:0]
		}
		sort.Slice(cp.Servers, func(i, j int) bool { return cp.Servers[i].Name < cp.Servers[j].Name })
		snap.Pools = append(snap.Pools, cp)
	}
	sort.Slice(snap.Pools, func(i, j int) bool { return snap.Pools[i].Name < snap.Pools[j].Name })
	return snap, nil
}

func (s *Sim) serverSnapshot(sv *server, statsSamples int) collector.Server {
	st := collector.StateUp
	switch sv.state {
	case stDrain:
		st = collector.StateDrain
	case stDown:
		st = collector.StateDown
	}
	c := sv.counters
	out := collector.Server{
		Name: sv.name, Address: sv.addr, Weight: sv.weight, State: st,
		Counters: collector.Counters{
			Requests:     c.requests,
			Responses:    [5]uint64{1: c.ok},
			Errors:       c.errors,
			LatencySumMs: uint64(c.latSumMs),
		},
		Gauges: collector.Gauges{Active: float64(sv.busy), Queue: float64(sv.q.n)},
	}
	if statsSamples > 0 {
		// What HAProxy's stats socket gives: the sliding average, no sum.
		out.Counters.LatencySumMs = 0
		if sv.swN > 0 {
			out.Gauges.AvgResponseMs = sv.swSum / float64(min(sv.swN, statsSamples))
		}
		sv.lat = sv.lat[:0]
		return out
	}
	if n := len(sv.lat); n > 0 {
		var sum float64
		for _, v := range sv.lat {
			sum += float64(v)
		}
		out.Gauges.AvgResponseMs = sum / float64(n)
		p50 := float64(quantile32(sv.lat, 0.50))
		p95 := float64(quantile32(sv.lat, 0.95))
		p99 := float64(quantile32(sv.lat, 0.99))
		out.Gauges.P50Ms, out.Gauges.P95Ms, out.Gauges.P99Ms = &p50, &p95, &p99
		sv.lat = sv.lat[:0]
	}
	return out
}
