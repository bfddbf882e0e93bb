// Package ab runs scaling policies one after another against the same
// arrivals on a real balancer (lbtune ab), measures each from the client
// side, and scores the same scenario in the simulator beside it.
//
// One run per policy: a fresh HAProxy or NGINX on 127.0.0.1 in front of a
// fleet pool of `lbtune backend` processes (exponential service, a boot delay),
// an in-process lbtune daemon deciding for that pool with the policy in
// auto mode, and the trace slice replayed through the balancer by the
// open-loop load generator (seeded, so every policy gets the same
// arrival sequence). Time runs Speedup times faster than the trace (the
// control loop's time scale: decisions, boots, cooldowns), and so do
// arrival rates and service rates: utilisation is the trace's. The daemon
// sees the pool on a clock Speedup times faster than the wall clock (its
// source's time_scale), so its intervals, guard and policy windows are
// the trace's, as in the simulator. Latencies are reported in trace
// units (wall latency x Speedup), comparable to the simulator and the
// target; --scale sets how many requests per wall second that is.
package ab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/eval"
	"github.com/lbtune/lbtune/agent/sim"
)

// Config is one A/B comparison.
type Config struct {
	// Trace is a t,rps CSV; From and To slice it (0: whole), Scale
	// multiplies its rates before anything else.
	Trace    string
	From, To time.Duration
	Scale    float64
	// Speedup is trace seconds per wall second (the control loop's time
	// scale): decisions every Decide of wall time are Decide x Speedup of
	// trace time, and a boot of BootDelay trace time takes BootDelay /
	// Speedup of wall time.
	Speedup float64
	// Balancer is "haproxy" (default) or "nginx": the real balancer, and
	// the simulator's model of it (HAProxy roundrobin, NGINX smooth
	// weighted round robin).
	Balancer string
	// Policies are the daemon's policy specs, run in this order: agent,
	// threshold, hpa@U, static.
	Policies []string
	// Model is the model + policy store the agent runs (needed by agent).
	Model string
	// Trained builds the agent for the simulator side (eval's TrainedAgent).
	Trained eval.TrainedAgent
	// Duration caps each real run's wall time (0: the whole slice).
	Duration time.Duration
	// PeakServers sizes the scenario: the trace's peak needs this many
	// servers at 70% utilisation (default 8).
	PeakServers int
	// MaxRPS refuses a plan whose wall peak (trace peak x scale x
	// speed-up) exceeds it (default 400: what 2 cores serve with room).
	MaxRPS float64
	// Decide is the daemon's wall decision period (default 5s).
	Decide time.Duration
	// BootDelay is a new server's boot in trace time (default eval's 60s),
	// at most 8 s of wall time.
	BootDelay time.Duration
	// Seed makes the arrivals and service times replayable.
	Seed uint64
	// Dir keeps every run's files (store, decisions, load records,
	// logs); "" uses a temporary directory removed at the end.
	Dir string
	// Exe is the lbtune executable the backends run (default: this one).
	Exe string
	// HAProxyBin is the haproxy binary (default /usr/sbin/haproxy).
	HAProxyBin string
	// NGINXBin is the nginx binary (default: nginx on PATH, else
	// /usr/sbin/nginx). The daemon's NGINX actuator runs nginx from PATH.
	NGINXBin string
	// Log receives progress lines; nil discards them.
	Log *slog.Logger
	// Progress, when set, is called during each real run with the policy
	// and the fraction of the run done.
	Progress func(policy string, done float64)
	// SimOnly scores the plan in the simulator alone: no real runs, and
	// each Result carries only Policy and Sim.
	SimOnly bool
}

// Result is one policy's real run and its simulator twin. Its JSON is one
// element of `lbtune ab --json`.
type Result struct {
	Policy string `json:"policy"`
	// SLOViolationPct is the share of trace minutes with traffic whose
	// client-side p95 (trace units) exceeded the target, or whose requests
	// all failed.
	SLOViolationPct float64 `json:"slo_violation_pct"`
	// P95Ms and MeanMs are over every completed request, in trace units.
	P95Ms  float64 `json:"p95_ms"`
	MeanMs float64 `json:"mean_ms"`
	// Failed counts requests that failed at the client (errors, 5xx, timeouts).
	Failed   int `json:"failed"`
	Requests int `json:"requests"`
	// ServerHours integrates the pool's powered servers (booting, serving,
	// draining) over the run, in trace hours.
	ServerHours float64 `json:"server_hours"`
	// Actions counts changes of the pool's size; Reversals those against
	// the previous change's direction within 5 trace minutes.
	Actions   int `json:"actions"`
	Reversals int `json:"reversals"`
	// Minutes is the number of trace minutes scored.
	Minutes int `json:"minutes"`
	// Decisions counts the daemon's decisions by "policy/outcome".
	Decisions map[string]int `json:"decisions"`
	// WallSeconds is the real run's length.
	WallSeconds float64 `json:"wall_seconds"`
	// scored and sampled are the real run's records until Run joins
	// them with the simulator's minutes.
	scored  *scorer
	sampled *sampler
	// Sim is the same scenario and policy in the simulator.
	Sim SimResult `json:"sim"`
	// PerMinute is every trace minute, real beside simulated (not in the
	// JSON; --out writes it as POLICY/minutes.csv).
	PerMinute []Minute `json:"-"`
}

