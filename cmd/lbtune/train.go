package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/lbtune/lbtune/agent/eval"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/model"
)

func init() {
	register(&command{
		name:    "train",
		summary: "train the load-state model (GMM) on recorded datasets and save it in a store",
		run:     trainRun,
	})
}

// trainOptions are the parsed flags of lbtune train.
type trainOptions struct {
	data     []string
	out      string
	kmin     int
	kmax     int
	cov      model.CovarianceType
	seed     uint64
	restarts int
	reg      float64
	pool     string
	json     bool
	quiet    bool
}

// trainStep is an extra training stage run after the model is saved, in the
// same store (the agent's policy training registers one). flags adds its
// flags before parsing; run returns a value reported under name in --json
// and prints its own text summary to stdout unless asJSON.
type trainStep struct {
	name  string
	flags func(fs *flag.FlagSet)
	run   func(ctx context.Context, st *datasets.Store, m *model.Model, in *model.Input, asJSON bool, stdout, stderr io.Writer) (any, error)
}

// trainSteps are the registered extra stages, in order. Files of this
// package append to it in init.
var trainSteps []trainStep

func trainRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := trainParse(args, stderr)
	if err != nil {
		return err
	}
	in, err := trainLoad(opts, stderr)
	if err != nil {
		return err
	}
	m, err := trainModel(ctx, opts, in, stderr)
	if err != nil {
		return err
	}
	st, err := datasets.Open(opts.out)
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := model.Save(st, m)
	if err != nil {
		return err
	}
	rep := model.NewReport(m, in.Samples, trainConfig(opts, in), opts.out, key)
	if !opts.json {
		trainPrint(stdout, rep, m)
	}
	for _, s := range trainSteps {
		v, err := s.run(ctx, st, m, in, opts.json, stdout, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if rep.Steps == nil {
			rep.Steps = map[string]any{}
		}
		rep.Steps[s.name] = v
	}
	if policyStepFlags.traces == "" {
		// No simulator traces: the policy is learned for the recorded pools
		// in the simulator calibrated from the recordings.
		v, err := trainRecordedPolicy(ctx, st, opts, in, stdout, stderr)
		if err != nil {
			return fmt.Errorf("policy: %w", err)
		}
		if rep.Steps == nil {
			rep.Steps = map[string]any{}
		}
		rep.Steps["policy"] = v
	}
	if opts.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return nil
}

// trainParse parses the flags. --data takes every following argument up to
// the next flag, so a shell glob works: --data datasets/*.jsonl.gz.
func trainParse(args []string, stderr io.Writer) (trainOptions, error) {
	var o trainOptions
	fs := newFlagSet("train", stderr)
	fs.Func("data", "dataset file (.jsonl/.jsonl.gz) or store (.db); repeatable, and takes every following non-flag argument", func(s string) error {
		o.data = append(o.data, s)
		return nil
	})
	fs.StringVar(&o.out, "out", "", "store to save the model in (created when missing; required)")
	fs.IntVar(&o.kmin, "kmin", 1, "smallest number of clusters to try")
	fs.IntVar(&o.kmax, "kmax", 8, "largest number of clusters to try; the lowest BIC wins")
	cov := fs.String("cov", "full", "covariance type: full or diag")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed (training is deterministic for a seed)")
	fs.IntVar(&o.restarts, "n-init", 3, "k-means++ restarts per k")
	fs.Float64Var(&o.reg, "reg-covar", model.TrainRegCovar, "added to every covariance diagonal (features are standardised)")
	fs.StringVar(&o.pool, "pool", "", "train on this pool's samples only (a per-pool model, saved as gmm/POOL/latest)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of the text summary")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	for _, s := range trainSteps {
		if s.flags != nil {
			s.flags(fs)
		}
	}
	if err := parseFlags(fs, trainExpandData(args)); err != nil {
		return o, err
	}
	if len(o.data) == 0 || o.out == "" {
		return o, fmt.Errorf("%w: --data and --out are required", errUsage)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if o.kmin < 1 || o.kmax < o.kmin {
		return o, fmt.Errorf("%w: want 1 <= --kmin <= --kmax, have %d and %d", errUsage, o.kmin, o.kmax)
	}
	ct, err := model.ParseCovarianceType(*cov)
	if err != nil {
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	o.cov = ct
	return o, nil
}

// trainExpandData rewrites "--data a b c" as "--data a --data b --data c".
func trainExpandData(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if a != "--data" && a != "-data" {
			continue
		}
		if i+1 < len(args) {
			out = append(out, args[i+1])
			i++
		}
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out = append(out, "--data", args[i+1])
			i++
		}
	}
	return out
}

