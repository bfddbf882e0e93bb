package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// CovarianceType selects the shape of each component's covariance matrix.
type CovarianceType string

// Covariance types, named as in scikit-learn's GaussianMixture.
const (
	// Full gives each component its own full d x d covariance matrix.
	Full CovarianceType = "full"
	// Diag gives each component its own diagonal covariance matrix.
	Diag CovarianceType = "diag"
)

// ParseCovarianceType returns the CovarianceType named s ("full" or "diag").
func ParseCovarianceType(s string) (CovarianceType, error) {
	switch CovarianceType(s) {
	case Full, Diag:
		return CovarianceType(s), nil
	}
	return "", fmt.Errorf("covariance type %q: want full or diag", s)
}

// ErrSingular is returned when a component's covariance matrix is not
// positive definite even after regularisation.
var ErrSingular = errors.New("covariance matrix is not positive definite")

// ErrTooFewSamples is returned when a fit is asked for more components than
// there are samples.
var ErrTooFewSamples = errors.New("fewer samples than components")

// FitConfig holds the EM settings. The zero value of every field selects the
// default named in its comment (the defaults match scikit-learn's
// GaussianMixture except Restarts, which is 1 there).
type FitConfig struct {
	// K is the number of components (required, >= 1).
	K int
	// Cov is the covariance type; default Full.
	Cov CovarianceType
	// Restarts is the number of k-means++ initialisations; the fit with the
	// highest final lower bound wins. Default 3.
	Restarts int
	// Tol stops EM once the mean log-likelihood per sample changes by less
	// than Tol between iterations. Default 1e-3.
	Tol float64
	// MaxIter caps the EM iterations of one restart. Default 100.
	MaxIter int
	// KMeansIter caps the Lloyd iterations that refine the k-means++ seeds
	// before EM. Default 10; negative means seeds only.
	KMeansIter int
	// RegCovar is added to the diagonal of every covariance matrix. Default 1e-6.
	RegCovar float64
	// Threads is the number of goroutines the E/M pass uses; default
	// runtime.GOMAXPROCS(0). Results do not depend on it.
	Threads int
	// OODQuantile is the quantile of the training samples' log-likelihoods
	// below which a state is out of distribution. Default 0.01.
	OODQuantile float64
}

func (c FitConfig) withDefaults() FitConfig {
	if c.Cov == "" {
		c.Cov = Full
	}
	if c.Restarts <= 0 {
		c.Restarts = 3
	}
	if c.Tol <= 0 {
		c.Tol = 1e-3
	}
	if c.MaxIter <= 0 {
		c.MaxIter = 100
	}
	if c.KMeansIter == 0 {
		c.KMeansIter = 10
	}
	if c.RegCovar <= 0 {
		c.RegCovar = 1e-6
	}
	if c.Threads <= 0 {
		c.Threads = runtime.GOMAXPROCS(0)
	}
	if c.OODQuantile <= 0 {
		c.OODQuantile = 0.01
	}
	return c
}

// GMM is a fitted Gaussian Mixture Model over d-dimensional vectors:
//
//	p(x) = sum_k Weights[k] * N(x; Means[k], Cov[k])
//
// A GMM is read-only after Fit or Prepare and safe for concurrent use.
type GMM struct {
	// K is the number of components and D the dimension.
	K int `json:"k"`
	D int `json:"d"`
	// Cov is the covariance type.
	Cov CovarianceType `json:"covariance_type"`
	// Weights are the mixture weights (length K, summing to 1).
	Weights []float64 `json:"weights"`
	// Means are the component means, row-major K x D.
	Means []float64 `json:"means"`
	// Covariances are row-major K x D x D for Full, K x D for Diag.
	Covariances []float64 `json:"covariances"`
	// OODThreshold is the log-likelihood below which a vector is out of
	// distribution (a low quantile of the training log-likelihoods).
	OODThreshold float64 `json:"ood_threshold"`
	// Iterations is the number of EM iterations of the winning restart.
	Iterations int `json:"iterations"`
	// Converged reports whether that restart met the tolerance.
	Converged bool `json:"converged"`

	// prec holds, per component, L^-1 where Cov = L L^T: packed lower
	// triangles (D(D+1)/2 each) for Full, 1/sqrt(var) (D each) for Diag.
	prec []float64
	// shift holds L^-1 mu per component (K x D), so that the whitened
	// residual is y = L^-1 x - shift.
	shift []float64
	// logNorm is log w_k - D/2 log(2 pi) - log det L per component.
	logNorm []float64
}

