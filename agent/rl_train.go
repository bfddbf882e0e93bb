package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// Env is a world the agent can be trained and evaluated in, decision by
// decision: agent/sim's Sim satisfies it. Applier takes the decisions;
// Scrape reports the balancer's view; Advance moves time on.
type Env interface {
	Applier
	Scrape(ctx context.Context) (collector.Snapshot, error)
	Advance(to time.Duration)
	Elapsed() time.Duration
	End() time.Duration
	Booting(pool string) int
	Capacities(pool string) map[string]float64
}

// Episode is one run of a policy over an Env for one pool.
type Episode struct {
	Env  Env
	Pool string
	// Template is the pool's scaling template.
	Template Template
	// Interval is the decision interval (default 1 min).
	Interval time.Duration
	// Window is how many intervals each Observation's Window holds (default 5).
	Window int
	// Guard clamps every decision (nil: none).
	Guard DecisionGuard
	// OnDecision, when set, sees every observation and the decision applied.
	OnDecision func(obs Observation, d Decision)
}

// Run drives policy over the episode until the Env's end (or ctx ends)
// through the production Controller: every Interval it advances the Env,
// scrapes it into a SnapshotRing and ticks the controller, which derives
// the rates, asks the policy, passes the decision through the Guard and
// applies it to the Env.
func (e *Episode) Run(ctx context.Context, policy Policy) error {
	interval := e.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	win := e.Window
	if win <= 0 {
		win = 5
	}
	ring := NewSnapshotRing(win + 2)
	first, err := e.Env.Scrape(ctx)
	if err != nil {
		return fmt.Errorf("episode %s: %w", e.Pool, err)
	}
	ring.Add(first)
	rec := &rlRecordingPolicy{Policy: policy}
	cfg := ControllerConfig{Interval: interval, Window: win, Source: ring, Applier: e.Env, Guard: e.Guard,
		Pools: []PoolControl{{Name: e.Pool, Policy: rec, Template: e.Template}}}
	ctl, err := NewController(cfg)
	if err != nil {
		return fmt.Errorf("episode %s: %w", e.Pool, err)
	}
	for at := e.Env.Elapsed() + interval; at <= e.Env.End(); at += interval {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.Env.Advance(at)
		snap, err := e.Env.Scrape(ctx)
		if err != nil {
			return fmt.Errorf("episode %s at %v: %w", e.Pool, at, err)
		}
		ring.Add(snap)
		rec.called = false
		ds := ctl.Tick(ctx, snap.Time)
		if len(ds) == 1 && ds[0].Outcome == OutcomeFailed {
			return fmt.Errorf("episode %s at %v: %s", e.Pool, at, ds[0].Error)
		}
		if e.OnDecision != nil && rec.called {
			e.OnDecision(rec.obs, ds[0])
		}
	}
	return nil
}

// StateSummary describes one load state in real units, from the states the
// agent met in training where it was the most likely one.
type StateSummary struct {
	// Share is the fraction of training decisions in this state.
	Share float64 `json:"share"`
	// RateRPS, P95Ms, Utilisation and Servers are means over them.
	RateRPS     float64 `json:"rate_rps"`
	P95Ms       float64 `json:"p95_ms"`
	Utilisation float64 `json:"utilisation"`
	Servers     float64 `json:"servers"`
	n           float64
}

// Sample is one decision the agent made, in real units, for explaining the
// policy with a decision tree.
type Sample struct {
	// Features are the real-unit values named by SampleFeatures (samples
	// saved before the plan features were added have only the first five).
	Features []float64 `json:"f"`
	// Action is the server change class (see ActionClasses).
	Action int `json:"a"`
	// Weights is the weight action (WeightShift, WeightReset) when the
	// decision changed the weights, else WeightKeep.
	Weights int `json:"w,omitempty"`
	// Replayed marks a decision made on a recording (Trainer.Replay): the
	// recorded pool never carried it out, so only its weight decision
	// explains the policy; its server change is left out of the scores.
	Replayed bool `json:"r,omitempty"`
}

// SampleFeatures name the features of a Sample, in order: the pool as
// measured (rate, p95, utilisation, servers, forecast minus rate), then
// what the agent's rules read (AgentRules): the servers its forecast plan
// needs beyond the pool's (plan_gap), the same for the largest plan of
// the scale-in window (scale_in_gap), the observed p95 as a multiple of
// the target, the share of the scale-in window observed, the rate's trend
// per interval, and for the weights the load state, whether the servers'
// latencies are unbalanced, the weight action the learned values prefer
// there (0 keep, 1 shift, 2 reset), the requests per server since the
// last weight change (capped at RLConfig.WeightDwell) and whether the
// preferred action would change the weights (1) or not (0).
var SampleFeatures = []string{"rate_rps", "p95_ms", "utilisation", "servers", "trend_rps",
	"plan_gap", "scale_in_gap", "p95_x_target", "window_seen", "rate_trend_rps",
	"state", "weight_unbalanced", "weight_preferred", "weight_dwell", "weight_preferred_changes"}