// trainLoad reads every data file and derives the feature samples.
func trainLoad(o trainOptions, stderr io.Writer) (*model.Input, error) {
	return model.LoadInput(o.data, func(p string, snaps []collector.Snapshot, fs []model.Features, st model.SampleStats) {
		if !o.quiet {
			fmt.Fprintf(stderr, "%s: %d snapshots, %d pool-intervals (%d dropped: counter reset)\n", p, len(snaps), len(fs), st.Reset)
		}
	})
}

// trainConfig is the model.TrainConfig of the options.
func trainConfig(o trainOptions, in *model.Input) model.TrainConfig {
	return model.TrainConfig{
		KMin: o.kmin, KMax: o.kmax, Seed: o.seed, Data: o.data, Stats: in.Stats, Pool: o.pool,
		Fit: model.FitConfig{Cov: o.cov, Restarts: o.restarts, RegCovar: o.reg},
	}
}

// trainModel fits the model, showing a progress bar over k on stderr.
func trainModel(ctx context.Context, o trainOptions, in *model.Input, stderr io.Writer) (*model.Model, error) {
	var bar *progressbar.ProgressBar
	if !o.quiet {
		bar = newProgress(stderr, int64(o.kmax-o.kmin+1),
			fmt.Sprintf("fitting k=%d..%d on %d samples", o.kmin, o.kmax, len(in.Samples)),
			progressbar.OptionThrottle(100*time.Millisecond))
	}
	cfg := trainConfig(o, in)
	cfg.Progress = func(int) {
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	m, err := model.Train(ctx, in.Samples, cfg)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	return m, err
}

// trainPrint writes the text summary: BIC curve, then clusters in real units.
func trainPrint(w io.Writer, rep model.Report, m *model.Model) {
	fmt.Fprintf(w, "trained on %d pool-intervals of %s (%d dropped at counter resets)\n",
		rep.Samples, strings.Join(rep.Pools, ", "), rep.SampleStats.Reset)
	for _, name := range slices.Sorted(maps.Keys(rep.Imputed)) {
		fmt.Fprintf(w, "note: %s imputed in %.0f%% of samples\n", name, 100*rep.Imputed[name])
	}
	fmt.Fprintln(w, "\nBIC by number of clusters (lower is better):")
	for _, k := range slices.Sorted(maps.Keys(rep.BIC)) {
		mark := ""
		if k == rep.K {
			mark = "  <- chosen"
		}
		fmt.Fprintf(w, "  k=%-2d BIC %12.1f  AIC %12.1f%s\n", k, rep.BIC[k], rep.AIC[k], mark)
	}
	fmt.Fprintf(w, "\n%d clusters (centroids in real units), mean log-likelihood %.3f/sample, OOD below %.2f:\n",
		rep.K, rep.LogLikelihood, rep.OODThreshold)
	fmt.Fprintf(w, "  %-3s %6s %10s %10s %9s %9s %9s %7s %7s %7s %7s\n",
		"#", "share", "rate/s", "rate/srv", "mean ms", "max ms", "p95 ms", "err %", "active", "queue", "servers")
	for _, c := range rep.Clusters {
		v := c.Values
		fmt.Fprintf(w, "  %-3d %5.1f%% %10.1f %10.1f %9.1f %9.1f %9.1f %7.2f %7.1f %7.1f %7.1f\n",
			c.Index, 100*c.Share, v[model.FeatRate], v[model.FeatRatePerServer], v[model.FeatMeanLatency],
			v[model.FeatMaxLatency], v[model.FeatP95Latency], 100*v[model.FeatErrorRatio],
			v[model.FeatActive], v[model.FeatQueue], v[model.FeatServers])
	}
	fmt.Fprintf(w, "\nmodel saved in %s as %s (and %s)\n", rep.Out, rep.Key, rep.LatestKey)
}

// trainRecordedReport is the "policy" step of `lbtune train --json`
// without --traces: the calibrations and, when one was stored, the policy.
type trainRecordedReport struct {
	Calibrations []eval.PoolCalibration `json:"calibrations"`
	Stored       bool                   `json:"stored"`
	Reason       string                 `json:"reason,omitempty"`
	Policy       *eval.TrainReport      `json:"policy,omitempty"`
}

// trainRecordedPolicy calibrates the simulator from the recordings, trains
// the agent in it (eval.FitRecorded) and saves the model and policy in st,
// printing the calibration and the reproduction tables unless --json. Too
// little data is not an error: no policy is stored, and it says so.
func trainRecordedPolicy(ctx context.Context, st *datasets.Store, o trainOptions, in *model.Input, stdout, stderr io.Writer) (trainRecordedReport, error) {
	f := policyStepFlags
	start := time.Now()
	var bar *progressbar.ProgressBar
	if !o.quiet && !o.json {
		bar = newProgress(stderr, int64(f.episodes+f.explore), "policy episodes (calibrated simulator)", progressbar.OptionClearOnFinish())
	}
	res, err := eval.FitRecorded(ctx, eval.RecordedFitConfig{
		Names: o.data, Snapshots: in.Snapshots, Pool: o.pool, Episodes: f.episodes, ModelEpisodes: f.explore, Seed: f.seed,
		Progress: func(done, _ int) {
			if bar != nil {
				_ = bar.Set(done)
			}
		},
	})
	if bar != nil {
		_ = bar.Finish()
	}
	rep := trainRecordedReport{Calibrations: res.Calibrations}
	if !o.json {
		trainPrintCalibration(stdout, res.Calibrations)
	}
	if errors.Is(err, eval.ErrTooLittleData) {
		rep.Reason = err.Error()
		if !o.json {
			fmt.Fprintf(stdout, "\nno policy stored: %v (each pool needs %d recorded intervals with traffic); "+
				"a daemon with this model runs the threshold fallback\n", err, eval.CalibrationMinIntervals)
		}
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	tr, err := eval.SaveFit(st, &res.Fit, start)
	if err != nil {
		return rep, err
	}
	rep.Stored, rep.Policy = true, &tr
	if !o.json {
		fmt.Fprintf(stdout, "\npolicy %s (model %s, %d load states in pool units) trained on %d episodes in the calibrated simulator "+
			"and %d recorded transitions (fitted Q iteration) in %.0fs; saved in %s\n",
			tr.PolicyKey, tr.ModelKey, tr.K, tr.Episodes, tr.Offline, tr.Seconds, st.Path())
	}
	return rep, nil
}

// trainPrintCalibration prints what was calibrated per pool, then the
// recording and the calibrated simulator side by side.
func trainPrintCalibration(w io.Writer, cals []eval.PoolCalibration) {
	fmt.Fprintln(w, "\nSimulator calibrated from the recordings (per pool):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "recording\tpool\tservers (seen)\tservice ms\tslots\tservice req/s/server\tcv\tarrivals mean/peak req/s\tbalancer\tp95 target ms\t")
	for _, c := range cals {
		if c.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\tskipped: %s\t\t\t\t\t\t\t\t\n", filepath.Base(c.Recording), c.Pool, c.Skipped)
			continue
		}
		cv := fmt.Sprintf("%.2f", c.ServiceCV)
		if !c.CVMeasured {
			cv += " (assumed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d (%d..%d)\t%.1f\t%d\t%.1f\t%s\t%.1f / %.1f\t%s\t%.0f\t\n", filepath.Base(c.Recording), c.Pool, c.Servers,
			c.MinServers, c.MaxServers, c.ServiceMs, c.Slots, c.ServiceRate, cv, c.ArrivalMean, c.ArrivalPeak, c.Balancer, float64(c.Target)/float64(time.Millisecond))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nRecording vs calibrated simulator (same arrivals, median servers held; boot delay assumed %v):\n", eval.CalibratedBootDelay)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "recording\tpool\trate req/s rec / sim\tmean ms rec / sim\tp95 ms rec / sim\t")
	for _, c := range cals {
		if c.Simulated == nil {
			continue
		}
		r, s := c.Recorded, c.Simulated
		fmt.Fprintf(tw, "%s\t%s\t%.1f / %.1f\t%.1f / %.1f\t%.1f / %.1f\t\n", filepath.Base(c.Recording), c.Pool,
			r.RateRPS, s.RateRPS, r.MeanMs, s.MeanMs, r.P95Ms, s.P95Ms)
	}
	_ = tw.Flush()
}
