package agent

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// LoadStates maps what a pool shows to a posterior over the load states
// (clusters) of a trained model. model.GMM behind a feature extractor
// satisfies it once wired in cmd/lbtune; tests use a fake.
type LoadStates interface {
	// K is the number of load states.
	K() int
	// Posterior writes p(state | obs) into dst (len K, reused when it has
	// the capacity) and reports whether obs is out of distribution.
	Posterior(obs Observation, dst []float64) (post []float64, ood bool, err error)
}

// Level is one server action of the agent: how much headroom to plan on
// top of the forecast. The pool is sized for the rate mean + Z x sigma of
// the forecast, so that the M/M/c response-time tail beyond the target stays
// at most Tail.
type Level struct {
	Z    float64 `json:"z"`
	Tail float64 `json:"tail"`
}

// Weight actions of the agent.
const (
	WeightKeep  = iota // leave the weights as they are
	WeightShift        // move a step of weight from the slowest to the fastest server
	WeightReset        // capacity-proportional weights
	numWeightActions
)

// rlWeightActionNames are the weight actions in words, indexed by action.
var rlWeightActionNames = [numWeightActions]string{"keep", "shift", "reset"}

// RLConfig tunes the agent. Zero fields take DefaultRLConfig's values.
type RLConfig struct {
	// Horizon is how far ahead the rate is forecast: a server's boot delay
	// plus one decision interval.
	Horizon time.Duration `json:"horizon"`
	// ScaleInWindow is the stabilisation window: the pool shrinks only to
	// the largest plan of this window (Kubernetes HPA style), so a dip does
	// not undo a scale-out it would have to redo.
	ScaleInWindow time.Duration `json:"scale_in_window"`
	// ScaleInZ is the extra headroom, in forecast sigmas, of the plans
	// scale-in looks at: the pool grows when the forecast needs more than
	// it has, and shrinks only when it has more than a plan with this much
	// more headroom needs (hysteresis, so it does not shrink and regrow).
	ScaleInZ float64 `json:"scale_in_z"`
	// Levels are the server actions, from least to most headroom.
	Levels []Level `json:"levels"`
	// BreachP95 and HoldP95 make the plan tail-aware, as fractions of the
	// p95 target. When the pool's observed p95 over the last interval is
	// above BreachP95 x target, the pool is planned at the most cautious
	// level whatever level was chosen: the forecast and the M/M/c model
	// missed, and the observed tail says so before a minute's SLO is lost.
	// While it is above HoldP95 x target the pool does not shrink; the gap
	// between the two is hysteresis, so a scale-in is not followed by a
	// breach scale-out (a reversal).
	BreachP95 float64 `json:"breach_p95"`
	HoldP95   float64 `json:"hold_p95"`
	// BreachConfidence is the one-sided confidence with which the last
	// interval's requests must show the p95 above BreachP95 x target for
	// the override to fire (TailEstimate.Over): at ~1 req/s an interval's
	// p95 rests on ~30 requests and passes 90% of the target by chance.
	// Values at or below 0.5 compare the point estimate.
	BreachConfidence float64 `json:"breach_confidence,omitempty"`
	// Alpha is the learning rate and Gamma the discount of the weight
	// Q-values. The levels are learned as options held for Block
	// intervals, valued by their mean reward per interval (no discounting:
	// the load does not depend on the action, and the plan re-sizes the
	// pool within the horizon).
	Alpha float64 `json:"alpha"`
	Gamma float64 `json:"gamma"`
	Block int     `json:"block"`
	// Epsilon is the initial exploration rate, multiplied by EpsilonDecay
	// after every level choice (block) down to EpsilonMin. Exploration only happens
	// when learning is on.
	Epsilon      float64 `json:"epsilon"`
	EpsilonDecay float64 `json:"epsilon_decay"`
	EpsilonMin   float64 `json:"epsilon_min"`
	// ImbalanceRatio is the ratio of the slowest to the fastest server's
	// latency above which the weights count as unbalanced.
	ImbalanceRatio float64 `json:"imbalance_ratio"`
	// WeightDwell is how many requests per serving server the pool must
	// have served since the agent's last weight change before it changes
	// the weights again: a change is judged only on latencies measured after
	// it. Balancers report moving averages (HAProxy's over the last 1024
	// requests), so shifting again before the sensor has caught up
	// overshoots and skews the pool.
	WeightDwell float64 `json:"weight_dwell"`
	// ShiftFraction is the share of the slowest server's weight one shift moves.
	ShiftFraction float64      `json:"shift_fraction"`
	Reward        RewardConfig `json:"reward"`
	// PoolUnits makes the load state scale-free: before the model sees a
	// pool's rates, every request rate is divided by the per-server service
	// rate (requests/s become servers' worth of work, so rate per server is
	// the utilisation), every latency is expressed in thousandths of the p95
	// target, and byte rates are dropped. A pool with a ten times faster
	// service or ten times the traffic then lands in the same load states.
	// The model must be trained in the same units (Fit does).
	PoolUnits bool `json:"pool_units,omitempty"`
	// TrendOnly forecasts with the trend alone: the seasonal profile
	// (Season) is neither fitted nor used. For comparisons (lbtune eval
	// --trend-only); the default uses the season when it fits better.
	TrendOnly bool `json:"trend_only,omitempty"`
}

// DefaultRLConfig returns the agent's defaults: a 2 min horizon (60 s boot
// + 60 s interval), a 10 min scale-in window with one sigma of extra
// headroom, four headroom levels learned as 20-interval options, the most
// cautious level when the observed p95 passes 90% of the target and no
// scale-in while it is above 75%, learning
// rate 0.05, weight discount 0.5, exploration from 0.3 decaying by 0.9997
// per block to 0.02.
func DefaultRLConfig() RLConfig {
	return RLConfig{
		Horizon:       2 * time.Minute,
		ScaleInWindow: 10 * time.Minute,
		ScaleInZ:      1,
		Levels: []Level{
			{Z: 0, Tail: 0.05}, {Z: 0.5, Tail: 0.05}, {Z: 1, Tail: 0.04}, {Z: 1.5, Tail: 0.03},
		},
		BreachP95: 0.9, HoldP95: 0.75, BreachConfidence: 0.9,
		Alpha: 0.05, Gamma: 0.5, Block: 20,
		Epsilon: 0.3, EpsilonDecay: 0.9997, EpsilonMin: 0.02,
		ImbalanceRatio: 1.25, ShiftFraction: 0.15, WeightDwell: 200,
		Reward: RewardConfig{Latency: 1, Violation: 4, Errors: 10, ServerCost: 0.05},
	}
}