// ActionClasses name the server change classes of a Sample, in order.
var ActionClasses = []string{"-2 or fewer servers", "-1 server", "keep", "+1 server", "+2..+4 servers", "+5 or more servers"}

// rlActionClass maps a change in servers to its class index.
func rlActionClass(delta int) int {
	switch {
	case delta <= -2:
		return 0
	case delta == -1:
		return 1
	case delta == 0:
		return 2
	case delta == 1:
		return 3
	case delta <= 4:
		return 4
	}
	return 5
}

// rlSampleOf builds a Sample from an observation and the agent's decision
// (before the guard: the policy's choice, not the guard's).
func rlSampleOf(obs Observation, d Decision) Sample {
	cur := obs.Servers + obs.Booting
	delta := 0
	if d.Servers != 0 {
		delta = d.Servers - cur
	}
	m := d.Metrics
	var planGap, inGap float64 // plan unknown (no service rate or target): no gap
	if p, ok := m["plan_servers"]; ok {
		planGap, inGap = p-float64(cur), m["scale_in_servers"]-float64(cur)
	}
	s := Sample{
		Features: []float64{m["rate_rps"], m["p95_ms"], m["utilisation"], float64(cur), m["forecast_rps"] - m["rate_rps"],
			planGap, inGap, m["p95_x_target"], m["window_seen"], m["rate_trend_rps"],
			m["state"], m["weight_unbalanced"], m["weight_preferred"], m["weight_dwell"], m["weight_preferred_changes"]},
		Action: rlActionClass(delta),
	}
	for i, v := range s.Features {
		s.Features[i] = rlRound(v)
	}
	if d.Weights != nil {
		s.Weights = int(m["weight_action"])
	}
	return s
}

// rlRound rounds v to 4 significant digits: the samples are stored, and
// the tree's thresholds need no more.
func rlRound(v float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	if err != nil {
		return v // NaN and infinities format and parse; nothing else fails
	}
	return r
}

// Trainer trains an agent's PolicyTable over simulated episodes.
type Trainer struct {
	// Agent is the agent being trained; its table is updated in place.
	Agent *Agent
	// Guard clamps the agent's decisions during training, as in production.
	Guard GuardConfig
	// MaxSamples bounds the decision samples kept for explanation.
	MaxSamples int
	// Samples are decision samples (every k-th decision, up to MaxSamples).
	Samples []Sample
	seen    int
}

// Train runs one episode with learning on, updating the agent's table,
// its state summaries and the samples.
func (t *Trainer) Train(ctx context.Context, ep Episode) error {
	a := t.Agent
	a.SetLearning(true)
	defer a.SetLearning(false)
	a.resetEpisode()
	ep.Guard = NewGuard(t.Guard, nil)
	inner := ep.OnDecision
	ep.OnDecision = func(obs Observation, d Decision) {
		t.observe(obs, a.lastRaw)
		if inner != nil {
			inner(obs, d)
		}
	}
	if err := ep.Run(ctx, a); err != nil {
		return err
	}
	a.table.Episodes++
	return nil
}

// Record runs one episode with learning off, the greedy policy with its
// tail-aware override as it runs in production, and keeps its decisions
// (before the guard) as samples: what Distil explains. The table and the
// state summaries are not changed.
func (t *Trainer) Record(ctx context.Context, ep Episode) error {
	a := t.Agent
	a.SetLearning(false)
	a.resetEpisode()
	a.greedy, a.smooth = -1, a.smooth[:0]
	ep.Guard = NewGuard(t.Guard, nil)
	inner := ep.OnDecision
	ep.OnDecision = func(obs Observation, d Decision) {
		if len(a.post) > 0 {
			t.keep(rlSampleOf(obs, a.lastRaw))
		}
		if inner != nil {
			inner(obs, d)
		}
	}
	return ep.Run(ctx, a)
}

