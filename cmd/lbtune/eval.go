package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/eval"
	"github.com/lbtune/lbtune/agent/sim"
)

func init() {
	register(&command{
		name:    "eval",
		summary: "score policies (static, threshold, hpa@U, oracle, ...) on a rate trace in the simulator",
		run:     evalRun,
	})
}

// evalProgressMin is the total simulated time (all policies) above which a
// progress bar is drawn on stderr.
const evalProgressMin = 7 * 24 * time.Hour

func evalRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	tracePath := fs.String("trace", "", "t,rps trace CSV (required)")
	policies := fs.String("policies", "static,threshold,hpa,oracle", "comma-separated policy specs: static, threshold, hpa[@U] (target utilisation), oracle[@H] (p95 headroom, default 0.8), agent")
	configPath := fs.String("config", "", "scenario YAML (pools, templates); default: the one-pool scenario sized by --peak-servers")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives every policy the same arrivals")
	asJSON := fs.Bool("json", false, "print a JSON array, one object per policy")
	peak := fs.Int("peak-servers", 20, "default scenario: servers the trace's peak needs at 70% utilisation")
	scale := fs.Float64("scale", 1, "multiply every rate of the trace (e.g. 0.01 to thin a busy trace)")
	from := fs.String("from", "", "evaluate from this offset of the trace (e.g. 72h, 3d)")
	to := fs.String("to", "", "evaluate up to this offset of the trace (e.g. 96h, 4d)")
	interval := fs.Duration("interval", 0, "decision interval (default 30s, or the config's)")
	progress := fs.Bool("progress", true, "draw a progress bar on stderr for long runs (only when stderr is a terminal)")
	decisionsDir := fs.String("decisions", "", "write every decision of each policy to DIR/POLICY.jsonl (created)")
	fs.StringVar(&policyModelPath, "model", "", "agent: store with the trained model and policy (default "+eval.DefaultModelPath+")")
	var prices objectivePrices
	prices.register(fs)
	fs.BoolVar(&policyTrendOnly, "trend-only", false, "agent: forecast with the trend alone, without the seasonal profile (for comparison)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *tracePath == "" {
		return fmt.Errorf("%w: --trace is required", errUsage)
	}
	if !(*scale > 0) || math.IsInf(*scale, 0) {
		return fmt.Errorf("%w: --scale %v must be positive", errUsage, *scale)
	}
	specs := eval.Specs(*policies)
	if len(specs) == 0 {
		return fmt.Errorf("%w: --policies is empty", errUsage)
	}
	fromD, err := evalOffset("--from", *from)
	if err != nil {
		return err
	}
	toD, err := evalOffset("--to", *to)
	if err != nil {
		return err
	}

	tr, err := eval.LoadTrace(*tracePath, fromD, toD, *scale)
	if err != nil {
		return err
	}
	var sc eval.Scenario
	if *configPath != "" {
		sc, err = eval.ReadScenarioFile(*configPath, tr, *seed)
	} else {
		sc, err = eval.DefaultScenario(tr, *peak, *seed)
	}
	if err != nil {
		return err
	}
	if sc.Objective, err = prices.reward(); err != nil {
		return err
	}
	if *interval > 0 {
		sc.Interval = *interval
		sc.StartAtOracle()
	}

	// Build every policy first, so a bad spec fails before any run.
	built, err := sc.Policies(specs, policyAgent)
	if err != nil {
		return fmt.Errorf("%w: --policies: %v", errUsage, err)
	}

	// Run every policy concurrently on its own simulator (same seed).
	var bar *progressbar.ProgressBar
	total := time.Duration(len(specs)) * tr.Duration()
	if *progress && total >= evalProgressMin {
		bar = newProgress(stderr, int64(total/time.Hour), "simulated hours",
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	var mu sync.Mutex
	var done time.Duration
	tick := func(d time.Duration) {
		if bar == nil {
			return
		}
		mu.Lock()
		before := done / time.Hour
		done += d
		if n := done/time.Hour - before; n > 0 {
			_ = bar.Add64(int64(n))
		}
		mu.Unlock()
	}
	recs := make([]*eval.DecisionLog, len(specs))
	if *decisionsDir != "" {
		if err := os.MkdirAll(*decisionsDir, 0o755); err != nil {
			return fmt.Errorf("--decisions: %w", err)
		}
		for i, spec := range specs {
			if recs[i], err = eval.CreateDecisionLog(filepath.Join(*decisionsDir, spec+".jsonl")); err != nil {
				return fmt.Errorf("--decisions: %w", err)
			}
		}
	}
	results, err := eval.EvaluateAll(ctx, sc, specs, built, func(i int) eval.EvalOptions {
		opts := eval.EvalOptions{Progress: tick}
		if recs[i] != nil {
			opts.Recorder = recs[i]
		}
		return opts
	})
	for i, r := range recs {
		if r != nil {
			if cerr := r.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("--decisions %s: %w", filepath.Join(*decisionsDir, specs[i]+".jsonl"), cerr)
			}
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	evalTable(stdout, *tracePath, tr, sc, *scale, results)
	return nil
}

// evalOffset parses a --from/--to offset (eval.ParseOffset).
func evalOffset(flag, v string) (time.Duration, error) {
	d, err := eval.ParseOffset(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q: %v", errUsage, flag, v, err)
	}
	return d, nil
}

func evalTable(w io.Writer, path string, tr *sim.Trace, sc eval.Scenario, scale float64, rs []eval.Result) {
	fmt.Fprintf(w, "trace %s: %v, mean %.3f rps, peak %.3f rps (scale %g); seed %d, decisions every %v\n",
		path, tr.Duration(), tr.Mean(), tr.Peak(), scale, sc.Sim.Seed, sc.Interval)
	for i, p := range sc.Sim.WithDefaults().Pools {
		t := sc.Templates[i]
		fmt.Fprintf(w, "pool %s: %s, service rate %.4g/s per server, p95 target %v, servers %d..%d (start %d), boot %v; cost = %g x requests in system + %g x servers\n",
			p.Name, p.Balancer, p.ServiceRate(), t.TargetP95.Round(time.Microsecond), max(t.Min, 1), t.Max, p.Servers, p.BootDelay, sc.C1, sc.C2)
	}
	o := sc.Reward()
	fmt.Fprintf(w, "objective (what the agent learns) = %g per server-hour + %g per minute over the target + %g per minute x (p95/target - 1) + %g per minute x error ratio\n",
		o.ServerHour(), o.ViolationMinute(), o.Latency*float64(time.Minute/agent.RewardInterval), o.Errors*float64(time.Minute/agent.RewardInterval))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tslo_viol_%\tmean_ms\tp95_ms\tp99_ms\tfailed\tserver_h\tactions\treversals\tcost\tobjective\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.2f\t%.3g\t%.3g\t%.3g\t%d\t%.1f\t%d\t%d\t%.2f\t%.1f\t\n",
			r.Policy, r.SLOViolationPct, r.MeanMs, r.P95Ms, r.P99Ms, r.Failed, r.ServerHours, r.Actions, r.Reversals, r.Cost, r.Objective)
	}
	tw.Flush()
}