// NumParams is the number of free parameters: K-1 weights, K*D means and
// K*D(D+1)/2 (Full) or K*D (Diag) covariance entries.
func (g *GMM) NumParams() int {
	cov := g.K * g.D * (g.D + 1) / 2
	if g.Cov == Diag {
		cov = g.K * g.D
	}
	return g.K - 1 + g.K*g.D + cov
}

// BIC is the Bayesian information criterion for n samples whose mean
// log-likelihood per sample is meanLL: -2 n meanLL + p ln n (lower is better).
func (g *GMM) BIC(n int, meanLL float64) float64 {
	return -2*float64(n)*meanLL + float64(g.NumParams())*math.Log(float64(n))
}

// AIC is the Akaike information criterion: -2 n meanLL + 2 p.
func (g *GMM) AIC(n int, meanLL float64) float64 {
	return -2*float64(n)*meanLL + 2*float64(g.NumParams())
}

func (g *GMM) tri() int { return g.D * (g.D + 1) / 2 }

// Prepare validates the parameters and computes the Cholesky factors the
// densities use. Fit calls it; call it after filling a GMM by hand or from
// JSON. It returns ErrSingular for a covariance that is not positive
// definite.
func (g *GMM) Prepare() error {
	if g.K < 1 || g.D < 1 {
		return fmt.Errorf("gmm: k=%d d=%d: both must be >= 1", g.K, g.D)
	}
	covLen := g.K * g.D * g.D
	switch g.Cov {
	case Full:
	case Diag:
		covLen = g.K * g.D
	default:
		return fmt.Errorf("gmm: unknown covariance type %q", g.Cov)
	}
	if len(g.Weights) != g.K || len(g.Means) != g.K*g.D || len(g.Covariances) != covLen {
		return fmt.Errorf("gmm: k=%d d=%d %s: have %d weights, %d means, %d covariance entries",
			g.K, g.D, g.Cov, len(g.Weights), len(g.Means), len(g.Covariances))
	}
	for _, vs := range [][]float64{g.Weights, g.Means, g.Covariances} {
		for _, v := range vs {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("gmm: non-finite parameter %v", v)
			}
		}
	}
	var wsum float64
	for _, w := range g.Weights {
		if w < 0 {
			return fmt.Errorf("gmm: negative weight %v", w)
		}
		wsum += w
	}
	if math.Abs(wsum-1) > 1e-6 {
		return fmt.Errorf("gmm: weights sum to %v, not 1", wsum)
	}
	d := g.D
	g.shift = resize(g.shift, g.K*d)
	g.logNorm = resize(g.logNorm, g.K)
	if g.Cov == Diag {
		g.prec = resize(g.prec, g.K*d)
	} else {
		g.prec = resize(g.prec, g.K*g.tri())
	}
	sym := mat.NewSymDense(d, nil)
	var chol mat.Cholesky
	var l mat.TriDense
	for k := 0; k < g.K; k++ {
		mu := g.Means[k*d : (k+1)*d]
		sh := g.shift[k*d : (k+1)*d]
		var logDetL float64
		if g.Cov == Diag {
			p := g.prec[k*d : (k+1)*d]
			for j, v := range g.Covariances[k*d : (k+1)*d] {
				if !(v > 0) {
					return fmt.Errorf("gmm: component %d variance %d is %v: %w", k, j, v, ErrSingular)
				}
				sd := math.Sqrt(v)
				p[j] = 1 / sd
				sh[j] = mu[j] / sd
				logDetL += math.Log(sd)
			}
		} else {
			c := g.Covariances[k*d*d : (k+1)*d*d]
			for i := 0; i < d; i++ {
				for j := 0; j <= i; j++ {
					sym.SetSym(i, j, 0.5*(c[i*d+j]+c[j*d+i]))
				}
			}
			if !chol.Factorize(sym) {
				return fmt.Errorf("gmm: component %d: %w", k, ErrSingular)
			}
			chol.LTo(&l)
			p := g.prec[k*g.tri() : (k+1)*g.tri()]
			if err := invertLower(p, l.RawTriangular(), d); err != nil {
				return fmt.Errorf("gmm: component %d: %w", k, err)
			}
			for i := 0; i < d; i++ {
				logDetL += math.Log(l.At(i, i))
			}
			whiten(sh, p, mu, d)
		}
		lw := math.Inf(-1)
		if g.Weights[k] > 0 {
			lw = math.Log(g.Weights[k])
		}
		g.logNorm[k] = lw - 0.5*float64(d)*math.Log(2*math.Pi) - logDetL
	}
	return nil
}

