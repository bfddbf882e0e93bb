package agent

import (
	"math"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// The noise-aware SLO estimate: whether a pool's p95 is above a latency
// threshold, with the sampling noise of the requests the percentile rests
// on. At ~1 req/s a 30 s interval holds ~30 requests and a minute's p95 is
// the third slowest of ~60, so a point estimate passes the target by chance
// (an idle single-slot server with exponential service has a p95 of 0.75 x a
// 4/μ target, and a sample of 30 puts it above the target about one
// interval in ten). The fallback's breach rule and the agent's tail
// override ask TailEstimate.Over instead of comparing the point p95.

// sloQuantile is the percentile the SLO is stated on.
const sloQuantile = 0.95

// TailEstimate is what one or more intervals say about the share of a
// pool's requests slower than a latency threshold: the p95 is above the
// threshold exactly when more than 5% of requests are. Requests is how many
// requests the estimate rests on and Above how many of them are estimated
// to have been slower than the threshold.
type TailEstimate struct {
	Requests float64
	Above    float64
}

// Share is the estimated share of requests slower than the threshold (0
// with no requests).
func (e TailEstimate) Share() float64 {
	if e.Requests <= 0 {
		return 0
	}
	return e.Above / e.Requests
}

// Z is the one-sided test statistic of "the p95 is above the threshold":
// how many binomial standard deviations the count above the threshold is
// beyond the 5% of requests a p95 exactly at the threshold leaves above it,
// (Above - 0.05 n) / sqrt(n 0.05 0.95). Positive means above. 0 with no
// requests.
func (e TailEstimate) Z() float64 {
	if e.Requests <= 0 {
		return 0
	}
	q := 1 - sloQuantile
	return (e.Above - q*e.Requests) / math.Sqrt(e.Requests*q*(1-q))
}

// Over reports whether the p95 is above the threshold with one-sided
// confidence conf (e.g. 0.95): the count above the threshold is too large
// for a p95 at the threshold to have produced it by chance more often than
// 1 - conf. conf 0 (or below 0.5) is the point estimate: more than 5% of the
// requests above.
func (e TailEstimate) Over(conf float64) bool {
	if e.Requests <= 0 {
		return false
	}
	return e.Z() > sloZ(conf)
}

// Under reports whether the p95 is below the threshold with one-sided
// confidence conf; conf 0 is the point estimate.
func (e TailEstimate) Under(conf float64) bool {
	if e.Requests <= 0 {
		return false
	}
	return e.Z() < -sloZ(conf)
}

// Add returns the estimate over both e's and o's requests.
func (e TailEstimate) Add(o TailEstimate) TailEstimate {
	return TailEstimate{Requests: e.Requests + o.Requests, Above: e.Above + o.Above}
}

// sloZ is the standard normal quantile of conf for conf in (0.5, 1), and 0
// (the point estimate) otherwise.
func sloZ(conf float64) float64 {
	if !(conf > 0.5 && conf < 1) {
		return 0
	}
	return math.Sqrt2 * math.Erfinv(2*conf-1)
}

// IntervalTail estimates how many of the interval's requests were slower
// than thrMs: seconds x the pool's request rate x ExceedShare.
func IntervalTail(pr *collector.PoolRates, seconds, thrMs float64) TailEstimate {
	n := pr.Requests() * seconds
	if !(n > 0) || math.IsInf(n, 0) {
		return TailEstimate{}
	}
	return TailEstimate{Requests: n, Above: n * ExceedShare(pr, thrMs)}
}

// WindowTail sums IntervalTail over the intervals of window that end at
// the latest one (the latest always counts), newest first.
func WindowTail(intervals []collector.PoolRates, interval, window time.Duration, thrMs float64) TailEstimate {
	var e TailEstimate
	var span time.Duration
	for i := len(intervals) - 1; i >= 0 && (span < window || i == len(intervals)-1); i-- {
		e = e.Add(IntervalTail(&intervals[i], interval.Seconds(), thrMs))
		span += interval
	}
	return e
}

// ExceedShare estimates the share of an interval's requests slower than
// thrMs from the percentiles it reports. The log of the exceedance
// probability is taken as linear in the latency between the known points
// (0 ms: 1, p50: 0.5, p95: 0.05, p99: 0.01) and beyond the last one with the
// last segment's slope: an exponential tail, which is what M/M/c response
// times have. A source with only a p95 (collector.PoolRates.P95Ms, ln(20) x
// the mean where the source has no percentiles) gives the exponential
// distribution with that p95, the model the estimate was made with. 0 when
// the interval served nothing or thrMs is not positive.
func ExceedShare(pr *collector.PoolRates, thrMs float64) float64 {
	p95 := pr.P95Ms()
	if p95 <= 0 || !(thrMs > 0) {
		return 0
	}
	type point struct{ ms, logP float64 }
	pts := []point{{0, 0}}
	add := func(v *float64, p float64) {
		if v != nil && *v > pts[len(pts)-1].ms && !math.IsInf(*v, 0) {
			pts = append(pts, point{*v, math.Log(p)})
		}
	}
	if pr.SourceP95Ms != nil {
		add(pr.SourceP50Ms, 0.5)
	}
	add(&p95, 1-sloQuantile)
	if pr.SourceP95Ms != nil {
		add(pr.SourceP99Ms, 0.01)
	}
	if len(pts) < 2 {
		return 0
	}
	i := 1
	for i < len(pts)-1 && thrMs > pts[i].ms {
		i++
	}
	a, b := pts[i-1], pts[i]
	logP := a.logP + (thrMs-a.ms)*(b.logP-a.logP)/(b.ms-a.ms)
	return math.Min(1, math.Exp(logP))
}
