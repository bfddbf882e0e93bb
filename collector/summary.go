package collector

import "math"

// This file is the one definition of each pool-level quantity the agent, the
// threshold fallback, the model's features, the charts, the API and the
// dataset summaries read from an interval: serving servers (ServersUp, in
// cost.go), request rate (Requests), error ratio, mean and p95 response time.

// P95PerMean is the ratio p95 / mean of an exponentially distributed
// response time, ln(20) ~ 3.0. Sources that report only a mean (HAProxy's
// stats, nginx-module-vts) get their p95 estimated as P95PerMean x mean.
// For job mixes less variable than exponential this overstates the tail; for
// heavier ones it understates it. Sources with real percentiles (access logs)
// are used as they are.
const P95PerMean = 2.995732273553991 // math.Log(20)

// ErrorRatio is the fraction of the pool's requests in the interval that
// ended in a 5xx response or a connection error, in 0..1; 0 when no request
// was served.
func (p *PoolRates) ErrorRatio() float64 {
	var req, bad float64
	for i := range p.Servers {
		s := &p.Servers[i]
		req += s.Requests
		bad += s.Responses[4] + s.Errors
	}
	if req <= 0 {
		return 0
	}
	return math.Min(bad/req, 1)
}

// MeanMs is the pool's mean response time over the interval in ms: the
// request-weighted mean of its servers' MeanLatencyMs over the servers that
// served requests and report a latency. 0 when unknown.
func (p *PoolRates) MeanMs() float64 {
	var sum, w float64
	for i := range p.Servers {
		s := &p.Servers[i]
		if s.Requests > 0 && s.MeanLatencyMs > 0 {
			sum += s.Requests * s.MeanLatencyMs
			w += s.Requests
		}
	}
	if w == 0 {
		return 0
	}
	return sum / w
}

// P95Ms is the pool's p95 response time over the interval in ms, the single
// estimate every consumer uses:
//   - the pool's own percentile where the source gives one (SourceP95Ms);
//   - otherwise the request-weighted mean of its servers' P95Ms (each the
//     server's percentile where the source has one, else P95PerMean x its
//     mean; biased high when each server served few requests).
//
// 0 when nothing was served.
func (p *PoolRates) P95Ms() float64 {
	if p.SourceP95Ms != nil {
		return *p.SourceP95Ms
	}
	var sum, w float64
	for i := range p.Servers {
		s := &p.Servers[i]
		if s.Requests <= 0 {
			continue
		}
		sum += s.P95Ms() * s.Requests
		w += s.Requests
	}
	if w == 0 {
		return 0
	}
	return sum / w
}

// P95Imputed reports whether P95Ms is imputed from mean response times
// alone: the source gives no pool percentile and no server that served in
// the interval has its own (HAProxy's stats socket). Such an estimate is
// smooth and never falls below ln 20 x the mean service time.
func (p *PoolRates) P95Imputed() bool {
	if p.SourceP95Ms != nil {
		return false
	}
	for i := range p.Servers {
		if p.Servers[i].Requests > 0 && p.Servers[i].Gauges.P95Ms != nil {
			return false
		}
	}
	return true
}

// P95Ms is the server's p95 response time over the interval in ms: its own
// percentile where the source gives one, else P95PerMean x MeanLatencyMs.
func (s *ServerRates) P95Ms() float64 {
	if s.Gauges.P95Ms != nil {
		return *s.Gauges.P95Ms
	}
	return P95PerMean * s.MeanLatencyMs
}
