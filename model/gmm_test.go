package model

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// mixture is a known Gaussian mixture to sample from.
type mixture struct {
	weights []float64
	means   [][]float64
	covs    [][]float64 // each d x d row-major
}

// sample draws n rows from m with a fixed seed.
func (m mixture) sample(n int, seed uint64) *mat.Dense {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d := len(m.means[0])
	chols := make([]*mat.TriDense, len(m.weights))
	for k, c := range m.covs {
		var ch mat.Cholesky
		if !ch.Factorize(mat.NewSymDense(d, append([]float64(nil), c...))) {
			panic("test covariance not positive definite")
		}
		chols[k] = new(mat.TriDense)
		ch.LTo(chols[k])
	}
	x := mat.NewDense(n, d, nil)
	z := make([]float64, d)
	for i := 0; i < n; i++ {
		u := rng.Float64()
		k := 0
		for acc := m.weights[0]; u > acc && k < len(m.weights)-1; {
			k++
			acc += m.weights[k]
		}
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		for r := 0; r < d; r++ {
			v := m.means[k][r]
			for c := 0; c <= r; c++ {
				v += chols[k].At(r, c) * z[c]
			}
			x.Set(i, r, v)
		}
	}
	return x
}

func diagCov(v ...float64) []float64 {
	d := len(v)
	c := make([]float64, d*d)
	for i, x := range v {
		c[i*d+i] = x
	}
	return c
}

var threeBlobs = mixture{
	weights: []float64{0.5, 0.3, 0.2},
	means:   [][]float64{{0, 0}, {6, 0}, {0, 7}},
	covs:    [][]float64{{1, 0.5, 0.5, 1}, {0.5, 0, 0, 2}, {2, -0.8, -0.8, 1}},
}

var twoDiag = mixture{
	weights: []float64{0.6, 0.4},
	means:   [][]float64{{0, 0, 0, 0}, {4, -4, 4, -4}},
	covs:    [][]float64{diagCov(1, 2, 0.5, 1), diagCov(0.3, 1, 1, 3)},
}

// matchComponent returns the fitted component whose mean is nearest to mu.
func matchComponent(g *GMM, mu []float64) int {
	best, bestD := 0, math.Inf(1)
	for k := 0; k < g.K; k++ {
		if d := sqDist(mu, g.Means[k*g.D:(k+1)*g.D]); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func TestFitRecoversParameters(t *testing.T) {
	tests := []struct {
		name    string
		mix     mixture
		cov     CovarianceType
		n       int
		meanTol float64 // absolute, per coordinate
		covTol  float64 // absolute, per entry
		wTol    float64
	}{
		// 6000 samples: standard error of a mean ~ sqrt(2/1200) = 0.04, of a
		// variance ~ 2*sqrt(2/1200) = 0.08; tolerances are about 3 sigma.
		{name: "full 2d three blobs", mix: threeBlobs, cov: Full, n: 6000, meanTol: 0.15, covTol: 0.3, wTol: 0.03},
		{name: "diag 4d two blobs", mix: twoDiag, cov: Diag, n: 6000, meanTol: 0.15, covTol: 0.3, wTol: 0.03},
		{name: "full fit of diagonal truth", mix: twoDiag, cov: Full, n: 6000, meanTol: 0.15, covTol: 0.3, wTol: 0.03},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := tc.mix.sample(tc.n, 1)
			k := len(tc.mix.weights)
			r, err := Fit(context.Background(), x, FitConfig{K: k, Cov: tc.cov}, rand.NewPCG(7, 7))
			if err != nil {
				t.Fatal(err)
			}
			g := r.GMM
			d := g.D
			seen := map[int]bool{}
			for c, mu := range tc.mix.means {
				m := matchComponent(g, mu)
				if seen[m] {
					t.Fatalf("true component %d matched fitted %d twice", c, m)
				}
				seen[m] = true
				if dw := math.Abs(g.Weights[m] - tc.mix.weights[c]); dw > tc.wTol {
					t.Errorf("component %d weight %.3f, want %.3f", c, g.Weights[m], tc.mix.weights[c])
				}
				for j := 0; j < d; j++ {
					if e := math.Abs(g.Means[m*d+j] - mu[j]); e > tc.meanTol {
						t.Errorf("component %d mean[%d] %.3f, want %.3f", c, j, g.Means[m*d+j], mu[j])
					}
				}
				for i := 0; i < d; i++ {
					for j := 0; j < d; j++ {
						want := tc.mix.covs[c][i*d+j]
						var got float64
						if g.Cov == Diag {
							if i != j {
								continue
							}
							got = g.Covariances[m*d+i]
						} else {
							got = g.Covariances[m*d*d+i*d+j]
						}
						if math.Abs(got-want) > tc.covTol {
							t.Errorf("component %d cov[%d,%d] %.3f, want %.3f", c, i, j, got, want)
						}
					}
				}
			}
			if !g.Converged {
				t.Errorf("did not converge in %d iterations", g.Iterations)
			}
		})
	}
}

