package chart

import (
	"sort"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
)

// Point is one pool's state over one scrape interval, in real units.
type Point struct {
	// Time is the end of the interval.
	Time time.Time `json:"t"`
	// Rate is the pool's request rate in requests per second.
	Rate float64 `json:"rate"`
	// Active is the number of requests in progress at Time (sum over servers).
	Active float64 `json:"active"`
	// Queue is the number of requests waiting, pool and servers.
	Queue float64 `json:"queue"`
	// MeanMs is the request-weighted mean response time in ms; 0 when unknown.
	MeanMs float64 `json:"mean_ms"`
	// P95Ms is the pool's p95 in ms where the source reports one (access
	// logs, simulator), else the largest server p95 among servers that
	// served requests (conservative: percentiles do not add up); 0 when the
	// source has no percentiles.
	P95Ms float64 `json:"p95_ms"`
	// ErrorRatio is the fraction of requests that failed.
	ErrorRatio float64 `json:"error_ratio"`
	// Servers is the number of servers serving (state up).
	Servers int `json:"servers"`
	// Weights are the serving servers' weights by name.
	Weights map[string]int `json:"weights,omitempty"`
}

// Points derives one Point per consecutive pair of snapshots that both hold
// the named pool, in time order, appending to dst. Snapshots must be in
// time order and from one source; a pair that is not strictly later is skipped.
func Points(dst []Point, snaps []collector.Snapshot, pool string) []Point {
	var prev *collector.Snapshot
	for i := range snaps {
		cur := &snaps[i]
		if cur.Pool(pool) == nil {
			continue
		}
		if prev != nil {
			if r, err := collector.Rate(prev, cur); err == nil {
				dst = append(dst, pointOf(r.End, r.Pool(pool)))
			}
		}
		prev = cur
	}
	return dst
}

// pointOf summarises one pool's rates.
func pointOf(t time.Time, pr *collector.PoolRates) Point {
	p := Point{Time: t, Queue: pr.Queue, Weights: map[string]int{}}
	var latW, errs float64
	for i := range pr.Servers {
		s := &pr.Servers[i]
		p.Rate += s.Requests
		p.Active += s.Gauges.Active
		p.Queue += s.Gauges.Queue
		errs += s.Responses[4] + s.Errors
		if s.MeanLatencyMs > 0 && s.Requests > 0 {
			p.MeanMs += s.MeanLatencyMs * s.Requests
			latW += s.Requests
		}
		if s.Gauges.P95Ms != nil && s.Requests > 0 && *s.Gauges.P95Ms > p.P95Ms {
			p.P95Ms = *s.Gauges.P95Ms
		}
		if s.State == collector.StateUp {
			p.Servers++
			p.Weights[s.Name] = s.Weight
		}
	}
	if latW > 0 {
		p.MeanMs /= latW
	}
	if pr.SourceP95Ms != nil {
		p.P95Ms = *pr.SourceP95Ms
	}
	if p.Rate > 0 {
		p.ErrorRatio = min(errs/p.Rate, 1)
	}
	return p
}

// MetricPoint is the value of one decision metric at one decision.
type MetricPoint struct {
	Time  time.Time `json:"t"`
	Name  string    `json:"name"`
	Value float64   `json:"value"`
}

// DecisionMetric picks, for each decision of pool, the metric its policy
// based the decision on: the first of preferred present in Metrics, else the
// alphabetically first metric. Decisions without metrics are skipped.
func DecisionMetric(decisions []agent.Decision, pool string, preferred ...string) []MetricPoint {
	var out []MetricPoint
	for _, d := range decisions {
		if d.Pool != pool || len(d.Metrics) == 0 {
			continue
		}
		name := ""
		for _, p := range preferred {
			if _, ok := d.Metrics[p]; ok {
				name = p
				break
			}
		}
		if name == "" {
			keys := make([]string, 0, len(d.Metrics))
			for k := range d.Metrics {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			name = keys[0]
		}
		out = append(out, MetricPoint{Time: d.Time, Name: name, Value: d.Metrics[name]})
	}
	return out
}

// Phase is a labelled stretch of time (e.g. a load phase of the testbed).
type Phase struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Label string    `json:"label"`
}