// SimResult is the simulator's score of the same scenario.
type SimResult struct {
	SLOViolationPct float64 `json:"slo_violation_pct"`
	P95Ms           float64 `json:"p95_ms"`
	ServerHours     float64 `json:"server_hours"`
	Actions         int     `json:"actions"`
	Reversals       int     `json:"reversals"`
	Failed          uint64  `json:"failed"`
	// Minutes is the simulator's per-minute truth (not in the JSON).
	Minutes []sim.MinuteTruth `json:"-"`
}

// Plan is the scenario both sides run, in trace and wall units.
type Plan struct {
	Trace    *sim.Trace
	Scenario eval.Scenario
	// Speedup maps trace time to wall time; RateFactor (= Speedup) trace
	// rates to wall rates and wall latencies to trace ones.
	Speedup, RateFactor float64
	// ServiceRate is one server's rate (trace units, req/s); Target the p95 target (trace).
	ServiceRate float64
	Target      time.Duration
	// Wall is the real run's length; WallDecide, WallBoot the control loop's.
	Wall, WallDecide, WallBoot time.Duration
	// Min, Max and Start are the pool's server limits and starting size.
	Min, Max, Start int
	// Slots is each backend's concurrency; Queue its wait-queue bound.
	Slots, Queue int
}

// maxWallBoot bounds a backend's boot in wall time (the fleet waits 10 s
// for a new server's first healthy answer).
const maxWallBoot = 8 * time.Second

// NewPlan checks c and builds the scenario of the comparison.
func NewPlan(c Config) (*Plan, error) {
	c = c.withDefaults()
	simBalancer, ok := simBalancers[c.Balancer]
	if !ok {
		return nil, fmt.Errorf("ab: balancer %q: want haproxy or nginx", c.Balancer)
	}
	if !(c.Speedup >= 1 && c.Speedup <= 600) {
		return nil, fmt.Errorf("ab: --speedup %v must be in [1, 600]", c.Speedup)
	}
	if !(c.Scale > 0) || math.IsInf(c.Scale, 0) {
		return nil, fmt.Errorf("ab: --scale %v must be positive and finite", c.Scale)
	}
	if c.PeakServers < 1 || c.PeakServers > 50 {
		return nil, fmt.Errorf("ab: peak servers %d must be in [1, 50]", c.PeakServers)
	}
	if c.Decide < 500*time.Millisecond {
		return nil, fmt.Errorf("ab: decision period %v must be at least 500ms", c.Decide)
	}
	if len(c.Policies) == 0 {
		return nil, errors.New("ab: no policies")
	}
	for _, p := range c.Policies {
		if _, err := PolicySetting(p); err != nil {
			return nil, err
		}
	}
	tr, err := eval.LoadTrace(c.Trace, c.From, c.To, c.Scale)
	if err != nil {
		return nil, err
	}
	if cut := time.Duration(float64(c.Duration) * c.Speedup); c.Duration > 0 && cut < tr.Duration() {
		// --duration shortens the slice itself: the simulator scores what
		// the real run replays.
		if tr, err = tr.Slice(0, cut); err != nil {
			return nil, fmt.Errorf("ab: --duration: %w", err)
		}
	}
	sc, err := eval.DefaultScenario(tr, c.PeakServers, c.Seed)
	if err != nil {
		return nil, err
	}
	p := &Plan{Trace: tr, Speedup: c.Speedup, Slots: 1, Queue: eval.DefaultMaxQueue}
	boot := c.BootDelay
	if wb := time.Duration(float64(boot) / c.Speedup); wb > maxWallBoot {
		boot = time.Duration(float64(maxWallBoot) * c.Speedup)
	}
	sc.Interval = time.Duration(float64(c.Decide) * c.Speedup)
	sc.Sim.Pools[0].BootDelay = boot
	sc.Sim.Pools[0].Balancer = simBalancer
	if c.Balancer == "haproxy" {
		// The daemon reads HAProxy's stats socket: the policies in the
		// simulator see its sliding averages too, not exact interval
		// p95s (NGINX's access log gives each interval's own).
		sc.Sim.Pools[0].StatsSamples = sim.HAProxyStatsSamples
	}
	sc.Sim.Pools[0].Slots = p.Slots
	sc.Sim.Pools[0].MaxQueue = p.Queue
	sc.StartAtOracle()
	p.Scenario = sc
	t := sc.Templates[0]
	p.ServiceRate, p.Target = t.ServiceRate, t.TargetP95
	p.Min, p.Max, p.Start = max(t.Min, 1), t.Max, max(sc.Sim.Pools[0].Servers, 1)
	p.RateFactor = c.Speedup
	if peak := tr.Peak() * p.RateFactor; peak > c.MaxRPS {
		return nil, fmt.Errorf("ab: the slice's peak %.3g req/s x speed-up %g is %.0f req/s on the wall clock, above %.0f: lower --scale or --speedup", tr.Peak(), c.Speedup, peak, c.MaxRPS)
	}
	p.Wall = time.Duration(float64(tr.Duration()) / c.Speedup)
	p.WallDecide = c.Decide
	p.WallBoot = time.Duration(float64(boot) / c.Speedup)
	return p, nil
}