// WithDefaults returns c with every zero field set to DefaultRLConfig's value.
func (c RLConfig) WithDefaults() RLConfig {
	d := DefaultRLConfig()
	if c.Horizon <= 0 {
		c.Horizon = d.Horizon
	}
	if c.ScaleInWindow <= 0 {
		c.ScaleInWindow = d.ScaleInWindow
	}
	if c.ScaleInZ <= 0 {
		c.ScaleInZ = d.ScaleInZ
	}
	if len(c.Levels) == 0 {
		c.Levels = d.Levels
	}
	if c.BreachP95 <= 0 {
		c.BreachP95 = d.BreachP95
	}
	if c.HoldP95 <= 0 {
		c.HoldP95 = d.HoldP95
	}
	if c.BreachConfidence == 0 {
		c.BreachConfidence = d.BreachConfidence
	}
	if c.Alpha <= 0 {
		c.Alpha = d.Alpha
	}
	if c.Gamma <= 0 {
		c.Gamma = d.Gamma
	}
	if c.Block <= 0 {
		c.Block = d.Block
	}
	if c.EpsilonDecay <= 0 {
		c.EpsilonDecay = d.EpsilonDecay
	}
	if c.WeightDwell <= 0 {
		c.WeightDwell = d.WeightDwell
	}
	if c.ImbalanceRatio <= 1 {
		c.ImbalanceRatio = d.ImbalanceRatio
	}
	if c.ShiftFraction <= 0 {
		c.ShiftFraction = d.ShiftFraction
	}
	if c.Reward == (RewardConfig{}) {
		c.Reward = d.Reward
	}
	return c
}

// Agent is the learning policy of one pool. Every interval it forecasts
// the arrival rate over the boot horizon, estimates the per-server service
// rate, and sizes the pool with M/M/c (Erlang-C) for the p95 target; the
// learned Q-values, linear in the load-state posterior, choose how much
// headroom to plan (a Level). Scale-out is immediate, scale-in waits for
// the largest plan of a stabilisation window. For weights it chooses,
// again by Q-value, between keeping them, shifting a step from the slowest
// to the fastest server, and resetting them to capacity-proportional.
//
// With learning on (SetLearning), it explores epsilon-greedily and updates
// its Table after every interval; the Guard still clamps every decision.
type Agent struct {
	cfg    RLConfig
	table  *PolicyTable
	states LoadStates
	rng    *rand.Rand
	learn  bool
	eps    float64

	fc    *Forecaster
	mu    float64 // estimated service rate per reference server, 1/s (0: unknown)
	plans []rlTimedPlan
	since time.Time // first plan of the scale-in window's history
	post  []float64
	ood   bool // the latest posterior came from an out-of-distribution state
	prev  *rlStep
	blk   rlBlock
	// season learns a repeating pattern of the rate; its forecast raises
	// the trend's when it fits the history better (see Season).
	season *Season
	// smooth is the exponentially smoothed posterior the greedy level
	// follows; greedy is the level it holds (-1: none yet).
	smooth []float64
	greedy int
	// rewardFn, when set (offline training in the simulator), replaces the
	// observed reward with one from the simulator's ground truth.
	rewardFn func(obs Observation) float64
	// levelHist counts the levels chosen, for reports.
	levelHist map[int]int
	// lastRaw is the latest decision as the agent made it, before any guard.
	lastRaw Decision
	// noTailOverride turns the tail-aware override off (offline training:
	// see SetTailOverride).
	noTailOverride bool
	// wchanged is set once the agent has changed the weights; wserved
	// counts the pool's requests since then.
	wchanged bool
	wserved  float64
	// wreason is the latest decision's weight change in words ("" when it
	// kept the weights), for the Switch to quote when it carries the
	// change under its fallback.
	wreason string
	// units is the scratch copy of the latest rates in pool units.
	units collector.PoolRates
}

// rlTimedPlan is a planned server count at a decision time.
type rlTimedPlan struct {
	at time.Time
	n  int
}

// rlStep is the state and actions of the previous decision, kept for the
// learning update once its reward is known.
type rlStep struct {
	level   int
	wstate  int
	waction int
}

// rlBlock is the level option being learned: the posterior it started in,
// the level held, the intervals left and the rewards so far.
type rlBlock struct {
	active bool
	post   []float64
	level  int
	left   int
	sum    float64
	n      int
	// explored marks a level chosen at random (epsilon-greedy), not greedily.
	explored bool
}

// NewAgent returns an agent using table (which it updates when learning),
// states to map observations to load states (nil: one state), and src for
// exploration. cfg zero fields take defaults; table's own Levels and
// selected scale-in hysteresis (PolicyTable.ScaleIn) win over cfg's when
// the table has them (SetScaleIn overrides them afterwards).
func NewAgent(table *PolicyTable, states LoadStates, cfg RLConfig, src rand.Source) *Agent {
	cfg = cfg.WithDefaults()
	if table == nil {
		k := 1
		if states != nil {
			k = states.K()
		}
		table = NewPolicyTable(k, cfg)
	}
	if len(table.Levels) > 0 {
		cfg.Levels = table.Levels
	}
	if si := table.ScaleIn; si != nil {
		cfg.ScaleInZ, cfg.ScaleInWindow = si.Z, si.Window
	}
	if src == nil {
		src = rand.NewPCG(1, 2)
	}
	return &Agent{cfg: cfg, table: table, states: states, rng: rand.New(src), eps: cfg.Epsilon, greedy: -1,
		fc: NewForecaster(), season: NewSeason()}
}

