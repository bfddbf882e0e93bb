package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/lbtune/lbtune/model"
)

func init() {
	register(&command{
		name:    "gmm",
		summary: "fit a Gaussian Mixture Model to any numeric CSV (gmm fit)",
		run:     gmmRun,
	})
}

// gmmResult is the --json output of "lbtune gmm fit".
type gmmResult struct {
	K             int             `json:"k"`
	LogLikelihood float64         `json:"log_likelihood"`
	BIC           float64         `json:"bic"`
	AIC           float64         `json:"aic"`
	Iterations    int             `json:"iterations"`
	Converged     bool            `json:"converged"`
	Seconds       float64         `json:"seconds"`
	CPUSeconds    float64         `json:"cpu_seconds"`
	Samples       int             `json:"samples"`
	Dims          int             `json:"dims"`
	Cov           string          `json:"covariance_type"`
	BICByK        map[int]float64 `json:"bic_by_k"`
	Threads       int             `json:"threads"`
}

func gmmRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "fit" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "Usage: lbtune gmm fit --csv FILE [--k K | --kmin A --kmax B] [--cov full|diag] [--seed N] [--json]")
			return nil
		}
		return fmt.Errorf("%w: want 'lbtune gmm fit --csv FILE ...'", errUsage)
	}
	fs := newFlagSet("gmm fit", stderr)
	csvPath := fs.String("csv", "", "numeric CSV file with a header row, one sample per row (required)")
	k := fs.Int("k", 0, "fit exactly this many components (overrides --kmin/--kmax)")
	kmin := fs.Int("kmin", 1, "smallest k to try; the k with the lowest BIC wins")
	kmax := fs.Int("kmax", 8, "largest k to try")
	cov := fs.String("cov", "full", "covariance type: full or diag")
	seed := fs.Uint64("seed", 1, "random seed for the k-means++ initialisations")
	restarts := fs.Int("n-init", 3, "k-means++ restarts per k")
	tol := fs.Float64("tol", 1e-3, "stop when the mean log-likelihood changes by less than this")
	maxIter := fs.Int("max-iter", 100, "EM iteration cap per restart")
	reg := fs.Float64("reg-covar", 1e-6, "added to every covariance diagonal")
	threads := fs.Int("threads", 0, "goroutines for the E/M pass (0 = GOMAXPROCS)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *csvPath == "" {
		return fmt.Errorf("%w: --csv is required", errUsage)
	}
	ct, err := model.ParseCovarianceType(*cov)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *k > 0 {
		*kmin, *kmax = *k, *k
	}
	if *kmin < 1 || *kmax < *kmin {
		return fmt.Errorf("%w: want 1 <= --kmin <= --kmax, have %d and %d", errUsage, *kmin, *kmax)
	}
	f, err := os.Open(*csvPath)
	if err != nil {
		return err
	}
	_, x, err := model.ReadCSV(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", *csvPath, err)
	}
	cfg := model.FitConfig{Cov: ct, Restarts: *restarts, Tol: *tol, MaxIter: *maxIter, RegCovar: *reg, Threads: *threads}
	start, cpuStart := time.Now(), gmmCPUSeconds()
	sel, err := model.SelectK(ctx, x, *kmin, *kmax, cfg, rand.NewPCG(*seed, *seed), nil)
	if err != nil {
		return err
	}
	elapsed, cpu := time.Since(start).Seconds(), gmmCPUSeconds()-cpuStart
	n, d := x.Dims()
	g := sel.Best.GMM
	res := gmmResult{
		K: sel.K, LogLikelihood: sel.Best.LogLikelihood, BIC: sel.Best.BIC, AIC: sel.Best.AIC,
		Iterations: g.Iterations, Converged: g.Converged, Seconds: elapsed, CPUSeconds: cpu, Samples: n, Dims: d,
		Cov: string(ct), BICByK: sel.BICs(), Threads: gmmThreads(*threads),
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "samples %d, dims %d, covariance %s\n", n, d, ct)
	for _, kk := range slices.Sorted(maps.Keys(sel.Fits)) {
		mark := ""
		if kk == sel.K {
			mark = "  <- lowest BIC"
		}
		r := sel.Fits[kk]
		fmt.Fprintf(stdout, "k=%-3d BIC %14.2f  AIC %14.2f  log-likelihood/sample %.5f%s\n", kk, r.BIC, r.AIC, r.LogLikelihood, mark)
	}
	fmt.Fprintf(stdout, "chosen k %d: log-likelihood/sample %.5f, BIC %.2f, %d iterations (converged %v), fit time %.3fs\n",
		sel.K, res.LogLikelihood, res.BIC, res.Iterations, res.Converged, elapsed)
	return nil
}

// gmmThreads is the thread count a fit used: n, or GOMAXPROCS when n <= 0.
func gmmThreads(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// gmmCPUSeconds is the user+system CPU time of this process so far; the
// benchmark reports it beside wall time because the machine may be shared.
func gmmCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