// wallMs turns a trace duration into wall milliseconds at the rate factor.
func (p *Plan) wallServiceMs() float64 { return 1000 / (p.ServiceRate * p.RateFactor) }

// wallTarget is the target as the clients see it on the wall clock.
func (p *Plan) wallTarget() time.Duration {
	return time.Duration(float64(p.Target) / p.RateFactor)
}

// Describe says in one paragraph what the plan runs.
func (p *Plan) Describe() string {
	return fmt.Sprintf("trace %s: %v (%.3g rps mean, %.3g peak); one pool, servers %d..%d (start %d), service %.3g req/s per server, p95 target %v, boot %v, decisions every %v (trace time)\n"+
		"real run: speed-up %g (%v of wall time per policy: decisions every %v, boot %v), rate factor %.3g (peak %.0f req/s, service %.1f ms, target %v on the wall clock)",
		p.Trace.Name, p.Trace.Duration(), p.Trace.Mean(), p.Trace.Peak(), p.Min, p.Max, p.Start, p.ServiceRate, p.Target.Round(time.Millisecond),
		p.Scenario.Sim.Pools[0].BootDelay, p.Scenario.Interval,
		p.Speedup, p.Wall.Round(time.Second), p.WallDecide, p.WallBoot.Round(10*time.Millisecond), p.RateFactor,
		p.Trace.Peak()*p.RateFactor, p.wallServiceMs(), p.wallTarget().Round(time.Millisecond))
}