// LastState returns the load-state posterior and OOD flag of the latest
// decision (nil before the first). The slice is reused by the next Decide.
func (a *Agent) LastState() (post []float64, ood bool) { return a.post, a.ood }

// Overruled tells the agent its latest decision was not carried out (the
// fallback decided instead): it learns nothing from it.
func (a *Agent) Overruled() { a.prev, a.blk = nil, rlBlock{post: a.blk.post[:0]} }

// Name is "agent".
func (a *Agent) Name() string { return "agent" }

// Table returns the agent's policy table (shared, updated when learning).
func (a *Agent) Table() *PolicyTable { return a.table }

// SetLearning turns online learning (epsilon-greedy exploration and
// Q-value updates) on or off.
func (a *Agent) SetLearning(on bool) { a.learn = on }

// SetExploration sets the current exploration rate (1: every level choice
// at random, as offline training in the simulator does).
func (a *Agent) SetExploration(eps float64) { a.eps = eps }

// Exploration returns the current exploration rate (epsilon): the chance
// that the next level choice, and each weight action, is made at random
// when learning is on.
func (a *Agent) Exploration() float64 { return a.eps }

// Learning reports whether online learning is on.
func (a *Agent) Learning() bool { return a.learn }

// SetScaleIn sets the scale-in hysteresis: the scale-in plans' extra
// headroom z in forecast sigmas over the most cautious level (RLConfig.ScaleInZ;
// any value, negative down to minus that level's Z) and the stabilisation
// window (RLConfig.ScaleInWindow; <= 0 keeps the current one). For an
// operator's override and for training, which selects them.
func (a *Agent) SetScaleIn(z float64, window time.Duration) {
	a.cfg.ScaleInZ = z
	if window > 0 {
		a.cfg.ScaleInWindow = window
	}
}

// Config returns the agent's configuration, defaults filled in.
func (a *Agent) Config() RLConfig { return a.cfg }

// SetHorizon sets how far ahead the rate is forecast (RLConfig.Horizon):
// offline training moves one agent between scenarios of different boot
// delays.
func (a *Agent) SetHorizon(d time.Duration) { a.cfg.Horizon = d }

// SetTailOverride turns the tail-aware override (RLConfig.BreachP95,
// HoldP95) on, the default, or off. Offline training turns it off, so the
// levels are valued for what the plan alone does in each load state: the
// override would patch a cheap level's misses and hide the difference the
// experiment measures. It applies when the policy runs.
func (a *Agent) SetTailOverride(on bool) { a.noTailOverride = !on }

// SetRewardFunc replaces the reward the agent learns from (the
// RewardConfig.Reward of what it observes) with f; nil restores it.
// Offline training in the simulator scores intervals by the simulator's
// exact p95, which the agent online only estimates.
func (a *Agent) SetRewardFunc(f func(obs Observation) float64) { a.rewardFn = f }

// rlMeasure is what the agent reads from one observation.
type rlMeasure struct {
	rate     float64 // arrivals, requests/s
	p95Ms    float64 // pool p95 estimate (collector.PoolRates.P95Ms), ms; 0 unknown
	meanMs   float64 // pool mean latency (collector.PoolRates.MeanMs), ms; 0 unknown
	errRatio float64
	servers  int // serving + booting
}

// holdMs is the p95 (ms) above which the pool does not shrink: HoldP95 x
// target, or, when the pool's p95 is imputed from mean response times
// (HAProxy's stats socket: ln 20 x a sliding average over the last 512
// requests, no percentiles), at least 1.1 x the p95 of an idle server
// (ln 20 / mu). Such an estimate never falls below the idle p95, which at
// a target of 4 mean service times is 0.749 x target, just under the
// default 0.75: on a real HAProxy the agent then never scaled in
// (docs/RESULTS.md, "Real balancers", item 3). A source's own percentiles
// (logs, the simulator) fall below it through their sampling noise.
func (a *Agent) holdMs(obs Observation, targetMs float64) float64 {
	hold := a.cfg.HoldP95 * targetMs
	if obs.Latest.P95Imputed() && a.mu > 0 {
		hold = math.Max(hold, 1.1*collector.P95PerMean/a.mu*1000)
	}
	return hold
}

// rlMeasureObs reads the pool's rate over the decision period
// (Observation.PeriodRate) and its latency and errors from obs.Latest.
func rlMeasureObs(obs Observation) rlMeasure {
	pr := &obs.Latest
	return rlMeasure{
		rate: obs.PeriodRate(), p95Ms: pr.P95Ms(), meanMs: pr.MeanMs(), errRatio: pr.ErrorRatio(),
		servers: obs.Servers + obs.Booting,
	}
}

// rlSmoothing is the weight of the newest posterior in the smoothed one.
const rlSmoothing = 0.2

// rlSwitchMargin is the gain in mean reward per interval a greedy level
// switch needs (a few servers' cost in the default reward).
const rlSwitchMargin = 0.05