// invertLower writes the inverse of the lower-triangular l (d x d) into
// dst as packed rows (row j holds columns 0..j), by forward substitution:
//
//	X_jj = 1 / L_jj,  X_ji = -(sum_{m=i}^{j-1} L_jm X_mi) / L_jj  (i < j).
func invertLower(dst []float64, l blas64.Triangular, d int) error {
	at := func(i, j int) float64 { return l.Data[i*l.Stride+j] }
	for j := 0; j < d; j++ {
		ljj := at(j, j)
		if !(ljj > 0) {
			return fmt.Errorf("cholesky diagonal %d is %v: %w", j, ljj, ErrSingular)
		}
		rowJ := j * (j + 1) / 2
		for i := 0; i < j; i++ {
			var s float64
			for m := i; m < j; m++ {
				s += at(j, m) * dst[m*(m+1)/2+i]
			}
			dst[rowJ+i] = -s / ljj
		}
		dst[rowJ+j] = 1 / ljj
	}
	return nil
}

// whiten writes L^-1 x into dst, with L^-1 packed as by invertLower.
func whiten(dst, prec, x []float64, d int) {
	off := 0
	for j := 0; j < d; j++ {
		row := prec[off : off+j+1]
		xs := x[:len(row)]
		var s float64
		for i, v := range row {
			s += v * xs[i]
		}
		dst[j] = s
		off += j + 1
	}
}

func resize(s []float64, n int) []float64 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float64, n)
}

// logProbs writes log(w_k N(x; mu_k, Cov_k)) for every component into dst
// (length K) and returns log p(x) by log-sum-exp.
func (g *GMM) logProbs(dst, x []float64) float64 {
	d := g.D
	max := math.Inf(-1)
	for k := 0; k < g.K; k++ {
		sh := g.shift[k*d : (k+1)*d]
		var maha float64
		if g.Cov == Diag {
			p := g.prec[k*d : (k+1)*d]
			xs := x[:len(p)]
			sh = sh[:len(p)]
			for j, v := range p {
				y := v*xs[j] - sh[j]
				maha += y * y
			}
		} else {
			maha = mahaFull(g.prec[k*g.tri():(k+1)*g.tri()], sh, x, d)
		}
		lp := g.logNorm[k] - 0.5*maha
		dst[k] = lp
		if lp > max {
			max = lp
		}
	}
	if math.IsInf(max, -1) {
		return max
	}
	var s float64
	for _, lp := range dst[:g.K] {
		s += math.Exp(lp - max)
	}
	return max + math.Log(s)
}

// mahaFull returns |L^-1 x - shift|^2 with L^-1 packed by rows.
func mahaFull(prec, shift, x []float64, d int) float64 {
	var maha float64
	off := 0
	for j := 0; j < d; j++ {
		row := prec[off : off+j+1]
		xs := x[:len(row)]
		s0, s1, s2, s3 := -shift[j], 0.0, 0.0, 0.0
		i := 0
		for ; i+4 <= len(row); i += 4 {
			s0 += row[i] * xs[i]
			s1 += row[i+1] * xs[i+1]
			s2 += row[i+2] * xs[i+2]
			s3 += row[i+3] * xs[i+3]
		}
		for ; i < len(row); i++ {
			s0 += row[i] * xs[i]
		}
		y := (s0 + s1) + (s2 + s3)
		maha += y * y
		off += j + 1
	}
	return maha
}

