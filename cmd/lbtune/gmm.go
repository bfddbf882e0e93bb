package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/lbtune/lbtune/model"
)

func init() {
	register(&command{
		name:    "gmm",
		summary: "fit a Gaussian Mixture Model to any numeric CSV (gmm fit)",
		run:     gmmRun,
	})
}

// gmmUsage is the help of `lbtune gmm`: its subcommands, one line each.
const gmmUsage = `Usage: lbtune gmm <subcommand> [flags]

Subcommands:
  fit   fit a Gaussian Mixture Model to a numeric CSV (header row = feature names),
        choose k by the lowest BIC, print each component's weight and means:
        lbtune gmm fit --csv FILE [--k K | --kmin A --kmax B] [--cov full|diag] [--seed N] [--json]

Run 'lbtune gmm fit -h' for its flags.`

func gmmRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "fit" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(stdout, gmmUsage)
			return flag.ErrHelp
		}
		fmt.Fprintln(stderr, gmmUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: missing subcommand", errUsage)
		}
		return fmt.Errorf("%w: unknown subcommand %q (fit)", errUsage, args[0])
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
	names, err := csvHeader(*csvPath)
	if err != nil {
		return err
	}
	comps := gmmComponents(sel.Best.GMM, names)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(struct {
			model.CSVFit
			Components []gmmComponent `json:"components"`
		}{res, comps})
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
	gmmPrintComponents(stdout, comps, names)
	return nil
}

// gmmComponent is one fitted component: its mixture weight and its mean
// by column name (in the CSV's units).
type gmmComponent struct {
	Index  int                `json:"index"`
	Weight float64            `json:"weight"`
	Means  map[string]float64 `json:"means"`
	means  []float64
}

// gmmComponents lists g's components, largest weight first.
func gmmComponents(g *model.GMM, names []string) []gmmComponent {
	if g == nil {
		return nil
	}
	out := make([]gmmComponent, 0, g.K)
	for k := 0; k < g.K; k++ {
		c := gmmComponent{Index: k, Weight: g.Weights[k], Means: map[string]float64{}, means: g.Means[k*g.D : (k+1)*g.D]}
		for j, v := range c.means {
			c.Means[columnName(names, j)] = v
		}
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b gmmComponent) int { return cmp.Compare(b.Weight, a.Weight) })
	return out
}

// columnName is the CSV header's name of column j, or "colJ" when the
// header is shorter.
func columnName(names []string, j int) string {
	if j < len(names) && names[j] != "" {
		return names[j]
	}
	return fmt.Sprintf("col%d", j+1)
}

// gmmPrintComponents prints one row per component: index, weight and the
// mean of every column, headed by the CSV's column names (and so units,
// when the header carries them, e.g. rate_rps).
func gmmPrintComponents(w io.Writer, comps []gmmComponent, names []string) {
	if len(comps) == 0 {
		return
	}
	fmt.Fprintln(w, "\ncomponents (largest weight first; means in the CSV's units):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "component\tweight\t")
	for j := range comps[0].means {
		fmt.Fprintf(tw, "%s\t", columnName(names, j))
	}
	fmt.Fprintln(tw)
	for _, c := range comps {
		fmt.Fprintf(tw, "%d\t%.3f\t", c.Index, c.Weight)
		for _, v := range c.means {
			fmt.Fprintf(tw, "%s\t", strconv.FormatFloat(v, 'g', 5, 64))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

// csvHeader reads the header row (the column names) of a CSV file.
func csvHeader(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	names, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read %s header: %w", path, err)
	}
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	return names, nil
}