func TestSelectKByBIC(t *testing.T) {
	tests := []struct {
		name  string
		mix   mixture
		cov   CovarianceType
		kmax  int
		wantK int
	}{
		{name: "three full blobs", mix: threeBlobs, cov: Full, kmax: 6, wantK: 3},
		{name: "two diagonal blobs", mix: twoDiag, cov: Diag, kmax: 5, wantK: 2},
		{name: "single gaussian", mix: mixture{weights: []float64{1}, means: [][]float64{{1, 2, 3}}, covs: [][]float64{diagCov(1, 1, 1)}}, cov: Full, kmax: 4, wantK: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := tc.mix.sample(3000, 2)
			var done []int
			sel, err := SelectK(context.Background(), x, 1, tc.kmax, FitConfig{Cov: tc.cov}, rand.NewPCG(3, 3), func(k int) { done = append(done, k) })
			if err != nil {
				t.Fatal(err)
			}
			if sel.K != tc.wantK {
				t.Errorf("BIC chose k=%d, want %d (BIC %v)", sel.K, tc.wantK, sel.BICs())
			}
			if len(done) != tc.kmax || len(sel.BICs()) != tc.kmax || len(sel.AICs()) != tc.kmax {
				t.Errorf("progress %v, %d BICs, want %d", done, len(sel.BICs()), tc.kmax)
			}
		})
	}
}

func TestFitDeterministic(t *testing.T) {
	x := threeBlobs.sample(5000, 4)
	fit := func(threads int) *GMM {
		r, err := Fit(context.Background(), x, FitConfig{K: 3, Threads: threads}, rand.NewPCG(11, 12))
		if err != nil {
			t.Fatal(err)
		}
		return r.GMM
	}
	a, b, c := fit(1), fit(1), fit(4)
	for i := range a.Means {
		if a.Means[i] != b.Means[i] || a.Means[i] != c.Means[i] {
			t.Fatalf("means differ between runs: %v %v %v", a.Means, b.Means, c.Means)
		}
	}
	for i := range a.Covariances {
		if a.Covariances[i] != c.Covariances[i] {
			t.Fatalf("covariances differ with thread count")
		}
	}
}