// LogLikelihood is log p(x), the log density of x under the mixture.
// len(x) must be D.
func (g *GMM) LogLikelihood(x []float64) float64 {
	g.checkDim(x)
	var buf [16]float64
	lp := buf[:0]
	if g.K <= len(buf) {
		lp = buf[:g.K]
	} else {
		lp = make([]float64, g.K)
	}
	return g.logProbs(lp, x)
}

// Posteriors writes the responsibility of each component for x,
// p(k | x) = w_k N(x; k) / p(x), into dst (reused when it has capacity K)
// and returns it. When x is so far out that every density underflows, the
// posteriors are the mixture weights.
func (g *GMM) Posteriors(x, dst []float64) []float64 {
	g.checkDim(x)
	dst = resize(dst, g.K)
	ll := g.logProbs(dst, x)
	if math.IsInf(ll, -1) {
		copy(dst, g.Weights)
		return dst
	}
	for k := range dst {
		dst[k] = math.Exp(dst[k] - ll)
	}
	return dst
}

// Predict returns the most likely component for x.
func (g *GMM) Predict(x []float64) int {
	g.checkDim(x)
	var buf [16]float64
	lp := buf[:0]
	if g.K <= len(buf) {
		lp = buf[:g.K]
	} else {
		lp = make([]float64, g.K)
	}
	g.logProbs(lp, x)
	best := 0
	for k, v := range lp {
		if v > lp[best] {
			best = k
		}
	}
	return best
}

// OOD reports whether x is out of distribution: its log-likelihood is below
// OODThreshold.
func (g *GMM) OOD(x []float64) bool {
	return g.LogLikelihood(x) < g.OODThreshold
}

func (g *GMM) checkDim(x []float64) {
	if len(x) != g.D {
		panic(fmt.Sprintf("model: vector of length %d for a GMM of dimension %d", len(x), g.D))
	}
	if g.logNorm == nil {
		panic("model: GMM used before Prepare")
	}
}

// Score is the mean log-likelihood per sample of the rows of x (n x D).
func (g *GMM) Score(x *mat.Dense) float64 {
	n, d := x.Dims()
	if d != g.D {
		panic(fmt.Sprintf("model: %d columns for a GMM of dimension %d", d, g.D))
	}
	lp := make([]float64, g.K)
	var s float64
	for i := 0; i < n; i++ {
		s += g.logProbs(lp, x.RawRowView(i))
	}
	return s / float64(n)
}

// FitResult describes one fit.
type FitResult struct {
	// GMM is the fitted model.
	GMM *GMM
	// LogLikelihood is the mean log-likelihood per training sample.
	LogLikelihood float64
	// BIC and AIC are the information criteria on the training data.
	BIC, AIC float64
}

