package collector

import (
	"errors"
	"fmt"
	"time"
)

// Plausibility limits: the one definition of which counters and rates are
// data and which are corruption (a wrapped negative, a sentinel, a broken
// exporter). Snapshot.Validate refuses a counter above MaxCounter; Rate keeps
// an interval over the rate limits out of the rates (ServerRates.Implausible);
// the log sources refuse a response time above MaxLatencyMs.
const (
	// MaxCounter is the largest counter a Snapshot may hold: 2^63-1. Above
	// it a count can only be a negative number read as unsigned or a
	// sentinel (vts reports 2^64-1 as its maxIntegerSize). It is not 2^53:
	// a byte counter of one server at 10 Gb/s passes 2^53 in 83 days.
	MaxCounter = 1<<63 - 1
	// MaxRequestRate is the most requests, responses or errors per second
	// one server's counters may imply over an interval. A whole HAProxy does
	// a few million per second; 10^9 per server is no traffic.
	MaxRequestRate = 1e9
	// MaxByteRate is the most bytes per second (in or out) one server's
	// counters may imply over an interval: 10^12 B/s is 8 Tb/s.
	MaxByteRate = 1e12
	// MaxLatencyMs is the longest response time in ms (11.6 days) a source
	// may report or an interval's counters may imply as a mean.
	MaxLatencyMs = 1e9
)

// ErrNotLater is returned by Rate when the current snapshot is not strictly
// later than the previous one.
var ErrNotLater = errors.New("snapshot is not later than the previous one")

// Rates are per-second rates of one interval between two snapshots of the
// same source.
type Rates struct {
	// Start and End bound the interval.
	Start, End time.Time
	// Pools are the pools present in the later snapshot, in its order.
	Pools []PoolRates
	// Host are the host signals over the interval; nil unless both
	// snapshots carry Host.
	Host *HostRates
}

// Seconds is the length of the interval in seconds.
func (r *Rates) Seconds() float64 { return r.End.Sub(r.Start).Seconds() }

// Pool returns the rates of the named pool, or nil.
func (r *Rates) Pool(name string) *PoolRates {
	for i := range r.Pools {
		if r.Pools[i].Name == name {
			return &r.Pools[i]
		}
	}
	return nil
}

// PoolRates are the rates of one pool over an interval.
type PoolRates struct {
	Name string
	// Queue is the pool-level queue gauge at the end of the interval.
	Queue float64
	// SourceP50Ms, SourceP95Ms, SourceP99Ms are the pool's latency
	// percentiles over the interval as the source reports them (NGINX or
	// HAProxy logs, the simulator); nil otherwise. Read the pool's p95
	// through P95Ms, which falls back to an estimate.
	SourceP50Ms, SourceP95Ms, SourceP99Ms *float64
	// Servers are the servers of the later snapshot, in its order.
	Servers []ServerRates
}

// ServerRates are the rates of one server over an interval. Every rate is
// non-negative: a counter that went backwards is taken to have restarted from
// zero, so its increase is its current value.
type ServerRates struct {
	Name    string
	Address string
	Weight  int
	State   State
	Backup  bool
	// CheckStatus is the server's health-check result at the end of the
	// interval ("" when none).
	CheckStatus string
	// Reset is true when any counter of this server went backwards (a
	// balancer restart, a vts control reset), the server is new, or the
	// interval is Implausible.
	Reset bool
	// Implausible is true when the counters' increase over the interval
	// implies more than MaxRequestRate requests, responses or errors per
	// second, more than MaxByteRate bytes per second, or a mean response
	// time above MaxLatencyMs: a corrupt counter, not traffic. The server's
	// rates are then 0 (it adds nothing to its pool's figures),
	// MeanLatencyMs is the gauge, and Reset is set so that consumers that
	// drop reset intervals (the model's features) drop it too.
	Implausible bool
	// Requests, BytesIn, BytesOut, Errors are per second.
	Requests, BytesIn, BytesOut, Errors float64
	// Responses are per second by status class (index 0 = 1xx).
	Responses [5]float64
	// MeanLatencyMs is the interval mean response time from LatencySumMs
	// where the source keeps that counter and requests were served,
	// otherwise the balancer's moving average gauge. 0 when unknown.
	MeanLatencyMs float64
	// Gauges are the server's gauges at the end of the interval.
	Gauges Gauges
}

// ErrorRatio is the fraction of requests in the interval that ended in a
// 5xx response or a connection error; 0 when no request was served.
func (s *ServerRates) ErrorRatio() float64 {
	if s.Requests <= 0 {
		return 0
	}
	r := (s.Responses[4] + s.Errors) / s.Requests
	if r > 1 {
		r = 1
	}
	return r
}

