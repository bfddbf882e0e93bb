// Command gmmcmp supports bench/gmm.sh: it generates synthetic Gaussian
// mixture CSVs and fits golearn's clustering.ExpectationMaximization on them,
// so that lbtune's GMM can be compared with the other Go implementation on
// the same data.
//
//	gmmcmp gen -n 10000 -d 8 -k 4 -seed 1 -out FILE.csv
//	gmmcmp golearn -csv FILE.csv -k 4 -timeout 60s
//
// golearn's EM makes hard assignments, has no mixture weights, starts from
// uniformly random means and has no iteration cap, so the log-likelihood
// printed for it uses its means and covariances with weights equal to the
// share of samples assigned to each component (the best it can be credited
// with) and a timeout bounds its run.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/sjwhitworth/golearn/base"
	"github.com/sjwhitworth/golearn/clustering"
	"gonum.org/v1/gonum/mat"

	"github.com/lbtune/lbtune/model"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gmmcmp gen|golearn [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "golearn":
		err = golearn(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gmmcmp:", err)
		os.Exit(1)
	}
}

// gen writes n samples of a random k-component mixture in d dimensions: means
// uniform in [-spread, spread]^d, covariances A A^T / d + 0.2 I with A standard normal,
// equal weights.
func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	n := fs.Int("n", 10000, "samples")
	d := fs.Int("d", 8, "dimensions")
	k := fs.Int("k", 4, "true components")
	seed := fs.Uint64("seed", 1, "seed")
	spread := fs.Float64("spread", 2, "means are uniform in [-spread, spread]^d")
	out := fs.String("out", "", "output CSV")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(*seed, *seed+1))
	means := make([][]float64, *k)
	chols := make([]*mat.TriDense, *k)
	for c := range means {
		means[c] = make([]float64, *d)
		for j := range means[c] {
			means[c][j] = (2*rng.Float64() - 1) * *spread
		}
		a := mat.NewDense(*d, *d, nil)
		for i := 0; i < *d; i++ {
			for j := 0; j < *d; j++ {
				a.Set(i, j, rng.NormFloat64())
			}
		}
		var cov mat.Dense
		cov.Mul(a, a.T())
		sym := mat.NewSymDense(*d, nil)
		for i := 0; i < *d; i++ {
			for j := 0; j <= i; j++ {
				v := cov.At(i, j) / float64(*d)
				if i == j {
					v += 0.2
				}
				sym.SetSym(i, j, v)
			}
		}
		var ch mat.Cholesky
		if !ch.Factorize(sym) {
			return fmt.Errorf("component %d: covariance not positive definite", c)
		}
		chols[c] = new(mat.TriDense)
		ch.LTo(chols[c])
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for j := 0; j < *d; j++ {
		if j > 0 {
			w.WriteByte(',')
		}
		fmt.Fprintf(w, "x%d", j)
	}
	w.WriteByte('\n')
	z := make([]float64, *d)
	for i := 0; i < *n; i++ {
		c := rng.IntN(*k)
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		for r := 0; r < *d; r++ {
			v := means[c][r]
			for q := 0; q <= r; q++ {
				v += chols[c].At(r, q) * z[q]
			}
			if r > 0 {
				w.WriteByte(',')
			}
			w.WriteString(fmt.Sprintf("%.6g", v))
		}
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// golearnResult is printed as one JSON line.
type golearnResult struct {
	K             int      `json:"k"`
	Seconds       float64  `json:"seconds"`
	LogLikelihood *float64 `json:"log_likelihood"` // null when unknown
	Tries         int      `json:"tries"`
	Timeout       bool     `json:"timeout,omitempty"`
	Error         string   `json:"error,omitempty"`
}

func golearn(args []string) error {
	fs := flag.NewFlagSet("golearn", flag.ExitOnError)
	path := fs.String("csv", "", "numeric CSV with a header")
	k := fs.Int("k", 4, "components")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long (all tries together)")
	tries := fs.Int("tries", 3, "retry a fit that failed (golearn panics when a random initial mean attracts no point)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*path)
	if err != nil {
		return err
	}
	names, x, err := model.ReadCSV(f)
	f.Close()
	if err != nil {
		return err
	}
	n, d := x.Dims()
	inst := base.NewDenseInstances()
	specs := make([]base.AttributeSpec, d)
	for j, name := range names {
		specs[j] = inst.AddAttribute(base.NewFloatAttribute(name))
	}
	if err := inst.Extend(n); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			inst.Set(specs[j], i, base.PackFloatToBytes(x.At(i, j)))
		}
	}
	res := golearnResult{K: *k}
	deadline := time.After(*timeout)
	for try := 1; ; try++ {
		// Seconds is the time of the last try: failed tries are not
		// charged to golearn.
		res.Tries = try
		start := time.Now()
		o, timedOut := golearnFit(inst, *k, deadline)
		res.Seconds = time.Since(start).Seconds()
		res.Error = ""
		switch {
		case timedOut:
			res.Timeout = true
		case o.err != nil:
			res.Error = o.err.Error()
		default:
			ll, err := golearnLogLikelihood(o.em, o.cm, x)
			if err != nil {
				res.Error = err.Error()
			} else {
				res.LogLikelihood = &ll
			}
		}
		if res.Timeout || res.Error == "" || try >= *tries {
			break
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// golearnOutcome is one golearn fit.
type golearnOutcome struct {
	em  *clustering.ExpectationMaximization
	cm  clustering.ClusterMap
	err error
}

// golearnFit runs one fit, recovering golearn's panics; it reports a
// timeout when deadline fires first (the fit's goroutine is abandoned).
func golearnFit(inst base.FixedDataGrid, k int, deadline <-chan time.Time) (golearnOutcome, bool) {
	ch := make(chan golearnOutcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- golearnOutcome{err: fmt.Errorf("golearn panicked: %v", r)}
			}
		}()
		em, err := clustering.NewExpectationMaximization(k)
		if err != nil {
			ch <- golearnOutcome{err: err}
			return
		}
		if err := em.Fit(inst); err != nil {
			ch <- golearnOutcome{err: err}
			return
		}
		cm, err := em.Predict(inst)
		ch <- golearnOutcome{em: em, cm: cm, err: err}
	}()
	select {
	case o := <-ch:
		return o, false
	case <-deadline:
		return golearnOutcome{}, true
	}
}

// golearnLogLikelihood scores golearn's parameters as a mixture whose
// weights are the shares of samples assigned to each component.
func golearnLogLikelihood(em *clustering.ExpectationMaximization, cm clustering.ClusterMap, x *mat.Dense) (float64, error) {
	n, d := x.Dims()
	k, _ := em.Params.Means.Dims()
	g := &model.GMM{K: k, D: d, Cov: model.Full, Weights: make([]float64, k), Means: make([]float64, k*d), Covariances: make([]float64, k*d*d)}
	for c := 0; c < k; c++ {
		g.Weights[c] = float64(len(cm[c])) / float64(n)
		copy(g.Means[c*d:(c+1)*d], em.Params.Means.RawRowView(c))
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				g.Covariances[c*d*d+i*d+j] = em.Params.Covs[c].At(i, j)
			}
		}
	}
	if err := g.Prepare(); err != nil {
		return math.NaN(), err
	}
	return g.Score(x), nil
}