// objectivePrices are the flags that price the objective (eval's score,
// policy training's reward): a server-hour and a minute over the p95
// target, 0 keeping the agent's defaults (agent.RewardConfig.WithPrices).
type objectivePrices struct {
	serverHour, violationMinute float64
}

func (f *objectivePrices) register(fs *flag.FlagSet) {
	d := agent.DefaultRLConfig().Reward
	fs.Float64Var(&f.serverHour, "server-hour", 0, fmt.Sprintf("objective: price of one server for one hour (0: the default, %g)", d.ServerHour()))
	fs.Float64Var(&f.violationMinute, "violation-minute", 0, fmt.Sprintf("objective: cost of one minute whose p95 missed the target (0: the default, %g)", d.ViolationMinute()))
}

// reward is the agent's default reward at the flags' prices; a negative
// or non-finite price is a usage error.
func (f *objectivePrices) reward() (agent.RewardConfig, error) {
	for _, p := range []struct {
		name string
		v    float64
	}{{"--server-hour", f.serverHour}, {"--violation-minute", f.violationMinute}} {
		if !(p.v >= 0) || math.IsInf(p.v, 0) {
			return agent.RewardConfig{}, fmt.Errorf("%w: %s %v must be a finite price, 0 or more", errUsage, p.name, p.v)
		}
	}
	return agent.DefaultRLConfig().Reward.WithPrices(f.serverHour, f.violationMinute), nil
}
