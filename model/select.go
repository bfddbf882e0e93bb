package model

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// Selection is the outcome of fitting every k in a range and keeping the
// one with the lowest BIC.
type Selection struct {
	// Best is the fit with the lowest BIC; K is its number of components.
	Best FitResult
	K    int
	// Fits holds every successful fit by k.
	Fits map[int]FitResult
}

// BICs returns the BIC of every fitted k.
func (s *Selection) BICs() map[int]float64 {
	m := make(map[int]float64, len(s.Fits))
	for k, f := range s.Fits {
		m[k] = f.BIC
	}
	return m
}

// AICs returns the AIC of every fitted k.
func (s *Selection) AICs() map[int]float64 {
	m := make(map[int]float64, len(s.Fits))
	for k, f := range s.Fits {
		m[k] = f.AIC
	}
	return m
}

// SelectK fits a mixture for every k in [kmin, kmax] (cfg.K is ignored),
// in increasing k, drawing every initialisation from src, and returns the
// fit with the lowest BIC. Values of k above the number of samples are
// skipped; a k whose every restart fails is skipped too unless no k
// succeeds. done, when non-nil, is called after each k.
func SelectK(ctx context.Context, x *mat.Dense, kmin, kmax int, cfg FitConfig, src rand.Source, done func(k int)) (Selection, error) {
	if kmin < 1 || kmax < kmin {
		return Selection{}, fmt.Errorf("select k in [%d, %d]: want 1 <= kmin <= kmax", kmin, kmax)
	}
	n, _ := x.Dims()
	sel := Selection{Fits: map[int]FitResult{}}
	var errs []error
	for k := kmin; k <= kmax && k <= n; k++ {
		c := cfg
		c.K = k
		r, err := Fit(ctx, x, c, src)
		if done != nil {
			done(k)
		}
		if err != nil {
			if ctx.Err() != nil {
				return Selection{}, fmt.Errorf("select k: %w", ctx.Err())
			}
			errs = append(errs, err)
			continue
		}
		sel.Fits[k] = r
		if sel.Best.GMM == nil || r.BIC < sel.Best.BIC {
			sel.Best, sel.K = r, k
		}
	}
	if sel.Best.GMM == nil {
		if len(errs) == 0 {
			errs = append(errs, fmt.Errorf("%d samples: %w", n, ErrTooFewSamples))
		}
		return Selection{}, fmt.Errorf("select k in [%d, %d]: %w", kmin, kmax, errors.Join(errs...))
	}
	return sel, nil
}