// Decide chooses the pool's server count and weights for the next interval.
func (a *Agent) Decide(ctx context.Context, obs Observation) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	m := rlMeasureObs(obs)
	if obs.Interval > 0 {
		// The rate is a count over the interval: tell the forecast, so its
		// sigma leaves out the Poisson counting noise M/M/c already prices.
		a.fc.IntervalSeconds = obs.Interval.Seconds()
	}
	a.fc.Observe(m.rate)
	if !a.cfg.TrendOnly {
		a.season.Observe(obs.Time, obs.Interval, m.rate)
	}
	a.updateServiceRate(obs, m)

	// The load state: a posterior over the model's clusters.
	post, err := a.posterior(obs)
	if err != nil {
		return Decision{}, fmt.Errorf("agent %s: %w", obs.Pool, err)
	}
	wstate := a.weightState(obs, post)

	// Learn from the interval that just ended: the weight action's
	// one-step return, and the level's block average when its block ends.
	r := a.cfg.Reward.Reward(m.errRatio, m.p95Ms, m.servers, obs.Template.TargetP95)
	if a.rewardFn != nil {
		r = a.rewardFn(obs)
	}
	if a.learn && a.prev != nil {
		a.table.updateWeight(a.prev, r, wstate, a.cfg)
	}
	if a.blk.active {
		a.blk.sum += r
		a.blk.n++
	}

	// Choose the actions. Learning holds each level for a block of
	// intervals (an option), so its effect on the pool can show; acting
	// greedily re-chooses every interval.
	// The greedy level follows a smoothed posterior (about 5 min at 30 s
	// intervals): a level flip moves the plan, and flipping back and forth
	// would make the pool shrink and regrow.
	if len(a.smooth) != len(post) {
		a.smooth = append(a.smooth[:0], post...)
	}
	for k, p := range post {
		a.smooth[k] += rlSmoothing * (p - a.smooth[k])
	}
	var level int
	explored := false
	switch {
	case !a.learn:
		// Switch level only for a clear gain: a switching cost against
		// flip-flopping between states of near-equal values.
		v := a.table.levelValues(a.smooth)
		level = rlArgmax(v)
		if a.greedy >= 0 && a.greedy < len(v) && v[level] < v[a.greedy]+rlSwitchMargin {
			level = a.greedy
		}
		a.greedy = level
	case a.blk.left > 0:
		level, explored = a.blk.level, a.blk.explored
		a.blk.left--
	default:
		if a.blk.active && a.blk.n > 0 {
			a.table.updateLevel(a.blk.post, a.blk.level, a.blk.sum/float64(a.blk.n), a.cfg)
		}
		level, explored = a.choose(a.table.levelValues(post), len(a.cfg.Levels))
		a.eps = math.Max(a.cfg.EpsilonMin, a.eps*a.cfg.EpsilonDecay)
		a.blk = rlBlock{active: true, post: append(a.blk.post[:0], post...), level: level, left: a.cfg.Block - 1, explored: explored}
	}
	if a.levelHist == nil {
		a.levelHist = map[int]int{}
	}
	a.levelHist[level]++
	waction, wexplored := a.choose(a.table.WeightQ[wstate], numWeightActions)
	dwell := a.weightDwell(obs)
	held := dwell < a.cfg.WeightDwell && waction != WeightKeep
	if held {
		// Too soon after the last change to judge it: keep (and learn it as keep).
		waction, wexplored = WeightKeep, false
	}
	a.prev = &rlStep{level: level, wstate: wstate, waction: waction}

	d := Decision{Time: obs.Time, Pool: obs.Pool, Policy: a.Name(), Metrics: map[string]float64{}}
	a.planPool(obs, m, level, &d)
	if a.cfg.TrendOnly {
		d.Reason += "; forecast trend only"
	} else {
		// The fit's reason tells the history at the last refit (up to an
		// hour ago); the history now is said after it.
		d.Reason += fmt.Sprintf("; forecast %s; %v of history now", a.season.Fit().Reason, time.Duration(a.season.Len())*a.season.Step)
	}
	before := len(d.Reason)
	a.planWeights(obs, waction, &d)
	a.wreason = strings.TrimPrefix(d.Reason[before:], "; ")
	d.Metrics["weight_dwell"] = math.Min(dwell, a.cfg.WeightDwell)
	// The weight row the values were read from, and what they prefer in it
	// (before exploration and the dwell), for the explanation (explain.go).
	// and whether that would change them (a shift needs room to move weight,
	// a reset weights that are not capacity-proportional already).
	pref := rlArgmax(a.table.WeightQ[wstate])
	probe := Decision{Metrics: map[string]float64{}}
	a.planWeights(obs, pref, &probe)
	d.Metrics["weight_unbalanced"] = float64(wstate % 2)
	d.Metrics["weight_preferred"] = float64(pref)
	d.Metrics["weight_preferred_changes"] = float64(rlBool(probe.Weights != nil))
	if d.Weights != nil {
		a.wchanged, a.wserved = true, 0
	} else if held {
		d.Reason += fmt.Sprintf("; weights held (rule %s): %.0f of %.0f requests per server since the last change", RuleWeightDwell, dwell, a.cfg.WeightDwell)
	}
	d.Metrics["rate_rps"] = m.rate
	d.Metrics["p95_ms"] = m.p95Ms
	d.Metrics["error_ratio"] = m.errRatio
	d.Metrics["state"] = float64(rlArgmax(post))
	d.Metrics["confidence"] = post[rlArgmax(post)]
	if a.learn {
		// Online learning: say which actions were chosen at random, so an
		// operator (and the decision log) can tell exploration from policy.
		d.Metrics["epsilon"] = a.eps
		if explored || wexplored {
			d.Metrics["explore"] = 1
			what := "level"
			switch {
			case explored && wexplored:
				what = "level and weights"
			case wexplored:
				what = "weights"
			}
			d.Reason = fmt.Sprintf("explore (%s at random, epsilon %.3f): %s", what, a.eps, d.Reason)
		}
	}
	a.lastRaw = d
	return d, nil
}

// posterior returns the load-state posterior of obs (one state without a model).
func (a *Agent) posterior(obs Observation) ([]float64, error) {
	if a.states == nil {
		a.post, a.ood = append(a.post[:0], 1), false
		return a.post, nil
	}
	if a.cfg.PoolUnits {
		var err error
		if a.units, err = PoolUnits(&obs.Latest, a.mu, obs.Template.TargetP95, a.units); err != nil {
			return nil, err
		}
		obs.Latest = a.units
	}
	post, ood, err := a.states.Posterior(obs, a.post)
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	a.ood = ood
	if len(post) != a.table.K {
		return nil, fmt.Errorf("load state: %d states, policy has %d", len(post), a.table.K)
	}
	a.post = post
	return post, nil
}