func (c Config) withDefaults() Config {
	if c.Scale == 0 {
		c.Scale = 1
	}
	if c.Balancer == "" {
		c.Balancer = "haproxy"
	}
	if c.PeakServers == 0 {
		c.PeakServers = 8
	}
	if c.MaxRPS == 0 {
		c.MaxRPS = 400
	}
	if c.Decide == 0 {
		c.Decide = 5 * time.Second
	}
	if c.BootDelay == 0 {
		c.BootDelay = eval.DefaultBootDelay
	}
	if c.HAProxyBin == "" {
		c.HAProxyBin = "/usr/sbin/haproxy"
	}
	if c.NGINXBin == "" {
		c.NGINXBin = "/usr/sbin/nginx"
		if p, err := exec.LookPath("nginx"); err == nil {
			c.NGINXBin = p
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// simBalancers is the simulator's model of each real balancer ab runs:
// HAProxy's `balance roundrobin` (what actuator/haproxy renders) and
// NGINX's default smooth weighted round robin (what actuator/nginx
// renders: no method directive).
var simBalancers = map[string]sim.Balancer{"haproxy": sim.HAProxyRR, "nginx": sim.SmoothWRR}

// checkBinary checks that the balancer's binary is there. NGINX is also
// run by the daemon's actuator (nginx -t), from PATH: it must be found
// there.
func (c Config) checkBinary() error {
	switch c.Balancer {
	case "haproxy":
		if _, err := os.Stat(c.HAProxyBin); err != nil {
			return fmt.Errorf("ab: haproxy binary: %w (install the haproxy package)", err)
		}
	case "nginx":
		if _, err := os.Stat(c.NGINXBin); err != nil {
			return fmt.Errorf("ab: nginx binary: %w (install the nginx package)", err)
		}
		if _, err := exec.LookPath("nginx"); err != nil {
			return fmt.Errorf("ab: the NGINX actuator runs nginx from PATH: %w (add /usr/sbin to PATH)", err)
		}
	}
	return nil
}

// PolicySetting checks a policy spec for the daemon's `policy:` setting.
func PolicySetting(spec string) (string, error) {
	name, param, err := agent.ParseSpec(spec)
	if err != nil {
		return "", fmt.Errorf("ab: policy %q: %w", spec, err)
	}
	switch name {
	case "agent", "threshold", "static":
		if !math.IsNaN(param) {
			return "", fmt.Errorf("ab: policy %q takes no parameter", spec)
		}
	case "hpa":
		if !math.IsNaN(param) && !(param > 0 && param <= 1) {
			return "", fmt.Errorf("ab: policy %q: target utilisation must be in (0, 1]", spec)
		}
	default:
		return "", fmt.Errorf("ab: policy %q: want agent, threshold, hpa@U or static", spec)
	}
	return spec, nil
}

// Run runs every policy of c on the real balancer, one after another,
// then the same scenario in the simulator, and returns one Result per
// policy in c's order. A failed real run stops the comparison with an
// error; everything it started is stopped first.
func Run(ctx context.Context, c Config) ([]Result, error) {
	c = c.withDefaults()
	plan, err := NewPlan(c)
	if err != nil {
		return nil, err
	}
	if c.SimOnly {
		simRes, err := simulate(ctx, plan, c)
		if err != nil {
			return nil, err
		}
		out := make([]Result, len(c.Policies))
		for i, pol := range c.Policies {
			out[i] = Result{Policy: pol, Sim: simRes[i]}
		}
		return out, nil
	}
	if c.Exe == "" {
		if c.Exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("ab: find the lbtune executable: %w", err)
		}
	}
	if c.Model != "" {
		// The daemon's config lives in the run's directory: the model's
		// path must not be relative to it.
		if c.Model, err = filepath.Abs(c.Model); err != nil {
			return nil, fmt.Errorf("ab: model: %w", err)
		}
	}
	if err := c.checkBinary(); err != nil {
		return nil, err
	}
	dir := c.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "lbtune-ab"); err != nil {
			return nil, fmt.Errorf("ab: %w", err)
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ab: --out: %w", err)
	}
	c.Log.Info("ab plan", "plan", plan.Describe())

	simRes, err := simulate(ctx, plan, c)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(c.Policies))
	for i, pol := range c.Policies {
		r, err := runReal(ctx, plan, c, pol, dir)
		if err != nil {
			return out, fmt.Errorf("ab: policy %s: %w", pol, err)
		}
		r.Sim = simRes[i]
		r.PerMinute = minutes(r.scored, r.sampled, r.Sim.Minutes)
		r.scored, r.sampled = nil, nil
		if c.Dir != "" {
			if err := writeMinutesFile(filepath.Join(dir, dirName(pol), "minutes.csv"), r.PerMinute); err != nil {
				return out, fmt.Errorf("ab: policy %s: %w", pol, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// simulate scores every policy on the plan's scenario in the simulator,
// guarded as the daemon guards it (the guard's times in trace time).
func simulate(ctx context.Context, plan *Plan, c Config) ([]SimResult, error) {
	specs := c.Policies
	built, err := plan.Scenario.Policies(specs, c.Trained)
	if err != nil {
		return nil, fmt.Errorf("ab: simulator policies: %w", err)
	}
	res, err := eval.EvaluateAll(ctx, plan.Scenario, specs, built, func(int) eval.EvalOptions {
		return eval.EvalOptions{Guard: agent.NewGuard(agent.DefaultGuardConfig(), nil)}
	})
	if err != nil {
		return nil, fmt.Errorf("ab: simulator: %w", err)
	}
	out := make([]SimResult, len(res))
	for i, r := range res {
		out[i] = SimResult{SLOViolationPct: r.SLOViolationPct, P95Ms: r.P95Ms, ServerHours: r.ServerHours,
			Actions: r.Actions, Reversals: r.Reversals, Failed: r.Failed}
		if len(r.Truth) > 0 {
			out[i].Minutes = r.Truth[0].Minutes
		}
	}
	return out, nil
}

// writeMinutesFile writes ms to path (WriteMinutes).
func writeMinutesFile(path string, ms []Minute) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("minutes: %w", err)
	}
	if err := WriteMinutes(f, ms); err != nil {
		f.Close()
		return fmt.Errorf("minutes %s: %w", path, err)
	}
	return f.Close()
}

// dirName turns a policy spec into a directory name (hpa@0.5 -> hpa-0.5).
func dirName(spec string) string {
	return strings.NewReplacer("@", "-", "/", "-").Replace(spec)
}
