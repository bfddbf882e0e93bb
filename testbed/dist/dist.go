// Package dist draws random durations from the distributions the testbed
// uses for service times (backend) and inter-arrival times (loadgen):
// exponential, fixed, normal, log-normal and zipf, each scaled to a requested
// mean. Randomness is injected as a rand.Source so runs are replayable.
package dist

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
)

// Kind names a distribution.
type Kind string

// The distributions a Sampler draws from.
const (
	// Exponential has density (1/m) e^{-x/m}; SCV 1 (Poisson arrivals).
	Exponential Kind = "exp"
	// Fixed always returns the mean; SCV 0.
	Fixed Kind = "fixed"
	// Normal has standard deviation mean/4, truncated at 0; SCV ~1/16.
	Normal Kind = "normal"
	// LogNormal has sigma 1 in log space, so SCV = e^1 - 1 ~ 1.72.
	LogNormal Kind = "lognormal"
	// Zipf draws an integer k in [1, 1000] with P(k) ∝ k^-1.5 and scales
	// it so the mean is the requested one: heavy tailed, bursty.
	Zipf Kind = "zipf"
)

// ErrUnknownKind is returned by Parse for a name no distribution has.
var ErrUnknownKind = fmt.Errorf("unknown distribution")

// Parse maps a user-supplied name (exp, exponential, poisson, fixed,
// constant, normal, lognormal, zipf) to its Kind.
func Parse(name string) (Kind, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "exp", "exponential", "poisson":
		return Exponential, nil
	case "fixed", "constant", "det", "deterministic":
		return Fixed, nil
	case "normal", "gaussian":
		return Normal, nil
	case "lognormal", "log-normal":
		return LogNormal, nil
	case "zipf":
		return Zipf, nil
	}
	return "", fmt.Errorf("%w %q (want exp, fixed, normal, lognormal or zipf)", ErrUnknownKind, name)
}

const (
	zipfS    = 1.5
	zipfIMax = 999
	logSigma = 1.0
)

// Sampler draws values of one Kind. It is safe for concurrent use.
type Sampler struct {
	kind     Kind
	mu       sync.Mutex
	rng      *rand.Rand
	zipf     *rand.Zipf
	zipfMean float64
}

// New returns a Sampler of kind k drawing from src. It panics on an unknown
// kind (callers obtain kinds from Parse).
func New(k Kind, src rand.Source) *Sampler {
	s := &Sampler{kind: k, rng: rand.New(src)}
	switch k {
	case Exponential, Fixed, Normal, LogNormal:
	case Zipf:
		s.zipf = rand.NewZipf(s.rng, zipfS, 1, zipfIMax)
		// E[k+1] for k in [0, imax] with P(k) ∝ (1+k)^-s.
		var num, den float64
		for k := 0; k <= zipfIMax; k++ {
			p := math.Pow(float64(k+1), -zipfS)
			num += float64(k+1) * p
			den += p
		}
		s.zipfMean = num / den
	default:
		panic("dist: unknown kind " + string(k))
	}
	return s
}

// Kind returns the sampler's distribution.
func (s *Sampler) Kind() Kind { return s.kind }

// Draw returns one non-negative sample whose expectation is mean (mean >= 0;
// the truncated normal is within 0.01% of it).
func (s *Sampler) Draw(mean float64) float64 {
	if mean <= 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.kind {
	case Exponential:
		return s.rng.ExpFloat64() * mean
	case Normal:
		for {
			if v := mean + s.rng.NormFloat64()*mean/4; v >= 0 {
				return v
			}
		}
	case LogNormal:
		mu := math.Log(mean) - logSigma*logSigma/2
		return math.Exp(mu + logSigma*s.rng.NormFloat64())
	case Zipf:
		return float64(s.zipf.Uint64()+1) / s.zipfMean * mean
	}
	return mean
}