// updateServiceRate keeps the per-server service rate: the template's when
// known, otherwise an exponentially weighted M/M/c inversion of the
// observed mean latency.
func (a *Agent) updateServiceRate(obs Observation, m rlMeasure) {
	if obs.Template.ServiceRate > 0 {
		a.mu = obs.Template.ServiceRate
		return
	}
	if obs.Servers < 1 || m.meanMs <= 0 || m.rate <= 0 {
		return
	}
	est := fcServiceRate(m.rate, obs.Servers, m.meanMs/1000)
	if est <= 0 {
		return
	}
	if a.mu == 0 {
		a.mu = est
	} else {
		a.mu = 0.8*a.mu + 0.2*est
	}
}

// choose picks an action from its values: epsilon-greedy when learning,
// greedy otherwise; explored reports an action drawn at random.
func (a *Agent) choose(values []float64, n int) (action int, explored bool) {
	if a.learn && a.rng.Float64() < a.eps {
		return a.rng.IntN(n), true
	}
	return rlArgmax(values), false
}

// planPool sizes the pool for the forecast rate at the chosen level.
func (a *Agent) planPool(obs Observation, m rlMeasure, level int, d *Decision) {
	lv := a.cfg.Levels[level]
	steps := 1.0
	if obs.Interval > 0 {
		steps = a.cfg.Horizon.Seconds() / obs.Interval.Seconds()
	}
	mean, sigma := a.fc.Forecast(steps)
	// The seasonal forecast, when its season fits the history better than
	// the trend, raises the forecast before a recurring rise; like the
	// trend it is used upward only, so a predicted fall never shrinks the
	// pool early.
	d.Metrics["forecast_trend_rps"] = mean
	if sm, ok := a.season.Forecast(a.cfg.Horizon); ok && sm > mean && !a.cfg.TrendOnly {
		mean = sm
	}
	fit := a.season.Fit()
	d.Metrics["forecast_season_s"] = fit.Period.Seconds()
	d.Metrics["forecast_err_pct"] = fit.ErrPct
	// Tail-aware: an observed p95 near the target overrides the learned
	// level with the most cautious one (see RLConfig.BreachP95).
	targetMs := float64(obs.Template.TargetP95) / float64(time.Millisecond)
	top := a.cfg.Levels[len(a.cfg.Levels)-1]
	tail := targetMs > 0 && !a.noTailOverride
	breach := tail && m.p95Ms > a.cfg.BreachP95*targetMs
	if breach && obs.Interval > 0 {
		// Only beyond the sampling noise of the decision period's
		// requests (every scrape of it, in the daemon).
		e := WindowTail(obs.Window, obs.StepLen(), obs.Interval, a.cfg.BreachP95*targetMs)
		d.Metrics["breach_z"] = e.Z()
		breach = e.Over(a.cfg.BreachConfidence)
	}
	if breach {
		lv = top
		d.Metrics["breach"] = 1
	}
	lambda := mean + lv.Z*sigma
	d.Metrics["forecast_rps"] = mean
	d.Metrics["plan_rps"] = lambda
	d.Metrics["level"] = float64(level)
	d.Metrics["service_rate"] = a.mu
	d.Metrics["servers"] = float64(m.servers)
	target := obs.Template.TargetP95.Seconds()
	if a.mu <= 0 || target <= 0 || m.servers == 0 {
		d.Reason = fmt.Sprintf("keep %d servers (rule %s): service rate or target unknown", m.servers, RuleKeepUnknown)
		return
	}
	hi := obs.Template.Max
	if hi < 1 {
		hi = max(m.servers*2, 1)
	}
	plan := fcPlanServers(lambda, a.mu, target, lv.Tail, hi)
	if plan < obs.Template.Min {
		plan = obs.Template.Min
	}
	d.Metrics["plan_servers"] = float64(plan)
	if cur := float64(m.servers); cur > 0 {
		d.Metrics["utilisation"] = m.rate / (cur * a.mu)
	}

	// Stabilise scale-in: remember plans with ScaleInZ more headroom over
	// the window, shrink only to their maximum.
	// The scale-in plan uses the most cautious level whatever the level
	// chosen, so a switch between levels never shrinks the pool by itself.
	// With the tail override on, the scale-in plan meets the breach level
	// (BreachP95 x target), not the target itself: a pool shrunk to a size
	// planned to run just under the target would run above the breach
	// level, and the override would scale it straight back out.
	inTarget := target
	if tail {
		inTarget = a.cfg.BreachP95 * target
	}
	inPlan := max(fcPlanServers(mean+(top.Z+a.cfg.ScaleInZ)*sigma, a.mu, inTarget, top.Tail, hi), plan)
	if len(a.plans) == 0 && a.since.IsZero() {
		a.since = obs.Time
	}
	a.plans = append(a.plans, rlTimedPlan{at: obs.Time, n: inPlan})
	cut := obs.Time.Add(-a.cfg.ScaleInWindow)
	i := 0
	for i < len(a.plans) && a.plans[i].at.Before(cut) {
		i++
	}
	a.plans = a.plans[i:]
	stable := 0
	for _, p := range a.plans {
		stable = max(stable, p.n)
	}
	// What the rules below read, for the explanation (explain.go).
	seen := obs.Time.Sub(a.since)
	d.Metrics["scale_in_servers"] = float64(stable)
	d.Metrics["window_seen"] = math.Min(seen.Seconds()/a.cfg.ScaleInWindow.Seconds(), 1)
	d.Metrics["rate_trend_rps"] = a.fc.Trend()
	d.Metrics["p95_x_target"] = m.p95Ms / targetMs
	holdMs := a.holdMs(obs, targetMs)
	d.Metrics["hold_p95_ms"] = holdMs
	switch {
	case plan > m.servers && breach:
		d.Servers = plan
		d.Reason = fmt.Sprintf("scale out %d -> %d (rule %s): observed p95 %.0f ms above %.0f%% of the target %v, planning the most cautious level: forecast %.1f rps (+%.1fσ) needs %d servers at %.1f rps each",
			m.servers, plan, RuleOutBreach, m.p95Ms, 100*a.cfg.BreachP95, obs.Template.TargetP95, mean, lv.Z, plan, a.mu)
	case plan > m.servers:
		d.Servers = plan
		d.Reason = fmt.Sprintf("scale out %d -> %d (rule %s): forecast %.1f rps (+%.1fσ) needs %d servers at %.1f rps each for p95 %v",
			m.servers, plan, RuleOutForecast, mean, lv.Z, plan, a.mu, obs.Template.TargetP95)
	case stable < m.servers && tail && m.p95Ms > holdMs:
		d.Reason = fmt.Sprintf("keep %d servers (rule %s): plan %d but the observed p95 %.0f ms is above the hold level %.0f ms (%.0f%% of the target %v)",
			m.servers, RuleHoldP95, stable, m.p95Ms, holdMs, 100*holdMs/targetMs, obs.Template.TargetP95)
	case stable < m.servers && seen < a.cfg.ScaleInWindow:
		// A stabilisation window with less history than its length says
		// nothing about the load it has not seen: just started (or
		// restarted), the agent does not shrink the pool it was given.
		d.Reason = fmt.Sprintf("keep %d servers (rule %s): plan %d but only %v of the %v scale-in window observed",
			m.servers, RuleHoldWindow, stable, seen.Round(time.Second), a.cfg.ScaleInWindow)
	case stable < m.servers && a.fc.Trend() > 0:
		d.Reason = fmt.Sprintf("keep %d servers (rule %s): plan %d but the rate is rising (%+.1f rps per interval)", m.servers, RuleHoldRising, stable, a.fc.Trend())
	case stable < m.servers:
		d.Servers = stable
		d.Reason = fmt.Sprintf("scale in %d -> %d (rule %s): largest plan (%+.1fσ) of the last %v is %d servers (forecast %.1f rps)",
			m.servers, stable, RuleInWindow, a.cfg.ScaleInZ, a.cfg.ScaleInWindow, stable, mean)
	default:
		d.Reason = fmt.Sprintf("keep %d servers (rule %s): plan %d, largest plan of the last %v %d (forecast %.1f rps)",
			m.servers, RuleKeepPlan, plan, a.cfg.ScaleInWindow, stable, mean)
	}
}

