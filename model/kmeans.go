package model

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
)

// kmeansPlusPlus picks k centres from the n x d rows of x by greedy
// k-means++ (Arthur & Vassilvitskii 2007, with 2 + ln k local trials per
// centre as in scikit-learn): the first centre uniformly, each next one among
// candidates drawn with probability proportional to the squared distance to
// the nearest chosen centre, keeping the candidate that lowers the total
// squared distance most. It returns the centres, k x d row-major.
func kmeansPlusPlus(x []float64, n, d, k int, rng *rand.Rand) []float64 {
	centers := make([]float64, k*d)
	trials := 2 + int(math.Log(float64(k)))
	first := rng.IntN(n)
	copy(centers[:d], x[first*d:(first+1)*d])
	closest := make([]float64, n)
	var pot float64
	for i := 0; i < n; i++ {
		closest[i] = sqDist(x[i*d:(i+1)*d], centers[:d])
		pot += closest[i]
	}
	cand := make([]float64, n)
	bestD := make([]float64, n)
	for c := 1; c < k; c++ {
		bestPot := math.Inf(1)
		bestIdx := -1
		for t := 0; t < trials; t++ {
			idx := sampleIndex(closest, pot, rng)
			cx := x[idx*d : (idx+1)*d]
			var p float64
			for i := 0; i < n; i++ {
				v := math.Min(closest[i], sqDist(x[i*d:(i+1)*d], cx))
				cand[i] = v
				p += v
			}
			if p < bestPot {
				bestPot, bestIdx = p, idx
				copy(bestD, cand)
			}
		}
		copy(centers[c*d:(c+1)*d], x[bestIdx*d:(bestIdx+1)*d])
		copy(closest, bestD)
		pot = bestPot
	}
	return centers
}

// sampleIndex draws i with probability w[i]/total; uniform when total is 0.
func sampleIndex(w []float64, total float64, rng *rand.Rand) int {
	if !(total > 0) {
		return rng.IntN(len(w))
	}
	u := rng.Float64() * total
	var acc float64
	for i, v := range w {
		acc += v
		if u < acc {
			return i
		}
	}
	return len(w) - 1
}

func sqDist(a, b []float64) float64 {
	b = b[:len(a)]
	var s float64
	for i, v := range a {
		e := v - b[i]
		s += e * e
	}
	return s
}

// lloyd refines centres by at most cfg.KMeansIter Lloyd iterations, stopping
// once at most 0.01% of the rows change centre, and leaves each row's nearest centre in labels. A centre that loses all its
// rows keeps its position.
func (f *fitter) lloyd(centers []float64, labels []int32) {
	d, k := f.d, f.cfg.K
	sums := make([]float64, k*d)
	counts := make([]float64, k)
	for it := 0; ; it++ {
		var changed atomic.Int64
		f.parallel(func(_, lo, hi int) {
			var ch int64
			for i := lo; i < hi; i++ {
				x := f.x[i*d : (i+1)*d]
				best, bestD := int32(0), math.Inf(1)
				for c := 0; c < k; c++ {
					if v := sqDist(x, centers[c*d:(c+1)*d]); v < bestD {
						best, bestD = int32(c), v
					}
				}
				if labels[i] != best || it == 0 {
					labels[i] = best
					ch++
				}
			}
			changed.Add(ch)
		})
		if it >= f.cfg.KMeansIter || changed.Load()*10000 <= int64(f.n) {
			return
		}
		clear(sums)
		clear(counts)
		for i := 0; i < f.n; i++ {
			c := int(labels[i])
			counts[c]++
			s := sums[c*d : (c+1)*d]
			for j, v := range f.x[i*d : (i+1)*d] {
				s[j] += v
			}
		}
		for c := 0; c < k; c++ {
			if counts[c] == 0 {
				continue
			}
			for j := 0; j < d; j++ {
				centers[c*d+j] = sums[c*d+j] / counts[c]
			}
		}
	}
}