// Requests is the pool's total request rate.
func (p *PoolRates) Requests() float64 {
	var t float64
	for i := range p.Servers {
		t += p.Servers[i].Requests
	}
	return t
}

// Rate derives per-second rates between two snapshots of the same source.
// Servers are matched by pool and server name; a server absent from prev, or
// whose counters went backwards, counts from zero (Reset is set). A server
// whose increase implies an implausible rate gets zero rates and
// Implausible (see MaxRequestRate). It returns ErrNotLater when cur is not
// strictly after prev.
func Rate(prev, cur *Snapshot) (Rates, error) {
	dt := cur.Time.Sub(prev.Time).Seconds()
	if dt <= 0 {
		return Rates{}, fmt.Errorf("rate %s at %s after %s: %w", cur.Source, cur.Time.Format(time.RFC3339Nano), prev.Time.Format(time.RFC3339Nano), ErrNotLater)
	}
	r := Rates{Start: prev.Time, End: cur.Time, Pools: make([]PoolRates, len(cur.Pools))}
	for i := range cur.Pools {
		cp := &cur.Pools[i]
		pp := prev.Pool(cp.Name)
		pr := PoolRates{Name: cp.Name, Queue: cp.Queue, SourceP50Ms: cp.P50Ms, SourceP95Ms: cp.P95Ms, SourceP99Ms: cp.P99Ms, Servers: make([]ServerRates, len(cp.Servers))}
		for j := range cp.Servers {
			cs := &cp.Servers[j]
			var ps *Server
			if pp != nil {
				// Servers are sorted by name, so the same index usually
				// holds the same server: look further only when it does not.
				if j < len(pp.Servers) && pp.Servers[j].Name == cs.Name {
					ps = &pp.Servers[j]
				} else {
					ps = pp.Server(cs.Name)
				}
			}
			pr.Servers[j] = serverRates(ps, cs, dt)
		}
		r.Pools[i] = pr
	}
	if prev.Host != nil && cur.Host != nil {
		hr := hostRates(prev.Host, cur.Host, dt)
		r.Host = &hr
	}
	return r, nil
}

func serverRates(prev, cur *Server, dt float64) ServerRates {
	sr := ServerRates{
		Name: cur.Name, Address: cur.Address, Weight: cur.Weight,
		State: cur.State, Backup: cur.Backup, CheckStatus: cur.CheckStatus, Gauges: cur.Gauges,
	}
	var p Counters
	if prev == nil {
		sr.Reset = true
	} else {
		p = prev.Counters
		if wentBack(p, cur.Counters) {
			sr.Reset = true
			p = Counters{}
		}
	}
	c := cur.Counters
	d := func(a, b uint64) float64 { return float64(b-a) / dt }
	sr.Requests = d(p.Requests, c.Requests)
	sr.BytesIn = d(p.BytesIn, c.BytesIn)
	sr.BytesOut = d(p.BytesOut, c.BytesOut)
	sr.Errors = d(p.Errors, c.Errors)
	for k := range sr.Responses {
		sr.Responses[k] = d(p.Responses[k], c.Responses[k])
	}
	sr.MeanLatencyMs = cur.Gauges.AvgResponseMs
	latency := false // MeanLatencyMs comes from the counters
	if n := c.Requests - p.Requests; n > 0 && c.LatencySumMs > 0 {
		sr.MeanLatencyMs = float64(c.LatencySumMs-p.LatencySumMs) / float64(n)
		latency = true
	}
	if implausible(&sr) || (latency && sr.MeanLatencyMs > MaxLatencyMs) {
		sr.Requests, sr.BytesIn, sr.BytesOut, sr.Errors = 0, 0, 0, 0
		sr.Responses = [5]float64{}
		sr.MeanLatencyMs = cur.Gauges.AvgResponseMs
		sr.Implausible, sr.Reset = true, true
	}
	return sr
}

// implausible reports whether the server's interval rates exceed
// MaxRequestRate or MaxByteRate.
func implausible(sr *ServerRates) bool {
	if sr.Requests > MaxRequestRate || sr.Errors > MaxRequestRate ||
		sr.BytesIn > MaxByteRate || sr.BytesOut > MaxByteRate {
		return true
	}
	for _, v := range sr.Responses {
		if v > MaxRequestRate {
			return true
		}
	}
	return false
}

// wentBack reports whether any counter of cur is below its value in prev.
func wentBack(prev, cur Counters) bool {
	if cur.Requests < prev.Requests || cur.BytesIn < prev.BytesIn || cur.BytesOut < prev.BytesOut ||
		cur.Errors < prev.Errors || cur.LatencySumMs < prev.LatencySumMs {
		return true
	}
	for k := range cur.Responses {
		if cur.Responses[k] < prev.Responses[k] {
			return true
		}
	}
	return false
}
