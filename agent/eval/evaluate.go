package eval

import (
	"context"
	"fmt"
	"github.com/lbtune/lbtune/agent"
	"math"
	"time"

	"github.com/lbtune/lbtune/agent/sim"
)

// Scenario is everything an evaluation run needs besides the policy: the
// simulated pools and trace, each pool's template, the decision interval
// and the cost coefficients.
type Scenario struct {
	Sim sim.Config
	// Templates holds one template per pool, in Sim.Pools order.
	Templates []agent.Template
	// Interval is the decision (and scrape) interval; Window the number of
	// intervals an Observation carries.
	Interval time.Duration
	Window   int
	// C1 weighs the mean number of requests in the system and C2 the mean
	// number of powered servers in Result.Cost.
	C1, C2 float64
	// Objective prices Result.Objective, the objective the agent is
	// trained on (agent.RewardConfig.Cost); zero means the agent's default
	// (agent.DefaultRLConfig().Reward: 6 per server-hour, 8 per minute over
	// the target).
	Objective agent.RewardConfig
}

// Reward is the scenario's objective: Objective, or the agent's default
// when it is zero.
func (sc *Scenario) Reward() agent.RewardConfig {
	if sc.Objective == (agent.RewardConfig{}) {
		return agent.DefaultRLConfig().Reward
	}
	return sc.Objective
}

// Default scenario constants (lbtune eval without --config).
const (
	// DefaultPeakUtilisation is the utilisation the default scenario's
	// peak-servers run at the trace's peak rate.
	DefaultPeakUtilisation = 0.7
	// DefaultTargetFactor is the p95 target in mean service times.
	DefaultTargetFactor = 4
	// DefaultBootDelay is the default scenario's boot delay.
	DefaultBootDelay = 60 * time.Second
	// DefaultMaxQueue is the per-server queue cap of the default scenario:
	// a request routed to a server with this many waiting is dropped, as a
	// balancer's queue timeout would drop it.
	DefaultMaxQueue = 50
	// DefaultEvalInterval is the default decision interval.
	DefaultEvalInterval = 30 * time.Second
)

// DefaultScenario is the documented scenario for a bare trace: one pool
// "web" of identical single-slot servers behind least_conn, exponential
// service times with the rate μ = peak / (0.7 x peakServers), so the
// trace's peak needs peakServers servers at 70% utilisation; p95 target
// 4/μ; min 1, max 2 x peakServers servers; 60 s boot delay; 50 requests
// queue cap per server; 30 s decisions; cost c1 = c2 = 1. The pool starts
// with the oracle's t = 0 servers.
func DefaultScenario(tr *sim.Trace, peakServers int, seed uint64) (Scenario, error) {
	peak := tr.Peak()
	if !(peak > 0) {
		return Scenario{}, fmt.Errorf("default scenario for %s: trace has no positive rate", tr.Name)
	}
	if peakServers < 1 {
		return Scenario{}, fmt.Errorf("default scenario for %s: peak servers %d must be >= 1", tr.Name, peakServers)
	}
	mu := peak / (DefaultPeakUtilisation * float64(peakServers))
	target := time.Duration(DefaultTargetFactor / mu * float64(time.Second))
	sc := Scenario{
		Sim: sim.Config{Seed: seed, Trace: tr, Pools: []sim.PoolConfig{{
			Name: "web", Share: 1, Balancer: sim.LeastConn, BootDelay: DefaultBootDelay, MaxQueue: DefaultMaxQueue,
			Classes: []sim.Class{{Name: "medium", Share: 1, Service: sim.Dist{Kind: "exp", Mean: 1 / mu}}},
		}}},
		Templates: []agent.Template{{Min: 1, Max: 2 * peakServers, TargetP95: target, ServiceRate: mu}},
		Interval:  DefaultEvalInterval, Window: 8, C1: 1, C2: 1,
	}
	sc.StartAtOracle()
	return sc, nil
}

// Oracle returns the oracle for pool i of the scenario.
func (sc *Scenario) Oracle(i int) *Oracle { return sc.OracleAt(i, 0) }