// weightDwell adds the latest interval's requests to the count since the
// agent's last weight change and returns it per serving server (+Inf
// before any change). The pool's average, not the least-loaded server's:
// a server the weights starve would otherwise hold every later shift.
func (a *Agent) weightDwell(obs Observation) float64 {
	if !a.wchanged {
		return math.Inf(1)
	}
	srv := rlServing(obs)
	if len(srv) == 0 {
		return 0
	}
	secs := obs.Interval.Seconds()
	if secs <= 0 {
		secs = 1
	}
	for _, s := range srv {
		a.wserved += s.Requests * secs
	}
	return a.wserved / float64(len(srv))
}

// rlServerLatency is the latency the weight actions compare: a server's p95
// when known, else its mean, times the square root of its capacity (1 when
// unknown). Equalising this, not the raw latency, is the square-root rule
// for parallel queues (load the servers so that mu_i - lambda_i is
// proportional to sqrt(mu_i), which minimises the mean response time): a
// fast server should run with a lower latency than a slow one.
func rlServerLatency(s *collector.ServerRates, capacity map[string]float64) float64 {
	l := s.MeanLatencyMs
	if s.Gauges.P95Ms != nil && *s.Gauges.P95Ms > 0 {
		l = *s.Gauges.P95Ms
	}
	return l * math.Sqrt(rlCapOf(capacity, s.Name))
}

// The band a weight shift keeps each server in (see shareBounds): its
// headroom (service rate less its share of the requests) between
// rlSpareLess and rlSpareMore times the square-root rule's; at or above the
// pool's capacity, between rlShareFloor and rlShareCeil times its
// capacity-proportional share.
const (
	rlSpareLess  = 0.8
	rlSpareMore  = 1.25
	rlShareFloor = 0.8
	rlShareCeil  = 1.25
)

// shareBounds maps each serving server to the least and the most weight
// share a shift leaves it: the shares at which its headroom mu_i -
// lambda_i is rlSpareMore and rlSpareLess times the square-root rule's
// k sqrt(mu_i) (rlSqrtBand) at the pool's request rate, with service rates
// the template's per-server rate times each capacity (the agent's
// estimate of the average server's rate times each capacity over their
// mean, when the template has none). A band in headroom, not in share,
// narrows as the load rises: at 85% on a 1:2:4 pool it keeps each server
// within 2-4 points of its rule share, so no server is pushed to
// saturation, and leaves the latency more room at light load, where a
// wrong split costs little. Nil maps (no bounds) when the capacities or
// the service rate are unknown or the pool is idle. The latency the shift
// compares lags: HAProxy averages a server's last 1024 requests, so a
// server the weights starved still reads the queue it had minutes before,
// and one just given weight the short queue it had; shifting on it
// starved the slow server of a 1:2:4 pool to 2-3% of the requests on the
// real testbed and, with the capacities estimated and a band of 0.8-1.25
// times the rule's share, swung the weights by 30 points a step at 85%
// (docs/RESULTS.md, issue 18 section 5). With the capacities the optimum
// is known; the latency then only steers within the band around it,
// which leaves room for servers that are not M/M/1 (several slots, other
// service time distributions).
func (a *Agent) shareBounds(obs Observation, srv []*collector.ServerRates) (floor, ceil map[string]float64) {
	if obs.Capacity == nil || !(a.mu > 0) {
		return nil, nil
	}
	// The template's service rate is a reference server's, whose capacity
	// is 1; the agent's estimate without it is the pool's average server.
	ref := 1.0
	if !(obs.Template.ServiceRate > 0) {
		ref = 0
		for _, s := range srv {
			ref += rlCapOf(obs.Capacity, s.Name) / float64(len(srv))
		}
	}
	mu := make([]float64, len(srv))
	for i, s := range srv {
		mu[i] = a.mu * rlCapOf(obs.Capacity, s.Name) / ref
	}
	lambda := obs.PeriodRate()
	lo := rlSqrtBand(mu, lambda, rlSpareMore, rlShareFloor)
	hi := rlSqrtBand(mu, lambda, rlSpareLess, rlShareCeil)
	if lo == nil || hi == nil {
		return nil, nil
	}
	floor = make(map[string]float64, len(srv))
	ceil = make(map[string]float64, len(srv))
	for i, s := range srv {
		floor[s.Name], ceil[s.Name] = lo[i], hi[i]
	}
	return floor, ceil
}

