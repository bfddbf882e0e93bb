package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/lbtune/lbtune/testbed/dist"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

func init() {
	register(&command{
		name:    "load",
		summary: "send open-loop HTTP load (rate, phases or trace) and report latency percentiles",
		run:     loadRun,
	})
}

// loadTargets collects repeated --target flags.
type loadTargets []string

func (t *loadTargets) String() string     { return strings.Join(*t, ",") }
func (t *loadTargets) Set(v string) error { *t = append(*t, v); return nil }

func loadRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", stderr)
	var targets loadTargets
	fs.Var(&targets, "target", "target URL (repeatable; requests are spread evenly)")
	mix := fs.String("mix", "", `request mix, e.g. "/light=60,/medium=30,/heavy=10" (needs --base)`)
	base := fs.String("base", "", "base URL for --mix, e.g. http://127.0.0.1:8080")
	rate := fs.Float64("rate", 0, "constant mean arrival rate in req/s")
	phases := fs.String("phases", "", "phases file (YAML/JSON list of {duration, rate, distribution}), repeated until --duration")
	trace := fs.String("trace", "", "t,rps trace CSV to replay")
	speedup := fs.Float64("speedup", 1, "trace time compression (60 plays a 60 s bucket in 1 s)")
	scale := fs.Float64("scale", 1, "trace rate multiplier")
	distName := fs.String("dist", "exp", "inter-arrival distribution: exp, normal, fixed, zipf")
	duration := fs.Duration("duration", 0, "how long to send (required)")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	maxWorkers := fs.Uint64("max-workers", 256, "cap on requests in flight (0 = unlimited); open loop until the cap, and an unlimited pool can collapse an overloaded client")
	out := fs.String("out", "", "write per-request records here (.csv for CSV, else JSON lines)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	seed := fs.Uint64("seed", 0, "random seed (0 = from the clock)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *duration <= 0 {
		return fmt.Errorf("%w: --duration is required", errUsage)
	}
	kind, err := dist.Parse(*distName)
	if err != nil {
		return fmt.Errorf("%w: --dist: %v", errUsage, err)
	}

	// Targets: --target URLs or a --mix over --base.
	var ws []loadgen.Weighted
	switch {
	case *mix != "" && len(targets) > 0:
		return fmt.Errorf("%w: use --target or --mix, not both", errUsage)
	case *mix != "":
		if ws, err = loadgen.ParseMix(*mix, *base); err != nil {
			return fmt.Errorf("%w: --mix: %v", errUsage, err)
		}
	case len(targets) > 0:
		for _, t := range targets {
			ws = append(ws, loadgen.Weighted{URL: t, Weight: 1})
		}
	default:
		return fmt.Errorf("%w: give --target URL or --mix with --base", errUsage)
	}

	// Schedule: exactly one of --rate, --phases, --trace.
	if *rate < 0 || math.IsNaN(*rate) || math.IsInf(*rate, 0) {
		return fmt.Errorf("%w: --rate %v must be a positive req/s", errUsage, *rate)
	}
	var sched loadgen.Schedule
	n := 0
	for _, set := range []bool{*rate > 0, *phases != "", *trace != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: give exactly one of --rate, --phases, --trace", errUsage)
	}
	switch {
	case *rate > 0:
		sched = loadgen.Constant(*rate, kind, *duration)
	case *phases != "":
		if sched, err = loadgen.LoadPhases(*phases, kind); err != nil {
			return err
		}
		sched.Repeat = true
	default:
		if sched, err = loadgen.LoadTrace(*trace, *speedup, *scale, kind); err != nil {
			return err
		}
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	cfg := loadgen.Config{Targets: ws, Schedule: sched, Duration: *duration, Timeout: *timeout, Workers: 16, MaxWorkers: *maxWorkers, Seed: *seed}

	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("create records: %w", err)
		}
		defer f.Close()
		rw, err := loadgen.NewRecordWriter(f, loadgen.FormatOf(*out))
		if err != nil {
			return err
		}
		cfg.Records = rw.Write
		defer rw.Flush()
	}
	sum, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	loadPrintSummary(stdout, sum)
	return nil
}

func loadPrintSummary(w io.Writer, s loadgen.Summary) {
	if s.Interrupted {
		fmt.Fprintln(w, "interrupted: summary of the requests sent so far")
	}
	fmt.Fprintf(w, "requests      %d in %.1fs (requested %.1f/s, achieved %.1f/s, %.1f%%)\n",
		s.Requests, s.DurationS, s.RateRequested, s.RateAchieved, 100*loadRatio(s.RateAchieved, s.RateRequested))
	fmt.Fprintf(w, "successes     %d (throughput %.1f/s)\n", s.Successes, s.Throughput)
	fmt.Fprintf(w, "failures      %d%s\n", s.Failures, loadKinds(s.FailuresByKind))
	fmt.Fprintf(w, "status codes %s\n", loadKinds(s.StatusCodes))
	fmt.Fprintf(w, "latency ms    mean %.3f  var %.3f  min %.3f  max %.3f  scv %.3f\n", s.MeanMs, s.VarianceMs2, s.MinMs, s.MaxMs, s.SCV)
	fmt.Fprintf(w, "percentile ms p50 %.3f  p90 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f\n", s.P50Ms, s.P90Ms, s.P95Ms, s.P99Ms, s.P999Ms)
	fmt.Fprintf(w, "per second    ")
	for i, sec := range s.Series {
		if i > 0 {
			fmt.Fprint(w, " ")
		}
		fmt.Fprint(w, sec.Sent)
	}
	fmt.Fprintln(w)
}

func loadRatio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func loadKinds(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, m[k])
	}
	return b.String()
}
