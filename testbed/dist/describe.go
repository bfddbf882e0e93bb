package dist

import (
	"math"
	"slices"
)

// Description summarises a sample: moments, extremes, squared coefficient of
// variation and percentiles. Units are those of the sample (ms in lbtune).
type Description struct {
	N        int     `json:"n"`
	Mean     float64 `json:"mean"`
	Variance float64 `json:"variance"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	// SCV is the squared coefficient of variation, Variance / Mean^2
	// (0 when Mean is 0): 1 for exponential, 0 for fixed times.
	SCV  float64 `json:"scv"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

// Describe returns the Description of xs; it sorts xs in place. The variance
// is the population variance (divide by n); percentiles use the nearest-rank
// method (the smallest x with at least q of the sample at or below it).
func Describe(xs []float64) Description {
	if len(xs) == 0 {
		return Description{}
	}
	slices.Sort(xs)
	// Welford's update keeps the variance accurate for large means.
	var mean, m2 float64
	for i, x := range xs {
		d := x - mean
		mean += d / float64(i+1)
		m2 += d * (x - mean)
	}
	v := m2 / float64(len(xs))
	d := Description{N: len(xs), Mean: mean, Variance: v, Min: xs[0], Max: xs[len(xs)-1]}
	if mean != 0 {
		d.SCV = v / (mean * mean)
	}
	d.P50, d.P90, d.P95, d.P99, d.P999 = Quantile(xs, 0.5), Quantile(xs, 0.9), Quantile(xs, 0.95), Quantile(xs, 0.99), Quantile(xs, 0.999)
	return d
}

// Quantile returns the nearest-rank q-quantile (0 < q <= 1) of sorted xs.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