func TestPosteriorsPredictOOD(t *testing.T) {
	x := threeBlobs.sample(4000, 5)
	r, err := Fit(context.Background(), x, FitConfig{K: 3}, rand.NewPCG(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	g := r.GMM
	tests := []struct {
		name    string
		x       []float64
		wantOOD bool
		nearest []float64 // true mean of the component that should win
	}{
		{name: "centre of blob 0", x: []float64{0, 0}, nearest: []float64{0, 0}},
		{name: "centre of blob 1", x: []float64{6, 0}, nearest: []float64{6, 0}},
		{name: "centre of blob 2", x: []float64{0, 7}, nearest: []float64{0, 7}},
		{name: "far state", x: []float64{60, -45}, wantOOD: true},
		{name: "between blobs but far", x: []float64{20, 20}, wantOOD: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := g.OOD(tc.x); got != tc.wantOOD {
				t.Errorf("OOD = %v (ll %.2f, threshold %.2f), want %v", got, g.LogLikelihood(tc.x), g.OODThreshold, tc.wantOOD)
			}
			p := g.Posteriors(tc.x, nil)
			var s float64
			for _, v := range p {
				s += v
			}
			if math.Abs(s-1) > 1e-9 {
				t.Errorf("posteriors %v sum to %v", p, s)
			}
			if tc.nearest != nil {
				want := matchComponent(g, tc.nearest)
				if got := g.Predict(tc.x); got != want {
					t.Errorf("Predict = %d, want %d", got, want)
				}
				if p[want] < 0.99 {
					t.Errorf("posterior of own component %.4f, want > 0.99", p[want])
				}
			}
		})
	}
	// About OODQuantile of the training data falls below the threshold.
	var below int
	n, _ := x.Dims()
	for i := 0; i < n; i++ {
		if g.OOD(x.RawRowView(i)) {
			below++
		}
	}
	if frac := float64(below) / float64(n); frac > 0.02 {
		t.Errorf("%.3f of training samples flagged OOD, want about 0.01", frac)
	}
}

func TestFitErrors(t *testing.T) {
	tests := []struct {
		name string
		x    *mat.Dense
		cfg  FitConfig
		want error
	}{
		{name: "more components than samples", x: mat.NewDense(2, 2, []float64{1, 2, 3, 4}), cfg: FitConfig{K: 3}, want: ErrTooFewSamples},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(context.Background(), tc.x, tc.cfg, rand.NewPCG(1, 1))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Constant data: every covariance is RegCovar*I, which is still a valid fit.
	x := mat.NewDense(50, 3, nil)
	r, err := Fit(context.Background(), x, FitConfig{K: 2}, rand.NewPCG(1, 1))
	if err != nil {
		t.Fatalf("constant data: %v", err)
	}
	if math.IsNaN(r.LogLikelihood) {
		t.Fatalf("constant data: NaN log-likelihood")
	}
}

func TestFitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Fit(ctx, threeBlobs.sample(500, 1), FitConfig{K: 3}, rand.NewPCG(1, 1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func BenchmarkFit(b *testing.B) {
	for _, bc := range []struct {
		name string
		n, d int
		cov  CovarianceType
	}{
		{"n1e4_d8_full", 10000, 8, Full},
		{"n1e4_d16_full", 10000, 16, Full},
		{"n1e4_d16_diag", 10000, 16, Diag},
	} {
		m := randomMixture(4, bc.d, 9)
		x := m.sample(bc.n, 1)
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Fit(context.Background(), x, FitConfig{K: 4, Cov: bc.cov, Restarts: 1}, rand.NewPCG(1, 1)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPosteriors(b *testing.B) {
	x := randomMixture(4, 14, 3).sample(5000, 1)
	r, err := Fit(context.Background(), x, FitConfig{K: 4, Restarts: 1}, rand.NewPCG(1, 1))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float64, 4)
	row := x.RawRowView(0)
	b.ReportAllocs()
	for b.Loop() {
		dst = r.GMM.Posteriors(row, dst)
	}
}

// randomMixture is a k-component mixture in d dimensions with means spread
// over [-5, 5]^d and random well-conditioned covariances.
func randomMixture(k, d int, seed uint64) mixture {
	rng := rand.New(rand.NewPCG(seed, seed))
	m := mixture{}
	for c := 0; c < k; c++ {
		m.weights = append(m.weights, 1/float64(k))
		mu := make([]float64, d)
		for j := range mu {
			mu[j] = rng.Float64()*10 - 5
		}
		m.means = append(m.means, mu)
		a := mat.NewDense(d, d, nil)
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				a.Set(i, j, rng.NormFloat64()/math.Sqrt(float64(d)))
			}
		}
		var cov mat.Dense
		cov.Mul(a, a.T())
		for i := 0; i < d; i++ {
			cov.Set(i, i, cov.At(i, i)+0.3)
		}
		m.covs = append(m.covs, cov.RawMatrix().Data)
	}
	return m
}
