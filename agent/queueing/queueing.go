package queueing

import "math"

// ErlangB is the Erlang-B blocking probability of c servers offered a
// erlangs (a = λ/μ), computed with the stable recurrence
// B(0) = 1, B(k) = a·B(k-1) / (k + a·B(k-1)). It panics if c < 0.
func ErlangB(c int, a float64) float64 {
	if c < 0 {
		panic("queueing: ErlangB with negative servers")
	}
	b := 1.0
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	return b
}

// ErlangC is the probability that an arrival waits in an M/M/c queue with
// offered load a = λ/μ erlangs: C = B / (1 - ρ(1 - B)) with ρ = a/c and B the
// Erlang-B probability. It returns 1 when ρ >= 1 (every arrival waits).
func ErlangC(c int, a float64) float64 {
	if c <= 0 || a >= float64(c) {
		return 1
	}
	b := ErlangB(c, a)
	rho := a / float64(c)
	return b / (1 - rho*(1-b))
}

// MMcMeanResponse is the mean response (sojourn) time in seconds of an
// M/M/c FCFS queue with arrival rate lambda and per-server service rate mu
// (both per second): E[T] = C/(cμ - λ) + 1/μ. It returns +Inf when λ >= cμ.
func MMcMeanResponse(lambda, mu float64, c int) float64 {
	if lambda >= float64(c)*mu {
		return math.Inf(1)
	}
	return ErlangC(c, lambda/mu)/(float64(c)*mu-lambda) + 1/mu
}

// MMcResponseTail is P(T > t) for the response time T of an M/M/c FCFS queue:
// T = W + S with S ~ Exp(μ) and W = 0 with probability 1-C, otherwise
// Exp(α) with α = cμ - λ, so
// P(T > t) = (1-C)e^{-μt} + C·(α e^{-μt} - μ e^{-αt})/(α - μ)  (α ≠ μ).
// It returns 1 when λ >= cμ. It is GGcResponseTail with scv = 1.
func MMcResponseTail(lambda, mu float64, c int, t float64) float64 {
	return GGcResponseTail(lambda, mu, c, 1, t)
}

// MMcResponseQuantile is the q-quantile (0 < q < 1) of the M/M/c response
// time in seconds, found by bisection on MMcResponseTail; +Inf when λ >= cμ.
func MMcResponseQuantile(lambda, mu float64, c int, q float64) float64 {
	if lambda >= float64(c)*mu {
		return math.Inf(1)
	}
	lo, hi := 0.0, 1/mu
	for MMcResponseTail(lambda, mu, c, hi) > 1-q {
		hi *= 2
	}
	for range 60 {
		mid := (lo + hi) / 2
		if MMcResponseTail(lambda, mu, c, mid) > 1-q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// MinServers is the least c in [1, maxC] whose M/M/c response-time
// q-quantile is at most target seconds at arrival rate lambda and service
// rate mu; maxC when none is. At lambda = 0 it is 1. It is MinServersSCV
// with scv = 1.
func MinServers(lambda, mu, target, q float64, maxC int) int {
	return MinServersSCV(lambda, mu, 1, target, q, maxC)
}

// GGcResponseTail approximates P(T > t) for a G/G/c-like pool with Poisson
// arrivals and service-time squared coefficient of variation scv, by the
// Allen-Cunneen correction of M/M/c: the waiting probability stays
// Erlang-C, the conditional wait stays exponential but its mean is
// multiplied by (1 + scv)/2; the service part stays exponential with rate
// μ. For scv = 1 it equals MMcResponseTail.
func GGcResponseTail(lambda, mu float64, c int, scv, t float64) float64 {
	if lambda >= float64(c)*mu {
		return 1
	}
	pc := ErlangC(c, lambda/mu)
	alpha := (float64(c)*mu - lambda) * 2 / (1 + scv)
	es := math.Exp(-mu * t)
	var hypo float64
	if math.Abs(alpha-mu) < 1e-9*mu {
		hypo = es * (1 + mu*t)
	} else {
		hypo = (alpha*es - mu*math.Exp(-alpha*t)) / (alpha - mu)
	}
	return (1-pc)*es + pc*hypo
}

// MinServersSCV is MinServers with the GGcResponseTail approximation for
// service times of squared coefficient of variation scv.
func MinServersSCV(lambda, mu, scv, target, q float64, maxC int) int {
	if maxC < 1 {
		maxC = 1
	}
	c := max(int(lambda/mu)+1, 1)
	for ; c < maxC; c++ {
		if GGcResponseTail(lambda, mu, c, scv, target) <= 1-q {
			return c
		}
	}
	return maxC
}