// rlSqrtShares splits a request rate lambda over parallel servers of
// service rates mu by the square-root rule, the split that minimises the
// mean response time of M/M/1 servers: lambda_i = mu_i - k sqrt(mu_i),
// with k such that the lambda_i sum to lambda, and servers too slow for
// any share (sqrt(mu_i) <= k) at 0. It returns each server's share of
// lambda; capacity-proportional shares when lambda reaches the total
// capacity; nil when lambda is not positive.
func rlSqrtShares(mu []float64, lambda float64) []float64 {
	return rlSqrtBand(mu, lambda, 1, 1)
}

// rlSqrtBand is rlSqrtShares with the spare capacity k sqrt(mu_i) of each
// server scaled by spare: the shares a server would have with spare times
// the square-root rule's headroom (at least 0), as shares of lambda (they
// sum to 1 only for spare 1). At or above the total capacity, where the
// rule leaves no headroom, it returns the capacity-proportional shares
// times over.
func rlSqrtBand(mu []float64, lambda, spare, over float64) []float64 {
	if !(lambda > 0) || len(mu) == 0 {
		return nil
	}
	var total float64
	for _, m := range mu {
		total += m
	}
	shares := make([]float64, len(mu))
	if lambda >= total {
		for i, m := range mu {
			shares[i] = over * m / total
		}
		return shares
	}
	in := make([]bool, len(mu))
	for i, m := range mu {
		in[i] = m > 0
	}
	var k float64
	for {
		var sm, sq float64
		for i, m := range mu {
			if in[i] {
				sm += m
				sq += math.Sqrt(m)
			}
		}
		k = (sm - lambda) / sq
		dropped := false
		for i, m := range mu {
			if in[i] && math.Sqrt(m) <= k {
				in[i], dropped = false, true
			}
		}
		if !dropped {
			break
		}
	}
	for i, m := range mu {
		if m > 0 {
			shares[i] = math.Max(0, m-spare*k*math.Sqrt(m)) / lambda
		}
	}
	return shares
}

// rlServing lists the servers taking traffic: up, not backup, with requests.
func rlServing(obs Observation) []*collector.ServerRates {
	var out []*collector.ServerRates
	for i := range obs.Latest.Servers {
		s := &obs.Latest.Servers[i]
		if s.Serving() {
			out = append(out, s)
		}
	}
	return out
}

// weightState is the row of the weight Q-table: the most likely load state
// times two, plus one when the servers' latencies are unbalanced.
func (a *Agent) weightState(obs Observation, post []float64) int {
	s := 2 * rlArgmax(post)
	if lo, hi := rlLatencySpread(rlServing(obs), obs.Capacity); lo > 0 && hi/lo > a.cfg.ImbalanceRatio {
		s++
	}
	return s
}

// rlLatencySpread returns the lowest and highest latency among servers with traffic.
func rlLatencySpread(srv []*collector.ServerRates, capacity map[string]float64) (lo, hi float64) {
	for _, s := range srv {
		l := rlServerLatency(s, capacity)
		if s.Requests <= 0 || l <= 0 {
			continue
		}
		if lo == 0 || l < lo {
			lo = l
		}
		hi = math.Max(hi, l)
	}
	return lo, hi
}

// planWeights applies the chosen weight action.
func (a *Agent) planWeights(obs Observation, action int, d *Decision) {
	srv := rlServing(obs)
	d.Metrics["weight_action"] = float64(action)
	if len(srv) < 2 {
		return
	}
	maxW := obs.Template.MaxWeight
	if maxW <= 0 {
		maxW = 256
	}
	switch action {
	case WeightReset:
		w := rlCapacityWeights(srv, obs.Capacity, maxW)
		if !rlSameWeights(srv, w) {
			d.Weights = w
			d.Reason += fmt.Sprintf("; weights reset to capacity-proportional (rule %s)", RuleWeightReset)
		}
	case WeightShift:
		floor, ceil := a.shareBounds(obs, srv)
		total := 0
		for _, s := range srv {
			total += s.Weight
		}
		var slow, fast *collector.ServerRates
		for _, s := range srv {
			l := rlServerLatency(s, obs.Capacity)
			if s.Requests <= 0 || l <= 0 {
				continue
			}
			// A server at its floor gives no more weight away.
			if (slow == nil || l > rlServerLatency(slow, obs.Capacity)) && float64(s.Weight) > floor[s.Name]*float64(total) {
				slow = s
			}
			// A server at its ceiling takes no more weight.
			if (fast == nil || l < rlServerLatency(fast, obs.Capacity)) && (ceil == nil || float64(s.Weight) < ceil[s.Name]*float64(total)) {
				fast = s
			}
		}
		if slow == nil || fast == nil || slow == fast || slow.Weight <= 1 {
			return
		}
		// Scale current weights up first when they are too coarse to move a
		// fraction of one.
		w := make(map[string]int, len(srv))
		scale := 1
		if slow.Weight < 20 {
			scale = max(1, min(20/max(slow.Weight, 1), maxW/rlMaxWeight(srv)))
		}
		for _, s := range srv {
			w[s.Name] = s.Weight * scale
		}
		step := max(1, int(math.Round(a.cfg.ShiftFraction*float64(w[slow.Name]))))
		step = min(step, w[slow.Name]-1, maxW-w[fast.Name],
			w[slow.Name]-int(math.Ceil(floor[slow.Name]*float64(total*scale))))
		if ceil != nil {
			step = min(step, int(math.Floor(ceil[fast.Name]*float64(total*scale)))-w[fast.Name])
		}
		if step <= 0 {
			return
		}
		w[slow.Name] -= step
		w[fast.Name] += step
		d.Weights = w
		d.Reason += fmt.Sprintf("; shift weight %d from %s (%.0f ms) to %s (%.0f ms) (rule %s)",
			step, slow.Name, rlServerLatency(slow, obs.Capacity), fast.Name, rlServerLatency(fast, obs.Capacity), RuleWeightShift)
	}
}

