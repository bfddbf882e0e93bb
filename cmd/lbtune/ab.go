package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/lbtune/lbtune/agent/eval"
	"github.com/lbtune/lbtune/testbed/ab"
)

func init() {
	register(&command{
		name:    "ab",
		summary: "replay one trace through a real balancer once per policy (agent, hpa@U, threshold, static) and score each from the client side, beside the simulator",
		run:     abRun,
	})
}

func abRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ab", stderr)
	tracePath := fs.String("trace", "", "t,rps trace CSV (required)")
	from := fs.String("from", "", "replay from this offset of the trace (e.g. 72h)")
	to := fs.String("to", "", "replay up to this offset of the trace")
	scale := fs.Float64("scale", 1, "multiply the trace's rates")
	speedup := fs.Float64("speedup", 12, "trace seconds per wall second, and the wall rate's multiple of the trace's (servers serve that much faster): decisions every --decide of wall time are --decide x speed-up of trace time")
	balancer := fs.String("balancer", "haproxy", "real balancer: haproxy or nginx (NGINX observed through its access log over syslog UDP, its upstream rendered and reloaded by the NGINX actuator)")
	policies := fs.String("policies", "agent,hpa@0.5,threshold", "comma-separated policies run in turn: agent, threshold, hpa@U, static")
	fs.StringVar(&policyModelPath, "model", "", "agent: model + policy store (default "+eval.DefaultModelPath+")")
	duration := fs.Duration("duration", 0, "cap each policy's real run at this wall time (default: the whole slice / speed-up)")
	peakServers := fs.Int("peak-servers", 8, "the trace's peak needs this many servers at 70% utilisation")
	decide := fs.Duration("decide", 5*time.Second, "the daemon's decision period (wall time)")
	seed := fs.Uint64("seed", 1, "seed of the arrivals and service times (the same for every policy)")
	asJSON := fs.Bool("json", false, "print a JSON list, one object per policy")
	out := fs.String("out", "", "keep every run's store, decisions, load records and logs under DIR")
	simOnly := fs.Bool("sim-only", false, "score the plan in the simulator alone (no real runs): the sim columns in seconds")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *tracePath == "" {
		return fmt.Errorf("%w: --trace is required", errUsage)
	}
	fromD, err := evalOffset("--from", *from)
	if err != nil {
		return err
	}
	toD, err := evalOffset("--to", *to)
	if err != nil {
		return err
	}
	model := policyModelPath
	if model == "" {
		model = eval.DefaultModelPath
	}
	specs := eval.Specs(*policies)
	cfg := ab.Config{
		Trace: *tracePath, From: fromD, To: toD, Scale: *scale, Speedup: *speedup, Balancer: *balancer,
		Policies: specs, Model: model, Trained: policyAgent, Duration: *duration,
		PeakServers: *peakServers, Decide: *decide, Seed: *seed, Dir: *out, SimOnly: *simOnly,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	plan, err := ab.NewPlan(cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if !*asJSON {
		fmt.Fprintln(stdout, plan.Describe())
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !*simOnly {
		bars := map[string]*progressbar.ProgressBar{}
		cfg.Progress = func(policy string, done float64) {
			b := bars[policy]
			if b == nil {
				b = progressbar.NewOptions(1000, progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription(policy), progressbar.OptionThrottle(200*time.Millisecond),
					progressbar.OptionClearOnFinish())
				bars[policy] = b
			}
			_ = b.Set(int(done * 1000))
		}
	}
	results, err := ab.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	if *simOnly {
		abSimTable(stdout, results)
		return nil
	}
	abTable(stdout, plan, results)
	return nil
}

// abSimTable prints the simulator's side alone (--sim-only).
func abSimTable(w io.Writer, rs []ab.Result) {
	fmt.Fprintln(w, "sim only: the same scenario in the simulator, no real runs")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tsim slo_viol_%\tsim p95_ms\tsim failed\tsim server_h\tsim actions\tsim reversals\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.2f\t%.4g\t%d\t%.2f\t%d\t%d\t\n", r.Policy, r.Sim.SLOViolationPct, r.Sim.P95Ms, r.Sim.Failed, r.Sim.ServerHours, r.Sim.Actions, r.Sim.Reversals)
	}
	tw.Flush()
}

// abTable prints the real runs beside the simulator's.
func abTable(w io.Writer, plan *ab.Plan, rs []ab.Result) {
	fmt.Fprintf(w, "real: client-side figures (latency in trace units: wall x %.3g); sim: the same scenario in the simulator\n", plan.RateFactor)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tslo_viol_%\tp95_ms\tfailed\trequests\tserver_h\tactions\treversals\t|\tsim slo_viol_%\tsim p95_ms\tsim server_h\tsim actions\tsim reversals\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.2f\t%.4g\t%d\t%d\t%.2f\t%d\t%d\t|\t%.2f\t%.4g\t%.2f\t%d\t%d\t\n", r.Policy, r.SLOViolationPct, r.P95Ms, r.Failed, r.Requests,
			r.ServerHours, r.Actions, r.Reversals, r.Sim.SLOViolationPct, r.Sim.P95Ms, r.Sim.ServerHours, r.Sim.Actions, r.Sim.Reversals)
	}
	tw.Flush()
}
