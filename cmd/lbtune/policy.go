package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/eval"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/model"
	"github.com/lbtune/lbtune/tuner/config"
)

func init() {
	register(&command{
		name:    "policy",
		summary: "train the agent's policy in the simulator (policy train) or explain a trained one (policy show)",
		run:     policyRun,
		subcommands: []subcommand{
			{"train", "train the agent's policy in the simulator on rate traces: policy train --traces T.csv --out M.db"},
			{"show", "explain a trained policy: load states and each one's preferred action: policy show [--model M.db] [--config lbtune.yaml] [--json]"},
		},
	})
	trainSteps = append(trainSteps, trainStep{name: "policy", flags: policyTrainStepFlags, run: policyTrainStep})
}

// policyModelPath is eval's --model (empty: eval.DefaultModelPath).
var policyModelPath string

// policyTrendOnly is eval's --trend-only: the agent forecasts without its
// seasonal profile (agent.RLConfig.TrendOnly).
var policyTrendOnly bool

func policyRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, "Usage: lbtune policy train --traces T.csv[,T2.csv...] --out M.db [flags]")
		fmt.Fprintln(stdout, "       lbtune policy show [--model M.db] [--config lbtune.yaml] [--json]")
		return nil
	}
	switch args[0] {
	case "train":
		return policyTrainCmd(ctx, args[1:], stdout, stderr)
	case "show":
		return policyShow(args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown subcommand %q (want train or show)", errUsage, args[0])
}

// policyTrainFlags are the flags policy training shares between
// `lbtune policy train` and `lbtune train --traces`.
type policyTrainFlags struct {
	traces    string
	episodes  int
	explore   int
	length    time.Duration
	rateMin   float64
	rateMax   float64
	peak      int
	minPeak   int
	seed      uint64
	kmin      int
	kmax      int
	quietPols bool
	prices    objectivePrices
}

func (f *policyTrainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.traces, "traces", "", "comma-separated t,rps trace CSVs to train the policy on in the simulator")
	fs.IntVar(&f.episodes, "episodes", 60, "learning episodes (each a random slice of a random trace)")
	fs.IntVar(&f.explore, "explore-episodes", 12, "exploration episodes whose states train the load-state model")
	fs.DurationVar(&f.length, "episode-length", 12*time.Hour, "length of each episode's slice")
	fs.Float64Var(&f.rateMin, "rate-min", 0.3, "smallest mean rate (req/s) an episode is scaled to")
	fs.Float64Var(&f.rateMax, "rate-max", 1000, "largest mean rate (req/s) an episode is scaled to")
	fs.IntVar(&f.peak, "peak-servers", 20, "servers an episode's peak needs at 70% utilisation (the largest, with --min-peak-servers)")
	fs.IntVar(&f.minPeak, "min-peak-servers", 20, "each episode draws its peak servers log-uniform from [this, --peak-servers], so the agent also meets small pools")
	fs.Uint64Var(&f.seed, "policy-seed", 1, "seed of policy training")
	f.prices.register(fs)
}

// checkPeaks refuses a pool-size range that is not 1 <= min <= peak.
func (f *policyTrainFlags) checkPeaks() error {
	if f.peak < 1 || f.minPeak < 1 || f.minPeak > f.peak {
		return fmt.Errorf("%w: --min-peak-servers %d, --peak-servers %d: want 1 <= min <= peak", errUsage, f.minPeak, f.peak)
	}
	return nil
}

var policyStepFlags policyTrainFlags

func policyTrainStepFlags(fs *flag.FlagSet) { policyStepFlags.register(fs) }

// policyTrainStep is `lbtune train`'s extra stage: with --traces it trains
// the agent (a load-state model over the recorded and simulated states, and
// the policy) and saves both in the same store.
func policyTrainStep(ctx context.Context, st *datasets.Store, _ *model.Model, in *model.Input, asJSON bool, stdout, stderr io.Writer) (any, error) {
	if policyStepFlags.traces == "" {
		return nil, nil
	}
	return policyTrain(ctx, st, policyStepFlags, in.Samples, nil, nil, asJSON, false, stdout, stderr)
}

func policyTrainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy train", stderr)
	var f policyTrainFlags
	f.register(fs)
	out := fs.String("out", "", "store to save the model and policy in (created when missing; required)")
	asJSON := fs.Bool("json", false, "print a JSON summary")
	quiet := fs.Bool("quiet", false, "no progress bar")
	var data []string
	fs.Func("data", "recorded dataset (.jsonl.gz or store): its logged weight changes start the weight values (fitted Q iteration, with --data-target); repeatable", func(s string) error {
		data = append(data, s)
		return nil
	})
	targets := fs.String("data-target", "", "p95 target of the recorded pools to learn from, POOL=DURATION,... (e.g. light=20ms,heavy=320ms)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.traces == "" || *out == "" {
		return fmt.Errorf("%w: --traces and --out are required", errUsage)
	}
	if err := f.checkPeaks(); err != nil {
		return err
	}
	tmap, err := eval.ParseTargets(*targets)
	if err != nil {
		return fmt.Errorf("%w: --data-target: %v", errUsage, err)
	}
	if len(tmap) > 0 && len(data) == 0 {
		return fmt.Errorf("%w: --data-target without --data", errUsage)
	}
	samples, recs, err := eval.LoadRecordings(data, tmap)
	if err != nil {
		return err
	}
	st, err := datasets.Open(*out)
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = policyTrain(ctx, st, f, samples, data, recs, *asJSON, *quiet, stdout, stderr)
	return err
}

// policyTrain runs eval.Fit and saves the model, policy and samples.
func policyTrain(ctx context.Context, st *datasets.Store, f policyTrainFlags, samples []model.Features, data []string, recs []eval.Recording, asJSON, quiet bool, stdout, stderr io.Writer) (eval.TrainReport, error) {
	reward, err := f.prices.reward()
	if err != nil {
		return eval.TrainReport{}, err
	}
	trs, err := eval.ReadTraces(f.traces)
	if err != nil {
		return eval.TrainReport{}, err
	}
	start := time.Now()
	var bar *progressbar.ProgressBar
	if !quiet {
		bar = newProgress(stderr, int64(f.episodes+f.explore), "policy episodes", progressbar.OptionClearOnFinish())
	}
	if err := f.checkPeaks(); err != nil {
		return eval.TrainReport{}, err
	}
	res, err := eval.Fit(ctx, eval.FitConfig{
		Traces: trs, Episodes: f.episodes, ModelEpisodes: f.explore, EpisodeLength: f.length,
		RateMin: f.rateMin, RateMax: f.rateMax, PeakServers: f.peak, MinPeakServers: f.minPeak, Seed: f.seed, Samples: samples, Data: append(data, f.traces),
		Recordings: recs, RL: agent.RLConfig{Reward: reward},
		Progress: func(done, total int) {
			if bar != nil {
				bar.ChangeMax(total) // Fit adds the episodes that record the trained policy
				_ = bar.Set(done)
			}
		},
	})
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return eval.TrainReport{}, err
	}
	rep, err := eval.SaveFit(st, &res, start)
	if err != nil {
		return eval.TrainReport{}, err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return rep, enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "policy %s (model %s, %d load states) trained on %d episodes of %s in %.0fs; saved in %s\n",
		rep.PolicyKey, rep.ModelKey, rep.K, rep.Episodes, strings.Join(rep.TrainedOn, ", "), rep.Seconds, st.Path())
	if rep.Offline > 0 {
		fmt.Fprintf(stdout, "weight values started from %d recorded transitions (fitted Q iteration on %d recordings)\n", rep.Offline, len(recs))
	}
	return rep, nil
}

// policyAgent builds the agent for pool p of an eval scenario from
// policyModelPath.
func policyAgent(sc *eval.Scenario, p int) (agent.Policy, error) {
	b, err := eval.LoadBundle(policyModelPath)
	if err != nil {
		return nil, err
	}
	b.Table.Config.TrendOnly = policyTrendOnly
	return b.Agent(sc, p), nil
}

func policyShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy show", stderr)
	path := fs.String("model", "", "store with the trained model and policy (default "+eval.DefaultModelPath+")")
	asJSON := fs.Bool("json", false, "print JSON")
	depth := fs.Int("depth", eval.ExplainDepth, "depth of the distilled decision tree of each move")
	cfgPath := fs.String("config", "", "lbtune.yaml: also show each pool's own fallback thresholds and objective")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b, err := eval.LoadBundle(*path)
	if err != nil {
		return err
	}
	rep := b.Show(*depth)
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		for i := range cfg.Pools {
			pc := &cfg.Pools[i]
			rep.Pools = append(rep.Pools, eval.ShowPool{Pool: pc.Name, Fallback: cfg.PoolFallback(pc), Objective: cfg.PoolReward(pc)})
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	policyPrint(stdout, rep)
	return nil
}

func policyPrint(w io.Writer, r eval.ShowReport) {
	fmt.Fprintf(w, "policy %s: %d episodes, %d updates, trained on %s\n\n", r.Policy, r.Episodes, r.Steps, strings.Join(r.TrainedOn, ", "))
	fmt.Fprintln(w, "Server actions (levels): plan for forecast + Z x sigma with M/M/c tail P(T > target) <= tail")
	for i, l := range r.Levels {
		fmt.Fprintf(w, "  L%d  Z=%.1f tail=%.1f%%\n", i, l.Z, 100*l.Tail)
	}
	si := r.ScaleIn
	fmt.Fprintf(w, "Scale-in: shrink only to the largest plan of the last %v at the most cautious level %+.1f sigma", si.Window, si.Z)
	if !si.Selected {
		fmt.Fprintln(w, " (the configuration's: trained before the selection)")
	} else {
		fmt.Fprintf(w, "\n  selected by the objective: mean %.1f per episode on %d held-in episodes, among the candidates with at most\n"+
			"  %d scale orders and %d reversals there (hpa@0.5's orders, the fewest HPA reversals + 3 per episode); candidates\n"+
			"  (margin/window: objective, orders, reversals, calm):", si.Objective, si.Episodes, si.MaxActions, si.MaxReversals)
		for _, c := range si.Candidates {
			fmt.Fprintf(w, "\n    %+.1f/%v: %.1f, %d, %d, %v", c.Z, c.Window, c.Objective, c.Actions, c.Reversals, c.Calm)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	// Pool units: the load in servers' worth of work and the p95 as a
	// multiple of the target (see agent.RLConfig.PoolUnits).
	units, rate, p95, rateKey, p95Key, p95Fmt := "real units", "rate rps", "p95 ms", "rate_rps", "p95_latency_ms", "%.0f"
	if r.PoolUnits {
		units, rate, p95, rateKey, p95Key, p95Fmt = "pool units: load in servers of work, p95 as a multiple of the target",
			"load srv", "p95/target", "load_servers", "p95_latency_x_target", "%.2f"
	}
	fmt.Fprintf(w, "Load states (centroids in %s; 'seen' = means over training decisions in the state):\n", units)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "state\tshare\t%s\t%s\tservers\terrors\tseen util\tpreferred\tvalues per level (visits)\n", rate, p95)
	for _, s := range r.States {
		var vals []string
		for i, v := range s.Values {
			vals = append(vals, fmt.Sprintf("L%d %.3f (%.0f)", i, v, s.Visits[i]))
		}
		fmt.Fprintf(tw, "%d\t%.2f\t%.1f\t"+p95Fmt+"\t%.0f\t%.3f\t%.2f\t%s\t%s\n", s.State, s.Share, s.Centroid[rateKey],
			s.Centroid[p95Key], s.Centroid["servers"], s.Centroid["error_ratio"], s.Seen.Utilisation, s.Preferred, strings.Join(vals, "  "))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Fallback (threshold policy) decides when: the policy is untrained, the state is out of distribution,\n"+
		"  the most likely state has posterior < %.2f, or data is older than %v.\n", r.Switch.MinConfidence, r.Switch.StaleAfter)
	policyPrintFallback(w, "fallback thresholds (defaults)", r.Fallback)
	fmt.Fprintf(w, "Objective it was trained on: %s\n", policyObjective(r.Objective))
	for _, p := range r.Pools {
		fmt.Fprintf(w, "Pool %s: objective %s, p95 target %v\n", p.Pool, policyObjective(p.Objective), p.Fallback.TargetP95)
		policyPrintFallback(w, "fallback thresholds", p.Fallback)
	}
	g := r.Guard
	fmt.Fprintf(w, "Guard: up cooldown %v, down %v after an up, steps +%d/-%d, spikes < %v ignored, min lifetime %v, stale after %v\n\n",
		g.UpCooldown, g.DownCooldown, g.MaxStepUp, g.MaxStepDown, g.SpikeHold, g.MinLifetime, g.StaleAfter)
	if r.Tree == nil {
		fmt.Fprintf(w, "No policy tree: %s\n", r.TreeReason)
		return
	}
	t := r.Tree
	fmt.Fprintf(w, "The policy as rules (a depth-%d tree per move, fitted on %d decisions; agrees with the agent on %.1f%% of %d held-out\n"+
		"  decisions (always the most common move would: %.1f%%), and on %.1f%% of the held-out moves",
		t.Depth, t.Train, 100*t.Agreement, t.Test-t.TestReplayed, 100*t.Baseline, 100*t.MoveAgreement)
	if t.Replayed > 0 {
		fmt.Fprintf(w, ";\n  %d more held out were replayed on recordings and score the weights only", t.TestReplayed)
	}
	fmt.Fprintln(w, "):")
	for _, rule := range t.Rules {
		fmt.Fprintln(w, "  "+rule)
	}
	if len(t.Classes) > 0 {
		fmt.Fprintln(w, "Agreement per move on the held-out decisions:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  move\tdecisions\tagreed\tagreement\tpredicted")
		for _, c := range t.Classes {
			agreement := "-"
			if c.Decisions > 0 {
				agreement = fmt.Sprintf("%.1f%%", 100*c.Agreement)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%d\n", c.Class, c.Decisions, c.Agreed, agreement, c.Predicted)
		}
		_ = tw.Flush()
	}
	if len(r.AgentRules) > 0 {
		fmt.Fprintln(w, "\nThe agent's rules, in the order it applies them (each decision's reason names the one behind it):")
		for _, ar := range r.AgentRules {
			fmt.Fprintf(w, "  %-13s %s\n", ar.ID, ar.Text)
		}
	}
}

// policyPrintFallback prints the threshold fallback's settings.
func policyPrintFallback(w io.Writer, title string, f agent.ThresholdConfig) {
	fmt.Fprintf(w, "  %s: p95 target over %v ignoring breaches < %v (at least %.0f requests); utilisation > %.2f grow x%.1f, < %.2f shrink x%.1f (p95 under %.2f x target);\n"+
		"  %d reserve servers on above %.1f queued per server, off below %.1f; %v between a change and a shrink\n",
		title, f.Window, f.MinBreach, f.MinRequests, f.UtilHigh, f.GrowRatio, f.UtilLow, f.ShrinkRatio, f.ShrinkBelow, f.Reserve, f.QueueHigh, f.QueueLow, f.DownCooldown)
	if f.BreachConfidence > 0 || f.Proportional || f.BreachMemory > 0 {
		steps := "fixed"
		if f.Proportional {
			steps = "proportional (the ratios are the largest)"
		}
		fmt.Fprintf(w, "  a breach counts at %.0f%% confidence; steps %s; no shrink back to the size that breached for %v\n",
			100*f.BreachConfidence, steps, f.BreachMemory)
	}
}

// policyObjective describes an objective in its prices.
func policyObjective(r agent.RewardConfig) string {
	return fmt.Sprintf("%g per server-hour + %g per minute over the p95 target (reward per 30 s: latency %g, violation %g, errors %g, server %g)",
		r.ServerHour(), r.ViolationMinute(), r.Latency, r.Violation, r.Errors, r.ServerCost)
}