// Fit fits a K-component mixture to the rows of x (n x d) by EM, from
// cfg.Restarts k-means++ initialisations drawn from src, keeping the restart
// with the highest final lower bound. For a given src state, x and cfg
// (Threads excepted) the result is identical on every run. It returns
// ErrTooFewSamples when n < K and ErrSingular when every restart hit a
// covariance that regularisation could not repair.
func Fit(ctx context.Context, x *mat.Dense, cfg FitConfig, src rand.Source) (FitResult, error) {
	cfg = cfg.withDefaults()
	n, _ := x.Dims()
	if cfg.K < 1 {
		return FitResult{}, fmt.Errorf("fit gmm: k=%d: must be >= 1", cfg.K)
	}
	if n < cfg.K {
		return FitResult{}, fmt.Errorf("fit gmm: %d samples, k=%d: %w", n, cfg.K, ErrTooFewSamples)
	}
	if cfg.Cov != Full && cfg.Cov != Diag {
		return FitResult{}, fmt.Errorf("fit gmm: unknown covariance type %q", cfg.Cov)
	}
	f := newFitter(x, cfg)
	rng := rand.New(src)
	var best *GMM
	bestLB := math.Inf(-1)
	var lastErr error
	for r := 0; r < cfg.Restarts; r++ {
		g, lb, err := f.run(ctx, rng)
		if err != nil {
			if ctx.Err() != nil {
				return FitResult{}, fmt.Errorf("fit gmm: %w", ctx.Err())
			}
			lastErr = err
			continue
		}
		if best == nil || lb > bestLB {
			best, bestLB = g, lb
		}
	}
	if best == nil {
		return FitResult{}, fmt.Errorf("fit gmm k=%d: every restart failed: %w", cfg.K, lastErr)
	}
	// Final E pass with the chosen parameters: the mean log-likelihood and
	// the per-sample values the OOD threshold is taken from.
	lls := make([]float64, n)
	ll := f.pass(best, false, lls)
	best.OODThreshold = quantile(lls, cfg.OODQuantile)
	f.unshift(best)
	if err := best.Prepare(); err != nil {
		return FitResult{}, fmt.Errorf("fit gmm k=%d: %w", cfg.K, err)
	}
	return FitResult{GMM: best, LogLikelihood: ll, BIC: best.BIC(n, ll), AIC: best.AIC(n, ll)}, nil
}

// quantile returns the q-quantile of v (v is reordered).
func quantile(v []float64, q float64) float64 {
	sort.Float64s(v)
	i := int(math.Floor(q * float64(len(v)-1)))
	return v[i]
}

// chunkRows is the number of rows one accumulator covers. Chunks, not
// goroutines, fix the summation order, so results do not depend on Threads.
const chunkRows = 2048

// respSkip is the responsibility below which a sample is left out of a
// component's sufficient statistics: its share of the component's weight is
// below 1e-10 per sample, far under the EM tolerance.
const respSkip = 1e-10

// fitter holds the centred data and the reusable buffers of one Fit.
type fitter struct {
	cfg    FitConfig
	n, d   int
	x      []float64 // centred copy of the data, n x d row-major
	center []float64 // the column means subtracted from x
	accs   []accum   // one per chunk
}

// accum holds the sufficient statistics of one chunk: per component the
// responsibility sum, the weighted sum of x and the weighted sum of x x^T
// (packed lower triangle for Full, diagonal for Diag), plus the
// log-likelihood sum.
type accum struct {
	nk, s1, s2 []float64
	ll         float64
	lp, resp   []float64 // passBlock x K scratch
}

func newFitter(x *mat.Dense, cfg FitConfig) *fitter {
	n, d := x.Dims()
	f := &fitter{cfg: cfg, n: n, d: d, x: make([]float64, n*d), center: make([]float64, d)}
	for i := 0; i < n; i++ {
		row := x.RawRowView(i)
		copy(f.x[i*d:(i+1)*d], row)
		for j, v := range row {
			f.center[j] += v
		}
	}
	for j := range f.center {
		f.center[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		row := f.x[i*d : (i+1)*d]
		for j := range row {
			row[j] -= f.center[j]
		}
	}
	s2 := cfg.K * d * (d + 1) / 2
	if cfg.Cov == Diag {
		s2 = cfg.K * d
	}
	f.accs = make([]accum, (n+chunkRows-1)/chunkRows)
	for i := range f.accs {
		f.accs[i] = accum{nk: make([]float64, cfg.K), s1: make([]float64, cfg.K*d), s2: make([]float64, s2),
			lp: make([]float64, passBlock*cfg.K), resp: make([]float64, passBlock*cfg.K)}
	}
	return f
}

// unshift moves a GMM fitted on centred data back to the original frame.
func (f *fitter) unshift(g *GMM) {
	for k := 0; k < g.K; k++ {
		for j := 0; j < g.D; j++ {
			g.Means[k*g.D+j] += f.center[j]
		}
	}
}

// parallel runs fn over every chunk on cfg.Threads goroutines.
func (f *fitter) parallel(fn func(c int, lo, hi int)) {
	nc := len(f.accs)
	workers := min(f.cfg.Threads, nc)
	if workers <= 1 {
		for c := 0; c < nc; c++ {
			fn(c, c*chunkRows, min((c+1)*chunkRows, f.n))
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= nc {
					return
				}
				fn(c, c*chunkRows, min((c+1)*chunkRows, f.n))
			}
		}()
	}
	wg.Wait()
}