// Replay runs the greedy policy (as Record) over a recording of one pool's
// snapshots and keeps its decisions as samples marked Replayed. The
// recording's pool never carried them out, so only the weight decisions
// are the policy's as it would run there: on real balancers, whose
// servers differ, where the simulator's identical servers never make the
// agent move weights.
func (t *Trainer) Replay(ctx context.Context, snaps []collector.Snapshot, pool string, tmpl Template) error {
	a := t.Agent
	a.SetLearning(false)
	a.resetEpisode()
	a.greedy, a.smooth = -1, a.smooth[:0]
	for _, obs := range rlRecordingObs(snaps, pool, tmpl) {
		if _, err := a.Decide(ctx, obs); err != nil {
			if ctx.Err() != nil {
				return err
			}
			continue // an interval the agent cannot place (no traffic): the fallback's
		}
		s := rlSampleOf(obs, a.lastRaw)
		s.Replayed = true
		t.keep(s)
	}
	return nil
}

// rlRecordingPolicy remembers the observation the controller built.
type rlRecordingPolicy struct {
	Policy
	obs    Observation
	called bool
}

func (r *rlRecordingPolicy) Decide(ctx context.Context, obs Observation) (Decision, error) {
	r.obs, r.called = obs, true
	return r.Policy.Decide(ctx, obs)
}

// observe folds one decision of the agent (before the guard) into the
// state summaries and samples.
func (t *Trainer) observe(obs Observation, raw Decision) {
	a := t.Agent
	post, _ := a.LastState()
	if len(post) == 0 {
		return
	}
	tb := a.table
	if len(tb.States) != tb.K {
		tb.States = make([]StateSummary, tb.K)
	}
	m := raw.Metrics
	s := &tb.States[rlArgmax(post)]
	s.n++
	s.RateRPS += (m["rate_rps"] - s.RateRPS) / s.n
	s.P95Ms += (m["p95_ms"] - s.P95Ms) / s.n
	s.Utilisation += (m["utilisation"] - s.Utilisation) / s.n
	s.Servers += (float64(obs.Servers+obs.Booting) - s.Servers) / s.n
	var total float64
	for i := range tb.States {
		total += tb.States[i].n
	}
	for i := range tb.States {
		tb.States[i].Share = tb.States[i].n / total
	}

	t.keep(rlSampleOf(obs, raw))
}

// keep adds a sample: every one until MaxSamples, then each replaces one
// at random (reservoir sampling) so the samples span all episodes.
func (t *Trainer) keep(smp Sample) {
	max := t.MaxSamples
	if max <= 0 {
		max = 4000
	}
	t.seen++
	if len(t.Samples) < max {
		t.Samples = append(t.Samples, smp)
	} else if j := t.Agent.rng.IntN(t.seen); j < max {
		t.Samples[j] = smp
	}
}

// ResetSamples forgets the samples kept so far (Fit keeps the training
// decisions' only until it records the greedy policy's).
func (t *Trainer) ResetSamples() { t.Samples, t.seen = nil, 0 }

// resetEpisode forgets per-episode memory (forecast, plans, the pending
// learning step) but keeps the table and the exploration rate.
func (a *Agent) resetEpisode() {
	a.fc = NewForecaster()
	a.season = NewSeason()
	a.plans = nil
	a.since = time.Time{}
	a.wchanged, a.wserved = false, 0
	a.prev = nil
	a.blk = rlBlock{}
	a.mu = 0
}

// Transition is one logged step for offline learning: the load state, the
// weight action taken, the reward that followed and the next load state.
type Transition struct {
	Post, Next   []float64
	WeightState  int
	WeightAction int
	NextWState   int
	Reward       float64
}

// ErrNoTransitions is returned by FitOffline when there is nothing to learn from.
var ErrNoTransitions = errors.New("no transitions")

// FitOffline runs fitted Q iteration on logged transitions to learn the
// weight Q-values: iters sweeps of Q(s,a) <- mean over the logged (s,a) of
// r + gamma x max_a' Q(s',a'). Entries never logged keep their values.
func (t *PolicyTable) FitOffline(tr []Transition, gamma float64, iters int) error {
	if len(tr) == 0 {
		return ErrNoTransitions
	}
	rows := len(t.WeightQ)
	for _, x := range tr {
		if x.WeightState < 0 || x.WeightState >= rows || x.NextWState < 0 || x.NextWState >= rows ||
			x.WeightAction < 0 || x.WeightAction >= numWeightActions {
			return fmt.Errorf("fit offline: transition out of range (state %d -> %d, action %d, %d rows)", x.WeightState, x.NextWState, x.WeightAction, rows)
		}
	}
	for range max(iters, 1) {
		sum := make([][numWeightActions]float64, rows)
		cnt := make([][numWeightActions]float64, rows)
		for _, x := range tr {
			next := t.WeightQ[x.NextWState]
			sum[x.WeightState][x.WeightAction] += x.Reward + gamma*next[rlArgmax(next)]
			cnt[x.WeightState][x.WeightAction]++
		}
		for s := range rows {
			for a := range numWeightActions {
				if cnt[s][a] > 0 {
					t.WeightQ[s][a] = sum[s][a] / cnt[s][a]
				}
			}
		}
	}
	t.Steps += len(tr)
	return nil
}