// OracleAt is Oracle sized for a p95 of headroom x the target instead of
// DefaultOracleHeadroom (0: the default): eval's oracle@H, which traces the
// clairvoyant frontier of server-hours against SLO violation.
func (sc *Scenario) OracleAt(i int, headroom float64) *Oracle {
	cfg := sc.Sim.WithDefaults()
	p := cfg.Pools[i]
	t := sc.Templates[i]
	return NewOracle(OracleConfig{
		Trace: cfg.Trace, Share: p.Share, ServiceRate: p.Speed / p.MeanService(), Slots: p.Slots, SCV: p.ServiceSCV(), TargetP95: t.TargetP95,
		BootDelay: p.BootDelay, Interval: sc.Interval, Start: cfg.Start, Min: t.Min, Max: t.Max, Headroom: headroom,
	})
}

// StartAtOracle sets every pool's initial servers to the oracle's t = 0
// count, so that start-up transients do not decide a comparison.
func (sc *Scenario) StartAtOracle() {
	pools := append([]sim.PoolConfig(nil), sc.Sim.Pools...)
	sc.Sim.Pools = pools
	for i := range pools {
		pools[i].Servers = sc.Oracle(i).Need(0)
	}
}

// Result scores one policy on one scenario. JSON keys are those of
// `lbtune eval --json`.
type Result struct {
	// Policy is the spec as given (e.g. "hpa@0.5").
	Policy string `json:"policy"`
	// SLOViolationPct is the percentage of pool-minutes whose exact p95
	// exceeded the pool's target (minutes that only failed count too;
	// minutes without traffic do not count).
	SLOViolationPct float64 `json:"slo_violation_pct"`
	// MeanMs, P95Ms and P99Ms summarise every completed request.
	MeanMs float64 `json:"mean_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	// Failed counts requests dropped or lost to server failures.
	Failed uint64 `json:"failed"`
	// ServerHours integrates powered servers (booting, serving, draining).
	ServerHours float64 `json:"server_hours"`
	// Actions counts scale orders; Reversals those that undid the previous
	// order's direction within 5 minutes.
	Actions   int `json:"actions"`
	Reversals int `json:"reversals"`
	// Cost is C1 x MeanInSystem + C2 x MeanServers.
	Cost float64 `json:"cost"`
	// Objective is the scenario's objective over the run (Scenario.Reward,
	// the one the agent learns): agent.RewardConfig.Cost of every scored
	// pool-minute, with its exact p95, error ratio and mean powered servers,
	// summed, in the prices' unit. ObjectiveServers is the servers' part
	// (price of a server-hour x server-hours of the scored minutes), the
	// rest prices the minutes over the target, their latency and errors.
	Objective        float64 `json:"objective"`
	ObjectiveServers float64 `json:"objective_servers"`
	MeanInSystem     float64 `json:"mean_in_system"`
	MeanServers      float64 `json:"mean_servers"`
	// Requests counts completed requests; Minutes the pool-minutes scored.
	Requests uint64 `json:"requests"`
	Minutes  int    `json:"minutes"`
	// Decisions counts controller decisions by outcome.
	Decisions map[string]int `json:"decisions"`
	// Truth is the simulator's ground truth per pool at the end (its
	// per-minute detail for comparisons, e.g. lbtune ab's minutes.csv);
	// not part of the JSON.
	Truth []sim.PoolTruth `json:"-"`
}

// EvalOptions are the optional parts of an evaluation run.
type EvalOptions struct {
	// Guard checks every decision; nil runs the policies unguarded, as the
	// baselines are defined.
	Guard agent.DecisionGuard
	// Recorder receives every decision.
	Recorder agent.Recorder
	// Progress is called after every interval with the simulated time done.
	Progress func(done time.Duration)
}

// Evaluate runs the scenario with one policy per pool (in Sim.Pools order)
// through the production Controller against the simulator, and scores it.
// spec names the policy in the result.
func Evaluate(ctx context.Context, sc Scenario, spec string, policies []agent.Policy, opts EvalOptions) (Result, error) {
	if len(policies) != len(sc.Sim.Pools) || len(sc.Templates) != len(sc.Sim.Pools) {
		return Result{}, fmt.Errorf("evaluate %s: %d policies and %d templates for %d pools", spec, len(policies), len(sc.Templates), len(sc.Sim.Pools))
	}
	s, err := sim.New(sc.Sim)
	if err != nil {
		return Result{}, fmt.Errorf("evaluate %s: %w", spec, err)
	}
	window := max(sc.Window, 1)
	ring := agent.NewSnapshotRing(window + 1)
	pools := make([]agent.PoolControl, len(policies))
	for i, p := range policies {
		pools[i] = agent.PoolControl{Name: sc.Sim.Pools[i].Name, Policy: p, Template: sc.Templates[i]}
	}
	ctrl, err := agent.NewController(agent.ControllerConfig{
		Interval: sc.Interval, Window: window, Pools: pools, Source: ring, Applier: s,
		Guard: opts.Guard, Recorder: opts.Recorder, Now: s.Now,
	})
	if err != nil {
		return Result{}, fmt.Errorf("evaluate %s: %w", spec, err)
	}
	res := Result{Policy: spec, Decisions: map[string]int{}}
	snap, err := s.Scrape(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("evaluate %s: %w", spec, err)
	}
	ring.Add(snap)
	end := s.End()
	for t := sc.Interval; t <= end; t += sc.Interval {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("evaluate %s at %v: %w", spec, t, err)
		}
		s.Advance(t)
		snap, err := s.Scrape(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("evaluate %s: %w", spec, err)
		}
		ring.Add(snap)
		for _, d := range ctrl.Tick(ctx, s.Now()) {
			res.Decisions[string(d.Outcome)]++
		}
		if opts.Progress != nil {
			opts.Progress(sc.Interval)
		}
	}
	s.Advance(end)
	score(&res, sc, s)
	return res, nil
}

// score fills res from the simulator's ground truth.
func score(res *Result, sc Scenario, s *sim.Sim) {
	secs := s.Elapsed().Seconds()
	var violated int
	obj := sc.Reward()
	res.Truth = s.Truth()
	for i, pt := range res.Truth {
		target := sc.Templates[i].TargetP95
		targetMs := float64(target) / float64(time.Millisecond)
		for _, m := range pt.Minutes {
			// The objective of the minute: idle minutes pay their servers.
			servers := m.ServerSeconds / time.Minute.Seconds()
			p95, errRatio := m.P95Ms, 0.0
			if n := m.Requests + m.Failed; n > 0 {
				errRatio = float64(m.Failed) / float64(n)
			}
			if m.Requests == 0 && m.Failed > 0 {
				p95 = math.Inf(1) // nothing completed
			}
			res.Objective += obj.Cost(errRatio, p95, servers, target, time.Minute)
			res.ObjectiveServers += obj.Cost(0, 0, servers, 0, time.Minute)
			if m.Requests == 0 && m.Failed == 0 {
				continue
			}
			res.Minutes++
			if m.Requests == 0 || (targetMs > 0 && m.P95Ms > targetMs) {
				violated++
			}
		}
		res.Failed += pt.Failed + pt.Dropped
		res.Requests += pt.Completed
		res.ServerHours += pt.ServerSeconds / 3600
		res.Actions += pt.Actions
		res.Reversals += pt.Reversals
		if secs > 0 {
			res.MeanInSystem += pt.SojournSeconds / secs
			res.MeanServers += pt.ServerSeconds / secs
		}
	}
	if res.Minutes > 0 {
		res.SLOViolationPct = 100 * float64(violated) / float64(res.Minutes)
	}
	res.MeanMs, _, res.P95Ms, res.P99Ms = s.Overall()
	res.Cost = sc.C1*res.MeanInSystem + sc.C2*res.MeanServers
	for _, v := range []*float64{&res.SLOViolationPct, &res.MeanMs, &res.P95Ms, &res.P99Ms, &res.ServerHours, &res.Cost, &res.Objective, &res.ObjectiveServers, &res.MeanInSystem, &res.MeanServers} {
		*v = math.Round(*v*1000) / 1000
	}
}