func rlMaxWeight(srv []*collector.ServerRates) int {
	m := 1
	for _, s := range srv {
		m = max(m, s.Weight)
	}
	return m
}

// rlCapacityWeights are weights proportional to each server's capacity
// (1 when unknown), the largest mapped near 100 (or maxW when lower).
func rlCapacityWeights(srv []*collector.ServerRates, capacity map[string]float64, maxW int) map[string]int {
	top := 0.0
	for _, s := range srv {
		top = math.Max(top, rlCapOf(capacity, s.Name))
	}
	scale := float64(min(100, maxW)) / top
	w := make(map[string]int, len(srv))
	for _, s := range srv {
		w[s.Name] = max(1, int(math.Round(rlCapOf(capacity, s.Name)*scale)))
	}
	return w
}

func rlCapOf(capacity map[string]float64, name string) float64 {
	if c, ok := capacity[name]; ok && c > 0 {
		return c
	}
	return 1
}

// rlSameWeights reports whether w gives the servers the same proportions
// they have.
func rlSameWeights(srv []*collector.ServerRates, w map[string]int) bool {
	var a, b float64
	for _, s := range srv {
		a += float64(s.Weight)
		b += float64(w[s.Name])
	}
	if a == 0 || b == 0 {
		return false
	}
	for _, s := range srv {
		if math.Abs(float64(s.Weight)/a-float64(w[s.Name])/b) > 0.01 {
			return false
		}
	}
	return true
}

func rlArgmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// rlDescribeLevel says a level in words.
func rlDescribeLevel(l Level) string {
	return fmt.Sprintf("plan forecast+%.1fσ, tail %.1f%%", l.Z, 100*l.Tail)
}

// rlSortedKeys returns m's keys in order.
func rlSortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// rlFormatSorted renders m's entries in key order, each with format (its
// key, then its value), separated by spaces: "s1 0.43 s2 0.86".
func rlFormatSorted[V any](m map[string]V, format string) string {
	var b strings.Builder
	for i, n := range rlSortedKeys(m) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, format, n, m[n])
	}
	return b.String()
}

// PoolUnits returns pr in pool units (see RLConfig.PoolUnits), reusing
// dst's server slice, for a service rate mu (requests/s per server) and a
// p95 target; it fails when either is unknown.
func PoolUnits(pr *collector.PoolRates, mu float64, target time.Duration, dst collector.PoolRates) (collector.PoolRates, error) {
	if !(mu > 0) || target <= 0 {
		return dst, fmt.Errorf("load state in pool units: service rate %.3g/s or p95 target %v unknown", mu, target)
	}
	return rlPoolUnits(pr, mu, float64(target)/float64(time.Millisecond), dst), nil
}

// rlPoolUnits returns pr in pool units (see RLConfig.PoolUnits), reusing
// dst's server slice: request rates divided by mu, latencies scaled so the
// target targetMs reads 1000, byte rates zero.
func rlPoolUnits(pr *collector.PoolRates, mu, targetMs float64, dst collector.PoolRates) collector.PoolRates {
	k := 1000 / targetMs
	scale := func(p *float64) *float64 {
		if p == nil {
			return nil
		}
		v := *p * k
		return &v
	}
	srv := dst.Servers[:0]
	dst = *pr
	dst.SourceP50Ms, dst.SourceP95Ms, dst.SourceP99Ms = scale(pr.SourceP50Ms), scale(pr.SourceP95Ms), scale(pr.SourceP99Ms)
	for _, s := range pr.Servers {
		s.Requests /= mu
		// Byte rates are left out: they are a property of the application's
		// responses, not of load, and the simulator the policy trains in has
		// none, so a real pool's bytes would put every state out of
		// distribution.
		s.BytesIn, s.BytesOut = 0, 0
		s.Errors /= mu
		for i := range s.Responses {
			s.Responses[i] /= mu
		}
		s.MeanLatencyMs *= k
		s.Gauges.AvgResponseMs *= k
		s.Gauges.P50Ms, s.Gauges.P95Ms, s.Gauges.P99Ms = scale(s.Gauges.P50Ms), scale(s.Gauges.P95Ms), scale(s.Gauges.P99Ms)
		srv = append(srv, s)
	}
	dst.Servers = srv
	return dst
}

// rlPoolUnitNames maps a model feature name to its name in pool units and
// the factor that turns the stored value into that unit (latencies are
// stored in thousandths of the target and shown as multiples of it).
var rlPoolUnitNames = map[string]struct {
	name   string
	factor float64
}{
	"rate_rps":            {"load_servers", 1},
	"rate_per_server_rps": {"utilisation", 1},
	"mean_latency_ms":     {"mean_latency_x_target", 1e-3},
	"max_latency_ms":      {"max_latency_x_target", 1e-3},
	"p95_latency_ms":      {"p95_latency_x_target", 1e-3},
}

// Centroid returns a load state's centroid (by model feature name) in the
// units the policy's model was trained in: as given for a model in real
// units, renamed and rescaled for one in pool units (RLConfig.PoolUnits):
// load_servers (rate / service rate: servers' worth of work), utilisation,
// latencies as multiples of the p95 target (p95_latency_x_target). Counts,
// ratios and the (zero) byte rates keep their names.
func (c RLConfig) Centroid(centroid map[string]float64) map[string]float64 {
	if !c.PoolUnits {
		return centroid
	}
	out := make(map[string]float64, len(centroid))
	for k, v := range centroid {
		if u, ok := rlPoolUnitNames[k]; ok {
			out[u.name] = v * u.factor
			continue
		}
		out[k] = v
	}
	return out
}