// run performs one restart: k-means++ seeding, Lloyd refinement, then EM.
// It returns the fitted GMM (on centred data) and its final lower bound.
func (f *fitter) run(ctx context.Context, rng *rand.Rand) (*GMM, float64, error) {
	k, d := f.cfg.K, f.d
	centers := kmeansPlusPlus(f.x, f.n, d, k, rng)
	labels := make([]int32, f.n)
	f.lloyd(centers, labels)
	g := &GMM{K: k, D: d, Cov: f.cfg.Cov, Weights: make([]float64, k), Means: make([]float64, k*d)}
	if f.cfg.Cov == Diag {
		g.Covariances = make([]float64, k*d)
	} else {
		g.Covariances = make([]float64, k*d*d)
	}
	f.hardStats(labels)
	if err := f.mstep(g); err != nil {
		return nil, 0, err
	}
	lb := math.Inf(-1)
	for it := 1; it <= f.cfg.MaxIter; it++ {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		prev := lb
		lb = f.pass(g, true, nil)
		if err := f.mstep(g); err != nil {
			return nil, 0, fmt.Errorf("iteration %d: %w", it, err)
		}
		g.Iterations = it
		if math.Abs(lb-prev) < f.cfg.Tol {
			g.Converged = true
			break
		}
	}
	return g, lb, nil
}

// pass is the E step: for the current parameters it computes every
// sample's log-likelihood and responsibilities and, when stats is set,
// accumulates the sufficient statistics of the M step in the same sweep.
// It returns the mean log-likelihood per sample and, when lls is non-nil,
// stores each sample's log-likelihood there. Rows go through in blocks of
// passBlock so that every load of a Cholesky factor or statistic serves
// several rows.
func (f *fitter) pass(g *GMM, stats bool, lls []float64) float64 {
	d, K := f.d, g.K
	tri := d * (d + 1) / 2
	diag := g.Cov == Diag
	f.parallel(func(c, lo, hi int) {
		a := &f.accs[c]
		if stats {
			clear(a.nk)
			clear(a.s1)
			clear(a.s2)
		}
		a.ll = 0
		lp, resp := a.lp, a.resp
		for i := lo; i < hi; i += passBlock {
			m := min(passBlock, hi-i)
			g.blockLogProbs(lp, f.x[i*d:(i+m)*d], m)
			for b := 0; b < m; b++ {
				ll := normalise(lp[b*K:(b+1)*K], resp[b*K:(b+1)*K])
				a.ll += ll
				if lls != nil {
					lls[i+b] = ll
				}
			}
			if !stats {
				continue
			}
			clear(resp[m*K:])
			var xs [passBlock][]float64
			for b := range xs {
				xs[b] = f.x[(i+min(b, m-1))*d : (i+min(b, m-1)+1)*d]
			}
			for k := 0; k < K; k++ {
				var rs [passBlock]float64
				var any bool
				for b := range rs {
					if r := resp[b*K+k]; r >= respSkip {
						rs[b] = r
						any = true
					}
				}
				if !any {
					continue
				}
				a.nk[k] += (rs[0] + rs[1]) + (rs[2] + rs[3])
				s1 := a.s1[k*d : (k+1)*d]
				for j := range s1 {
					s1[j] += rs[0]*xs[0][j] + rs[1]*xs[1][j] + rs[2]*xs[2][j] + rs[3]*xs[3][j]
				}
				if diag {
					s2 := a.s2[k*d : (k+1)*d]
					for j := range s2 {
						s2[j] += rs[0]*xs[0][j]*xs[0][j] + rs[1]*xs[1][j]*xs[1][j] + rs[2]*xs[2][j]*xs[2][j] + rs[3]*xs[3][j]*xs[3][j]
					}
					continue
				}
				accumOuter4(a.s2[k*tri:(k+1)*tri], &xs, &rs, d)
			}
		}
	})
	var ll float64
	for c := range f.accs {
		ll += f.accs[c].ll
	}
	return ll / float64(f.n)
}

