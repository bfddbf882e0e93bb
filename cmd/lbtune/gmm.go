package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/lbtune/lbtune/model"
)

func init() {
	register(&command{
		name:    "gmm",
		summary: "fit a Gaussian Mixture Model to any numeric CSV (gmm fit)",
		run:     gmmRun,
	})
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
	cfg := model.FitConfig{Cov: ct, Restarts: *restarts, Tol: *tol, MaxIter: *maxIter, RegCovar: *reg, Threads: *threads}
	res, sel, err := model.FitCSV(ctx, *csvPath, *kmin, *kmax, cfg, *seed)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "samples %d, dims %d, covariance %s\n", res.Samples, res.Dims, ct)
	for _, kk := range slices.Sorted(maps.Keys(sel.Fits)) {
		mark := ""
		if kk == sel.K {
			mark = "  <- lowest BIC"
		}
		r := sel.Fits[kk]
		fmt.Fprintf(stdout, "k=%-3d BIC %14.2f  AIC %14.2f  log-likelihood/sample %.5f%s\n", kk, r.BIC, r.AIC, r.LogLikelihood, mark)
	}
	fmt.Fprintf(stdout, "chosen k %d: log-likelihood/sample %.5f, BIC %.2f, %d iterations (converged %v), fit time %.3fs\n",
		sel.K, res.LogLikelihood, res.BIC, res.Iterations, res.Converged, res.Seconds)
	return nil
}
