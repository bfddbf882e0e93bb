package agent

import (
	"math"
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
// pool shrinks late rather than early.
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
	return mean, 1.25 * f.mad * math.Sqrt(math.Max(steps, 1))
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

// fcErlangC is the probability that an arrival waits in an M/M/c queue
// offered a = λ/μ erlangs: C = B / (1 - ρ(1 - B)), B the Erlang-B
// probability from the stable recurrence B(k) = aB(k-1) / (k + aB(k-1)).
// It is 1 when ρ = a/c >= 1.
func fcErlangC(c int, a float64) float64 {
	if c <= 0 || a >= float64(c) {
		return 1
	}
	b := 1.0
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	rho := a / float64(c)
	return b / (1 - rho*(1-b))
}

// fcResponseTail is P(T > t) for the response time of an M/M/c FCFS queue
// with arrival rate lambda and per-server service rate mu (per second):
// T = W + S, S ~ Exp(μ), W = 0 with probability 1-C and Exp(α), α = cμ-λ,
// otherwise, so P(T > t) = (1-C)e^{-μt} + C(αe^{-μt} - μe^{-αt})/(α-μ).
// It is 1 when λ >= cμ.
func fcResponseTail(lambda, mu float64, c int, t float64) float64 {
	if lambda >= float64(c)*mu {
		return 1
	}
	pc := fcErlangC(c, lambda/mu)
	alpha := float64(c)*mu - lambda
	es := math.Exp(-mu * t)
	var hypo float64
	if math.Abs(alpha-mu) < 1e-9*mu {
		hypo = es * (1 + mu*t)
	} else {
		hypo = (alpha*es - mu*math.Exp(-alpha*t)) / (alpha - mu)
	}
	return (1-pc)*es + pc*hypo
}

// fcMeanResponse is the M/M/c mean response time C/(cμ-λ) + 1/μ in seconds;
// +Inf when λ >= cμ.
func fcMeanResponse(lambda, mu float64, c int) float64 {
	if lambda >= float64(c)*mu {
		return math.Inf(1)
	}
	return fcErlangC(c, lambda/mu)/(float64(c)*mu-lambda) + 1/mu
}

// fcPlanServers is the least c in [1, maxC] for which an M/M/c queue with
// arrival rate lambda and service rate mu keeps P(T > target) <= tail;
// maxC when none does. A tail no number of servers reaches (below 1.2 x
// e^{-μ·target}, the service time's own tail) is raised to that floor.
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
		if fcResponseTail(lambda, mu, c, target) <= tail {
			return c
		}
	}
	return maxC
}

// fcServiceRate solves fcMeanResponse(lambda, mu, c) = meanLatency for
// mu by bisection: the per-server service rate that explains the observed
// mean latency (seconds) of c servers at arrival rate lambda. It returns 0
// when the observation cannot inform it (no traffic, no latency).
func fcServiceRate(lambda float64, c int, meanLatency float64) float64 {
	if lambda <= 0 || c < 1 || meanLatency <= 0 {
		return 0
	}
	// fcMeanResponse falls as mu grows; mu is at least 1/meanLatency (no
	// queueing) and above lambda/c (stability).
	lo := math.Max(1/meanLatency, lambda/float64(c)) * (1 + 1e-9)
	if fcMeanResponse(lambda, lo, c) <= meanLatency {
		return lo
	}
	hi := 2 * lo
	for fcMeanResponse(lambda, hi, c) > meanLatency {
		hi *= 2
	}
	for range 60 {
		mid := (lo + hi) / 2
		if fcMeanResponse(lambda, mid, c) > meanLatency {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}