// passBlock is the number of rows the E/M pass handles together.
const passBlock = 4

// expFloor is the log-ratio below which exp underflows relative to the
// largest term (exp(-37) < 1e-16): such terms are taken as 0.
const expFloor = -37

// normalise turns the component log-probabilities lp of one row into
// responsibilities in resp and returns the row's log-likelihood
// log sum_k exp(lp_k), computed by log-sum-exp with one exp per component.
func normalise(lp, resp []float64) float64 {
	resp = resp[:len(lp)]
	max := math.Inf(-1)
	for _, v := range lp {
		if v > max {
			max = v
		}
	}
	if math.IsInf(max, -1) {
		clear(resp)
		return max
	}
	var s float64
	for k, v := range lp {
		e := v - max
		if e < expFloor {
			resp[k] = 0
			continue
		}
		r := math.Exp(e)
		resp[k] = r
		s += r
	}
	inv := 1 / s
	for k := range resp {
		resp[k] *= inv
	}
	return max + math.Log(s)
}

// blockLogProbs writes log(w_k N(x_b; k)) for the m rows of x (m x D,
// m <= passBlock) into lp[b*K+k].
func (g *GMM) blockLogProbs(lp, x []float64, m int) {
	d, K := g.D, g.K
	for k := 0; k < K; k++ {
		sh := g.shift[k*d : (k+1)*d]
		if g.Cov == Diag {
			p := g.prec[k*d : (k+1)*d]
			sh = sh[:len(p)]
			for b := 0; b < m; b++ {
				xs := x[b*d : b*d+len(p)]
				var maha float64
				for j, v := range p {
					y := v*xs[j] - sh[j]
					maha += y * y
				}
				lp[b*K+k] = g.logNorm[k] - 0.5*maha
			}
			continue
		}
		prec := g.prec[k*g.tri() : (k+1)*g.tri()]
		if m == 4 {
			m0, m1, m2, m3 := mahaFull4(prec, sh, x[:d], x[d:2*d], x[2*d:3*d], x[3*d:4*d], d)
			lp[k] = g.logNorm[k] - 0.5*m0
			lp[K+k] = g.logNorm[k] - 0.5*m1
			lp[2*K+k] = g.logNorm[k] - 0.5*m2
			lp[3*K+k] = g.logNorm[k] - 0.5*m3
			continue
		}
		for b := 0; b < m; b++ {
			lp[b*K+k] = g.logNorm[k] - 0.5*mahaFull(prec, sh, x[b*d:(b+1)*d], d)
		}
	}
}

// mahaFull4 is mahaFull for four rows at once: each load of the Cholesky
// factor feeds four independent dot products.
func mahaFull4(prec, shift, xa, xb, xc, xd []float64, d int) (ma, mb, mc, md float64) {
	off := 0
	for j := 0; j < d; j++ {
		row := prec[off : off+j+1]
		a, b, c, e := xa[:len(row)], xb[:len(row)], xc[:len(row)], xd[:len(row)]
		sa, sb, sc, sd := -shift[j], -shift[j], -shift[j], -shift[j]
		for i, p := range row {
			sa += p * a[i]
			sb += p * b[i]
			sc += p * c[i]
			sd += p * e[i]
		}
		ma += sa * sa
		mb += sb * sb
		mc += sc * sc
		md += sd * sd
		off += j + 1
	}
	return ma, mb, mc, md
}