// TransitionsFromRecording turns a recording of one pool (consecutive
// snapshots and the weight changes scripted during it) into transitions:
// each interval's state, whether the weights changed in it (a recorded
// shift), and the reward of the next interval. Weight changes are the
// actions: an interval where some weight moved towards the server with the
// lower latency counts as "shift", any other weight change as "reset", none
// as "keep".
func TransitionsFromRecording(snaps []collector.Snapshot, pool string, states LoadStates, tmpl Template, cfg RLConfig) ([]Transition, error) {
	cfg = cfg.WithDefaults()
	rw, imbalance := cfg.Reward, cfg.ImbalanceRatio
	var units collector.PoolRates
	type step struct {
		obs  Observation
		post []float64
		ws   int
	}
	var steps []step
	for _, obs := range rlRecordingObs(snaps, pool, tmpl) {
		pr := &obs.Latest
		var err error
		post := []float64{1}
		if states != nil {
			sobs := obs
			if cfg.PoolUnits {
				// The service rate: the template's, else what the interval's
				// mean latency says (M/M/c inversion); intervals without
				// traffic cannot be placed and are skipped.
				mu := tmpl.ServiceRate
				if !(mu > 0) {
					m := rlMeasureObs(obs)
					mu = fcServiceRate(m.rate, obs.Servers, m.meanMs/1000)
				}
				if units, err = PoolUnits(pr, mu, tmpl.TargetP95, units); err != nil {
					continue
				}
				sobs.Latest = units
			}
			p, _, err := states.Posterior(sobs, nil)
			if err != nil {
				return nil, fmt.Errorf("transitions: %w", err)
			}
			post = append([]float64(nil), p...)
		}
		ws := 2 * rlArgmax(post)
		if lo, hi := rlLatencySpread(rlServing(obs), nil); lo > 0 && hi/lo > imbalance {
			ws++
		}
		steps = append(steps, step{obs: obs, post: post, ws: ws})
	}
	var out []Transition
	for i := 0; i+1 < len(steps); i++ {
		cur, next := steps[i], steps[i+1]
		m := rlMeasureObs(next.obs)
		out = append(out, Transition{
			Post: cur.post, Next: next.post, WeightState: cur.ws, NextWState: next.ws,
			WeightAction: rlWeightChange(cur.obs.Latest, next.obs.Latest),
			Reward:       rw.Reward(m.errRatio, m.p95Ms, m.servers, tmpl.TargetP95),
		})
	}
	return out, nil
}

// rlRecordingObs sorts a recording's snapshots by time and returns pool's
// observation of every interval between two of them (duplicate instants
// and intervals without the pool are skipped).
func rlRecordingObs(snaps []collector.Snapshot, pool string, tmpl Template) []Observation {
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].Time.Before(snaps[j].Time) })
	var out []Observation
	for i := 1; i < len(snaps); i++ {
		r, err := collector.Rate(&snaps[i-1], &snaps[i])
		if err != nil {
			continue // duplicate instants: skip
		}
		pr := r.Pool(pool)
		if pr == nil {
			continue
		}
		out = append(out, Observation{Time: snaps[i].Time, Pool: pool, Latest: *pr, Interval: snaps[i].Time.Sub(snaps[i-1].Time),
			Servers: pr.ServersUp(), Template: tmpl})
	}
	return out
}

// rlWeightChange classifies the weight change between two intervals' rates.
func rlWeightChange(a, b collector.PoolRates) int {
	changed, towardsFast := false, false
	var fastName string
	fastLat := math.Inf(1)
	for i := range a.Servers {
		s := &a.Servers[i]
		if l := rlServerLatency(s, nil); s.Requests > 0 && l > 0 && l < fastLat {
			fastLat, fastName = l, s.Name
		}
	}
	for i := range b.Servers {
		nb := &b.Servers[i]
		for j := range a.Servers {
			if a.Servers[j].Name == nb.Name && a.Servers[j].Weight != nb.Weight {
				changed = true
				if nb.Name == fastName && nb.Weight > a.Servers[j].Weight {
					towardsFast = true
				}
			}
		}
	}
	switch {
	case !changed:
		return WeightKeep
	case towardsFast:
		return WeightShift
	}
	return WeightReset
}
