package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Dist is a service-time distribution given by its mean (seconds of work on
// a reference server) and squared coefficient of variation SCV = Var/Mean².
// Kind selects the family: "exp" (SCV 1, the default when Kind is empty and
// SCV is 0 or 1), "det" (SCV 0), "gamma" (any SCV > 0), "lognormal" (any
// SCV > 0) or "h2" (two-phase hyperexponential with balanced means, SCV > 1).
// With Kind empty, SCV < 1 selects gamma and SCV > 1 selects h2.
type Dist struct {
	Kind string  `yaml:"kind"`
	Mean float64 `yaml:"mean"`
	SCV  float64 `yaml:"scv"`
}

// sampler draws from a Dist with its parameters precomputed.
type sampler struct {
	kind   uint8
	mean   float64
	a, b   float64 // gamma: shape-derived d, c; lognormal: mu, sigma; h2: p, -
	m1, m2 float64 // h2 phase means; gamma scale in m1
	boost  bool    // gamma shape < 1: multiply by U^(1/shape)
	inv    float64 // 1/shape for the boost
}

const (
	kindExp uint8 = iota
	kindDet
	kindGamma
	kindLognormal
	kindH2
)

// Validate reports an unusable distribution.
func (d Dist) Validate() error {
	if !(d.Mean > 0) || math.IsInf(d.Mean, 0) {
		return fmt.Errorf("service mean %v must be positive", d.Mean)
	}
	if d.SCV < 0 || math.IsNaN(d.SCV) || math.IsInf(d.SCV, 0) {
		return fmt.Errorf("service scv %v must be >= 0", d.SCV)
	}
	switch d.Kind {
	case "", "exp":
		if d.Kind == "exp" && d.SCV != 0 && d.SCV != 1 {
			return fmt.Errorf("exp distribution has scv 1, not %v", d.SCV)
		}
	case "det":
		if d.SCV != 0 {
			return fmt.Errorf("det distribution has scv 0, not %v", d.SCV)
		}
	case "gamma", "lognormal":
		if d.SCV <= 0 {
			return fmt.Errorf("%s distribution needs scv > 0", d.Kind)
		}
	case "h2":
		if d.SCV <= 1 {
			return fmt.Errorf("h2 distribution needs scv > 1, not %v", d.SCV)
		}
	default:
		return fmt.Errorf("unknown distribution kind %q (want exp, det, gamma, lognormal or h2)", d.Kind)
	}
	return nil
}

func newSampler(d Dist) sampler {
	s := sampler{mean: d.Mean}
	kind := d.Kind
	if kind == "" {
		switch {
		case d.SCV == 0 || d.SCV == 1:
			kind = "exp"
		case d.SCV < 1:
			kind = "gamma"
		default:
			kind = "h2"
		}
	}
	switch kind {
	case "exp":
		s.kind = kindExp
	case "det":
		s.kind = kindDet
	case "gamma":
		s.kind = kindGamma
		shape := 1 / d.SCV
		s.m1 = d.Mean * d.SCV // scale
		if shape < 1 {
			s.boost, s.inv = true, 1/shape
			shape++
		}
		s.a = shape - 1.0/3
		s.b = 1 / math.Sqrt(9*s.a)
	case "lognormal":
		s.kind = kindLognormal
		s.b = math.Sqrt(math.Log1p(d.SCV))
		s.a = math.Log(d.Mean) - s.b*s.b/2
	case "h2":
		s.kind = kindH2
		s.a = (1 + math.Sqrt((d.SCV-1)/(d.SCV+1))) / 2
		s.m1 = d.Mean / (2 * s.a)
		s.m2 = d.Mean / (2 * (1 - s.a))
	}
	return s
}

// sample draws one service demand in seconds.
func (s *sampler) sample(r *rand.Rand) float64 {
	switch s.kind {
	case kindExp:
		return s.mean * r.ExpFloat64()
	case kindDet:
		return s.mean
	case kindGamma:
		// Marsaglia and Tsang (2000).
		for {
			x := r.NormFloat64()
			v := 1 + s.b*x
			if v <= 0 {
				continue
			}
			v = v * v * v
			u := r.Float64()
			if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+s.a*(1-v+math.Log(v)) {
				g := s.a * v * s.m1
				if s.boost {
					g *= math.Pow(r.Float64(), s.inv)
				}
				return g
			}
		}
	case kindLognormal:
		return math.Exp(s.a + s.b*r.NormFloat64())
	default: // h2
		if r.Float64() < s.a {
			return s.m1 * r.ExpFloat64()
		}
		return s.m2 * r.ExpFloat64()
	}
}