// accumOuter4 adds sum_b r_b x_b x_b^T to the packed lower triangle s2.
func accumOuter4(s2 []float64, xs *[passBlock][]float64, rs *[passBlock]float64, d int) {
	off := 0
	for j := 0; j < d; j++ {
		row := s2[off : off+j+1]
		a, b, c, e := xs[0][:len(row)], xs[1][:len(row)], xs[2][:len(row)], xs[3][:len(row)]
		ra, rb, rc, rd := rs[0]*xs[0][j], rs[1]*xs[1][j], rs[2]*xs[2][j], rs[3]*xs[3][j]
		for i := range row {
			row[i] += (ra*a[i] + rb*b[i]) + (rc*c[i] + rd*e[i])
		}
		off += j + 1
	}
}

// hardStats fills the chunk accumulators from hard labels (responsibility 1
// for the label's component), the initial M step after k-means.
func (f *fitter) hardStats(labels []int32) {
	d := f.d
	tri := d * (d + 1) / 2
	f.parallel(func(c, lo, hi int) {
		a := &f.accs[c]
		clear(a.nk)
		clear(a.s1)
		clear(a.s2)
		for i := lo; i < hi; i++ {
			x := f.x[i*d : (i+1)*d]
			k := int(labels[i])
			a.nk[k]++
			s1 := a.s1[k*d : (k+1)*d]
			for j := range s1 {
				s1[j] += x[j]
			}
			if f.cfg.Cov == Diag {
				s2 := a.s2[k*d : (k+1)*d]
				for j := range s2 {
					s2[j] += x[j] * x[j]
				}
				continue
			}
			accumOuter(a.s2[k*tri:(k+1)*tri], x, 1, d)
		}
	})
}

// mstep sums the chunk statistics and sets weights, means and covariances:
//
//	N_k = sum_i r_ik + 10 eps, w_k = N_k / n, mu_k = sum_i r_ik x_i / N_k,
//	Cov_k = sum_i r_ik x_i x_i^T / N_k - mu_k mu_k^T + RegCovar I.
//
// (x is centred on the data mean, which keeps the one-pass covariance
// formula free of cancellation for standardised features.)
func (f *fitter) mstep(g *GMM) error {
	d, K := f.d, g.K
	tri := d * (d + 1) / 2
	nk := make([]float64, K)
	s1 := make([]float64, K*d)
	s2 := make([]float64, len(f.accs[0].s2))
	for c := range f.accs {
		a := &f.accs[c]
		for i, v := range a.nk {
			nk[i] += v
		}
		for i, v := range a.s1 {
			s1[i] += v
		}
		for i, v := range a.s2 {
			s2[i] += v
		}
	}
	const eps = 2.220446049250313e-16
	var total float64
	for k := range nk {
		nk[k] += 10 * eps
		total += nk[k]
	}
	for k := 0; k < K; k++ {
		g.Weights[k] = nk[k] / total
		mu := g.Means[k*d : (k+1)*d]
		for j := range mu {
			mu[j] = s1[k*d+j] / nk[k]
		}
		if g.Cov == Diag {
			cv := g.Covariances[k*d : (k+1)*d]
			for j := range cv {
				cv[j] = math.Max(s2[k*d+j]/nk[k]-mu[j]*mu[j], 0) + f.cfg.RegCovar
			}
			continue
		}
		cv := g.Covariances[k*d*d : (k+1)*d*d]
		p := s2[k*tri : (k+1)*tri]
		off := 0
		for i := 0; i < d; i++ {
			for j := 0; j <= i; j++ {
				v := p[off+j]/nk[k] - mu[i]*mu[j]
				if i == j {
					v = math.Max(v, 0) + f.cfg.RegCovar
				}
				cv[i*d+j] = v
				cv[j*d+i] = v
			}
			off += i + 1
		}
	}
	return g.Prepare()
}

// accumOuter adds r x x^T to the packed lower triangle s2.
func accumOuter(s2, x []float64, r float64, d int) {
	off := 0
	for j := 0; j < d; j++ {
		row := s2[off : off+j+1]
		xs := x[:len(row)]
		rx := r * x[j]
		for i := range row {
			row[i] += rx * xs[i]
		}
		off += j + 1
	}
}
