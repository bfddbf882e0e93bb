package collector

import "time"

// PoolPoint is one pool's state over one scrape interval, in real units:
// the pool summary the API serves, the charts draw and the runtime scores.
type PoolPoint struct {
	// Time is the end of the interval.
	Time time.Time `json:"t"`
	// Rate is the pool's request rate in requests per second.
	Rate float64 `json:"rate"`
	// Active is the number of requests in progress at Time (sum over servers).
	Active float64 `json:"active"`
	// Queue is the number of requests waiting, pool and servers.
	Queue float64 `json:"queue"`
	// MeanMs is the pool's mean response time in ms (PoolRates.MeanMs); 0
	// when unknown.
	MeanMs float64 `json:"mean_ms"`
	// P95Ms is the pool's p95 estimate in ms (PoolRates.P95Ms); 0 when
	// nothing was served.
	P95Ms float64 `json:"p95_ms"`
	// ErrorRatio is the fraction of requests that failed (PoolRates.ErrorRatio).
	ErrorRatio float64 `json:"error_ratio"`
	// Servers is the number of servers serving (PoolRates.ServersUp).
	Servers int `json:"servers"`
	// Weights are the serving servers' weights by name.
	Weights map[string]int `json:"weights,omitempty"`
}

// Point summarises the pool's rates as the PoolPoint of the interval
// ending at t.
func (p *PoolRates) Point(t time.Time) PoolPoint {
	pt := PoolPoint{
		Time: t, Rate: p.Requests(), Queue: p.Queue,
		MeanMs: p.MeanMs(), P95Ms: p.P95Ms(), ErrorRatio: p.ErrorRatio(), Servers: p.ServersUp(),
		Weights: map[string]int{},
	}
	for i := range p.Servers {
		s := &p.Servers[i]
		pt.Active += s.Gauges.Active
		pt.Queue += s.Gauges.Queue
		if s.State == StateUp && !s.Backup {
			pt.Weights[s.Name] = s.Weight
		}
	}
	return pt
}

// PoolPoints derives one PoolPoint per consecutive pair of snapshots that
// both hold the named pool, in time order, appending to dst. Snapshots must
// be in time order and from one source; a pair that is not strictly later
// is skipped.
func PoolPoints(dst []PoolPoint, snaps []Snapshot, pool string) []PoolPoint {
	var prev *Snapshot
	for i := range snaps {
		cur := &snaps[i]
		if cur.Pool(pool) == nil {
			continue
		}
		if prev != nil {
			if r, err := Rate(prev, cur); err == nil {
				dst = append(dst, r.Pool(pool).Point(r.End))
			}
		}
		prev = cur
	}
	return dst
}
