package agent

import (
	"math"

	"github.com/lbtune/lbtune/agent/queueing"
)

// Forecaster predicts a pool's arrival rate a few minutes ahead from the
// rates of past intervals: Holt's linear trend (double exponential
// smoothing) for the expected rate, an exponentially weighted mean absolute
// one-step error for its uncertainty, and the peak of the last few
// intervals as a floor, because flash crowds come back. The zero value is
// not usable; use NewForecaster.
type Forecaster struct {
	// Alpha smooths the level and Beta the trend, both in (0, 1].
	Alpha, Beta float64
	// ErrDecay weights the newest one-step error in the error average.
	ErrDecay float64
	// PeakWindow is how many past intervals the recent peak covers.
	PeakWindow int
	// IntervalSeconds, when positive, is the length of the interval each
	// observed rate was counted over. Forecast then takes the Poisson
	// counting noise of a rate (variance level/IntervalSeconds) out of the
	// one-step error before scaling it to the horizon: that noise does not
	// grow with the horizon, and the M/M/c sizing already prices Poisson
	// arrivals, so counting it as rate uncertainty buys servers against
	// noise on low-rate pools (about 25 requests per interval on the NASA
	// traces). The counting noise left in the smoothed level stays in.
	IntervalSeconds float64

	level, trend float64
	mad          float64 // mean absolute one-step error, requests/s
	n            int
	recent       []float64 // ring of the last PeakWindow rates
	next         int
}

// NewForecaster returns a Forecaster with level smoothing 0.5, trend
// smoothing 0.2, error decay 0.1 and a 5-interval peak window: it follows
// a flash crowd within two intervals and forgets it within ten.
func NewForecaster() *Forecaster {
	return &Forecaster{Alpha: 0.5, Beta: 0.2, ErrDecay: 0.1, PeakWindow: 5}
}

// Observe feeds the mean arrival rate (requests/s) of the latest interval.
// Negative or non-finite rates are ignored.
func (f *Forecaster) Observe(rate float64) {
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return
	}
	if f.PeakWindow > 0 {
		if len(f.recent) < f.PeakWindow {
			f.recent = append(f.recent, rate)
		} else {
			f.recent[f.next] = rate
			f.next = (f.next + 1) % f.PeakWindow
		}
	}
	switch f.n {
	case 0:
		f.level = rate
		f.mad = 0.1 * rate
	default:
		pred := f.level + f.trend
		f.mad = (1-f.ErrDecay)*f.mad + f.ErrDecay*math.Abs(rate-pred)
		prev := f.level
		f.level = f.Alpha*rate + (1-f.Alpha)*pred
		f.trend = f.Beta*(f.level-prev) + (1-f.Beta)*f.trend
	}
	f.n++
}

// Observed is the number of rates fed so far.
func (f *Forecaster) Observed() int { return f.n }

// Forecast returns the expected arrival rate steps intervals ahead,
// level + steps x trend (never below 0), and sigma, the standard deviation of
// a one-interval forecast error (1.25 x the mean absolute error, exact for
// normal errors), scaled by sqrt(steps) for the horizon. Only an upward
// trend is extrapolated: a falling rate is followed, not anticipated, so the
// pool shrinks late rather than early. With IntervalSeconds T set, sigma is
// sqrt(max(v - level/T, 0) x steps + a/(2-a) x level/T): v the one-step error
// variance, level/T the Poisson variance of one counted rate, a the level
// smoothing Alpha.
func (f *Forecaster) Forecast(steps float64) (mean, sigma float64) {
	if f.n == 0 {
		return 0, 0
	}
	tr := f.trend
	if tr < 0 {
		tr = 0
	}
	mean = f.level + steps*tr
	if mean < 0 {
		mean = 0
	}
	steps = math.Max(steps, 1)
	v := 1.25 * f.mad * 1.25 * f.mad // one-step error variance
	if f.IntervalSeconds <= 0 {
		return mean, math.Sqrt(v * steps)
	}
	vp := math.Max(f.level, 0) / f.IntervalSeconds // counting noise of one observed rate
	vl := f.Alpha / (2 - f.Alpha) * vp             // what exponential smoothing leaves of it in the level
	return mean, math.Sqrt(math.Max(v-vp, 0)*steps + vl)
}

// Trend is the smoothed change of the rate per interval (negative when falling).
func (f *Forecaster) Trend() float64 { return f.trend }

// Peak is the highest rate of the last PeakWindow intervals.
func (f *Forecaster) Peak() float64 {
	var p float64
	for _, r := range f.recent {
		p = math.Max(p, r)
	}
	return p
}

// fcPlanServers is the least c in [1, maxC] for which an M/M/c queue with
// arrival rate lambda and service rate mu keeps P(T > target) <= tail
// (queueing.MMcResponseTail); maxC when none does. A tail no number of servers
// reaches (below 1.2 x e^{-μ·target}, the service time's own tail) is
// raised to that floor. Unlike queueing.MinServers, it searches from c =
// floor(λ/μ) and floors the tail.
func fcPlanServers(lambda, mu, target, tail float64, maxC int) int {
	if maxC < 1 {
		maxC = 1
	}
	if mu <= 0 || lambda <= 0 {
		return 1
	}
	tail = math.Max(tail, 1.2*math.Exp(-mu*target))
	c := max(int(lambda/mu), 1)
	for ; c < maxC; c++ {
		if queueing.MMcResponseTail(lambda, mu, c, target) <= tail {
			return c
		}
	}
	return maxC
}

// fcServiceRate solves queueing.MMcMeanResponse(lambda, mu, c) = meanLatency for
// mu by bisection: the per-server service rate that explains the observed
// mean latency (seconds) of c servers at arrival rate lambda. It returns 0
// when the observation cannot inform it (no traffic, no latency).
func fcServiceRate(lambda float64, c int, meanLatency float64) float64 {
	if lambda <= 0 || c < 1 || meanLatency <= 0 {
		return 0
	}
	// The mean response falls as mu grows; mu is at least 1/meanLatency (no
	// queueing) and above lambda/c (stability).
	lo := math.Max(1/meanLatency, lambda/float64(c)) * (1 + 1e-9)
	if queueing.MMcMeanResponse(lambda, lo, c) <= meanLatency {
		return lo
	}
	hi := 2 * lo
	for queueing.MMcMeanResponse(lambda, hi, c) > meanLatency {
		hi *= 2
	}
	for range 60 {
		mid := (lo + hi) / 2
		if queueing.MMcMeanResponse(lambda, mid, c) > meanLatency {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// ServiceRateFromLatency is the per-server service rate (requests/s) at
// which an M/M/c pool of c servers offered lambda requests/s has the mean
// response time meanLatency (seconds); 0 when an argument is not positive.
func ServiceRateFromLatency(lambda float64, c int, meanLatency float64) float64 {
	return fcServiceRate(lambda, c, meanLatency)
}
