package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// SnapshotSource gives the controller the most recent snapshots of the
// balancer. The daemon reads them from the datasets store; eval and training
// from a SnapshotRing the simulator's scrapes are appended to.
type SnapshotSource interface {
	// Recent returns up to n of the most recent snapshots, oldest first.
	Recent(ctx context.Context, n int) ([]collector.Snapshot, error)
}

// DecisionGuard checks a decision before it is applied and returns it,
// possibly changed, with every change recorded in Decision.Clamps. A guard
// that refuses a decision outright sets Outcome to "refused". *Guard
// satisfies it.
type DecisionGuard interface {
	Check(obs Observation, d Decision) Decision
}

// Recorder keeps every decision (applied or not) for the store and the API.
type Recorder interface {
	Record(ctx context.Context, d Decision) error
}

// ctlAfterSource is implemented by snapshot sources that can return only
// the snapshots newer than a time (the daemon's store reader): once a
// tick has rated the window, the next one reads and decodes the few new
// snapshots instead of the whole window again.
type ctlAfterSource interface {
	// After returns up to n of the newest snapshots strictly after t,
	// oldest first, looking back no further than Recent(ctx, n) would.
	After(ctx context.Context, t time.Time, n int) ([]collector.Snapshot, error)
}

// ctlBootCounter is implemented by appliers that know how many servers of a
// pool are ordered but not serving yet (the simulator, the fleet, AWS).
type ctlBootCounter interface {
	Booting(pool string) int
}

// ctlCapacityReporter is implemented by appliers that know each server's
// relative capacity.
type ctlCapacityReporter interface {
	Capacities(pool string) map[string]float64
}

// ctlBalanceReporter is implemented by appliers that know the balancing
// algorithm of a pool (the HAProxy runtime API's `show stat`, the NGINX
// upstreams lbtune renders). An error wrapping ErrNoBalancing means the
// pool's balancer does not say; the controller then gives no advice.
type ctlBalanceReporter interface {
	Balancing(ctx context.Context, pool string) (Balancing, error)
}

// ctlBalanceSetter is implemented by appliers that follow the balance
// advice themselves for the pools whose Balancing is Auto (NGINX upstreams
// with method auto): SetBalance renders algorithm (BalanceLeastConn or
// BalanceRoundRobin) through the actuator's validated reload.
type ctlBalanceSetter interface {
	SetBalance(ctx context.Context, pool, algorithm string) error
}

// ErrNoBalancing is wrapped by a Balancing error when the applier cannot
// tell a pool's balancing algorithm (a balancer without one, a wrapper
// over such a balancer).
var ErrNoBalancing = errors.New("balancing algorithm not known")

// PoolControl is one controlled pool: its policy (one per pool, policies
// keep state) and its template.
type PoolControl struct {
	Name     string
	Policy   Policy
	Template Template
}

// ControllerConfig wires a Controller.
type ControllerConfig struct {
	// Interval is the decision interval and the nominal snapshot interval.
	Interval time.Duration
	// Window is how many recent intervals an Observation carries (default 8).
	Window int
	// StaleAfter is the data age beyond which the controller records a
	// no-op instead of deciding (default 3 intervals).
	StaleAfter time.Duration
	// Timeout bounds each tick's I/O (reading snapshots, applying);
	// default Interval.
	Timeout time.Duration
	Pools   []PoolControl
	Source  SnapshotSource
	// Applier carries out decisions; nil or Shadow means decide only.
	Applier Applier
	// Guard checks every decision; nil means none.
	Guard DecisionGuard
	// Recorder receives every decision; nil means none.
	Recorder Recorder
	// Shadow decides and explains but changes nothing (Outcome "dry-run").
	Shadow bool
	// Now is the clock for Run (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Controller is the decision loop the daemon, eval and training share: every
// interval, per pool, it turns the latest snapshots into rates and an
// Observation, asks the pool's Policy, passes the Decision through the Guard,
// applies it (unless in shadow mode) and records it.
type Controller struct {
	cfg   ControllerConfig
	log   *slog.Logger
	pools []*controlledPool
	// rated is the time of the newest snapshot already turned into rates;
	// prev is that snapshot.
	rated time.Time
	prev  *collector.Snapshot
}

type controlledPool struct {
	PoolControl
	window  []collector.PoolRates
	lastAt  time.Time     // end of the newest interval in window
	step    time.Duration // length of the newest interval in window
	ordered int           // servers last ordered (serving + booting), 0 = unknown
	// capacity estimates the servers' capacities from the rates, for
	// appliers that report none.
	capacity *CapacityEstimator
	// capReported is set when the Applier reported the pool's capacities
	// at the last decision: the estimator is then not fed (the simulator
	// reports them; feeding it there cost every scrape of every server).
	capReported bool
	// advice is the last balance advice given ("" none): a change is
	// logged as a warning, the operator's cue on a balancer lbtune cannot
	// switch itself.
	advice string
}

// ErrNoPools is returned by NewController when no pool is configured.
var ErrNoPools = errors.New("controller has no pools")

// NewController checks cfg and returns a Controller.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("new controller: interval %v must be positive", cfg.Interval)
	}
	if len(cfg.Pools) == 0 {
		return nil, fmt.Errorf("new controller: %w", ErrNoPools)
	}
	if cfg.Source == nil {
		return nil, errors.New("new controller: no snapshot source")
	}
	if cfg.Window <= 0 {
		cfg.Window = 8
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 3 * cfg.Interval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = cfg.Interval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{cfg: cfg, log: cfg.Logger}
	for _, pc := range cfg.Pools {
		if pc.Name == "" || pc.Policy == nil {
			return nil, fmt.Errorf("new controller: pool %q needs a name and a policy", pc.Name)
		}
		c.pools = append(c.pools, &controlledPool{PoolControl: pc, window: make([]collector.PoolRates, 0, cfg.Window),
			capacity: NewCapacityEstimator(CapacityConfig{})})
	}
	return c, nil
}

// Run ticks every Interval of the wall clock until ctx ends. A failed tick
// is logged and recorded as decisions with Outcome "failed" or "noop"; it
// never ends the loop. Run returns ctx's error.
func (c *Controller) Run(ctx context.Context) error {
	tk := time.NewTicker(c.cfg.Interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
			c.Tick(ctx, c.cfg.Now())
		}
	}
}

// Tick makes one decision per pool at time now (the simulator's clock in
// eval and training, the wall clock in Run) and returns them in pool order.
func (c *Controller) Tick(ctx context.Context, now time.Time) []Decision {
	tctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	// 1. Read the latest snapshots and extend each pool's rate window.
	latest, err := c.refresh(tctx)
	out := make([]Decision, 0, len(c.pools))
	for _, p := range c.pools {
		var d Decision
		switch {
		case err != nil:
			d = c.noop(p, now, OutcomeFailed, "read snapshots: "+err.Error())
		case latest == nil || len(p.window) == 0:
			d = c.noop(p, now, OutcomeNoop, "not enough data: need two snapshots")
		default:
			d = c.decide(tctx, p, now)
		}
		// 5. Record, whatever happened.
		if c.cfg.Recorder != nil {
			if rerr := c.cfg.Recorder.Record(tctx, d); rerr != nil {
				c.log.Warn("record decision", "pool", p.Name, "err", rerr)
			}
		}
		out = append(out, d)
	}
	return out
}

// refresh reads recent snapshots and appends the rates of every interval
// newer than the last one rated to each pool's window. It returns the
// newest snapshot (nil when there is none).
func (c *Controller) refresh(ctx context.Context) (*collector.Snapshot, error) {
	var snaps []collector.Snapshot
	var err error
	if as, ok := c.cfg.Source.(ctlAfterSource); ok && c.prev != nil {
		snaps, err = as.After(ctx, c.rated, c.cfg.Window+1)
	} else {
		snaps, err = c.cfg.Source.Recent(ctx, c.cfg.Window+1)
	}
	if err != nil {
		return nil, err
	}
	for i := range snaps {
		s := &snaps[i]
		if !s.Time.After(c.rated) {
			continue
		}
		if c.prev != nil {
			r, err := collector.Rate(c.prev, s)
			if err != nil {
				return nil, fmt.Errorf("rates: %w", err)
			}
			for _, p := range c.pools {
				pr := r.Pool(p.Name)
				if pr == nil {
					continue
				}
				// The window keeps its Window-long array: the oldest
				// interval makes room (no array grows behind it).
				if len(p.window) < c.cfg.Window {
					p.window = append(p.window, *pr)
				} else {
					copy(p.window, p.window[1:])
					p.window[len(p.window)-1] = *pr
				}
				p.lastAt = s.Time
				p.step = s.Time.Sub(c.prev.Time)
				if !p.capReported {
					p.capacity.Observe(s.Time, p.step, pr)
				}
			}
		}
		snap := *s
		c.prev, c.rated = &snap, s.Time
	}
	return c.prev, nil
}

// decide runs steps 2-4 of a tick for one pool.
func (c *Controller) decide(ctx context.Context, p *controlledPool, now time.Time) Decision {
	// 2. Build the observation; never act on stale data.
	obs, estimated := c.observe(p, now)
	if obs.DataAge > c.cfg.StaleAfter {
		return c.noop(p, now, OutcomeNoop, fmt.Sprintf("stale data: latest snapshot is %v old (> %v)", obs.DataAge.Round(time.Second), c.cfg.StaleAfter))
	}
	// 3. Ask the policy, then the guard.
	d, err := p.Policy.Decide(ctx, obs)
	if err != nil {
		return c.noop(p, now, OutcomeFailed, "policy: "+err.Error())
	}
	d.Time, d.Pool = now, p.Name
	if estimated {
		d.Reason += "; capacity est " + formatCapacities(obs.Capacity)
	}
	if d.Policy == "" {
		d.Policy = p.Policy.Name()
	}
	// The balancing algorithm: one rule (AdviseBalance) for every policy,
	// checked by the guard and applied (where the applier follows it)
	// like the rest of the decision.
	bal, known := c.balancing(ctx, p)
	if known {
		d.Balance, d.BalanceReason = AdviseBalance(bal, obs.Capacity)
		if d.BalanceReason != "" {
			d.Reason += "; " + d.BalanceReason
		}
		c.noteAdvice(p, bal, d)
	}
	if c.cfg.Guard != nil {
		d = c.cfg.Guard.Check(obs, d)
	}
	// 4. Apply, unless refused, in shadow mode or without an applier.
	if d.Outcome == OutcomeRefused {
		return d
	}
	scale := d.Servers > 0 && d.Servers != obs.Servers+obs.Booting
	weights := d.Weights != nil && ctlWeightsDiffer(obs.Latest, d.Weights)
	// Only an applier that follows the advice changes the algorithm; on
	// the others (HAProxy: no runtime command for it) it is the
	// operator's to follow.
	balance := d.Balance != "" && bal.Auto
	switch {
	case !scale && !weights && !balance:
		d.Outcome = OutcomeNoop
	case c.cfg.Shadow || c.cfg.Applier == nil:
		d.Outcome = OutcomeDryRun
	default:
		d.Outcome = OutcomeApplied
		if weights {
			if err := c.cfg.Applier.SetWeights(ctx, p.Name, d.Weights); err != nil {
				d.Outcome, d.Error = OutcomeFailed, err.Error()
			}
		}
		if balance && d.Outcome == OutcomeApplied {
			if bs, ok := c.cfg.Applier.(ctlBalanceSetter); !ok {
				d.Outcome, d.Error = OutcomeFailed, "set balance "+d.Balance+": the applier reports an auto algorithm but cannot change it"
			} else if err := bs.SetBalance(ctx, p.Name, d.Balance); err != nil {
				d.Outcome, d.Error = OutcomeFailed, err.Error()
			}
		}
		if scale && d.Outcome == OutcomeApplied {
			if err := c.cfg.Applier.Scale(ctx, p.Name, d.Servers); err != nil {
				d.Outcome, d.Error = OutcomeFailed, err.Error()
			} else {
				p.ordered = d.Servers
			}
		}
		if d.Outcome == OutcomeFailed {
			c.log.Warn("apply decision", "pool", p.Name, "policy", d.Policy, "err", d.Error)
		}
	}
	return d
}

// balancing asks the Applier for pool p's balancing algorithm; known is
// false when it cannot tell (no reporter, ErrNoBalancing) or reading it
// failed (logged: the advice waits for the next tick).
func (c *Controller) balancing(ctx context.Context, p *controlledPool) (b Balancing, known bool) {
	br, ok := c.cfg.Applier.(ctlBalanceReporter)
	if !ok {
		return Balancing{}, false
	}
	b, err := br.Balancing(ctx, p.Name)
	if err != nil {
		if !errors.Is(err, ErrNoBalancing) {
			c.log.Warn("read balancing algorithm", "pool", p.Name, "err", err)
		}
		return Balancing{}, false
	}
	return b, true
}

// noteAdvice logs a change of pool p's balance advice as a warning (the
// operator's cue to follow it on HAProxy).
func (c *Controller) noteAdvice(p *controlledPool, b Balancing, d Decision) {
	if d.Balance == p.advice {
		return
	}
	switch {
	case d.Balance == "" && b.Auto:
		// The applier followed it: nothing for the operator to do.
	case d.Balance == "":
		c.log.Warn("balance advice withdrawn", "pool", p.Name, "algorithm", b.Algorithm, "was", p.advice)
	case b.Auto:
		c.log.Warn("balance advice: lbtune switches the algorithm", "pool", p.Name, "algorithm", b.Algorithm, "advice", d.Balance, "reason", d.Reason)
	default:
		c.log.Warn("balance advice: change the pool's algorithm", "pool", p.Name, "algorithm", b.Algorithm, "advice", d.Balance, "reason", d.Reason)
	}
	p.advice = d.Balance
}

// observe builds the Observation of one pool. Its data age counts from the
// newest snapshot that had the pool: a pool missing from later snapshots
// goes stale.
// The capacities are the Applier's where it reports them, else the pool's
// CapacityEstimator's (estimated reports that).
func (c *Controller) observe(p *controlledPool, now time.Time) (obs Observation, estimated bool) {
	obs = Observation{
		Time:     now,
		Pool:     p.Name,
		Latest:   p.window[len(p.window)-1],
		Window:   append([]collector.PoolRates(nil), p.window...),
		Interval: c.cfg.Interval,
		Step:     p.step,
		DataAge:  now.Sub(p.lastAt),
		Template: p.Template,
	}
	if obs.DataAge < 0 {
		obs.DataAge = 0
	}
	obs.Servers = obs.Latest.ServersUp()
	if bc, ok := c.cfg.Applier.(ctlBootCounter); ok {
		obs.Booting = bc.Booting(p.Name)
	} else if p.ordered > obs.Servers {
		obs.Booting = p.ordered - obs.Servers
	}
	if cr, ok := c.cfg.Applier.(ctlCapacityReporter); ok {
		obs.Capacity = cr.Capacities(p.Name)
	}
	p.capReported = len(obs.Capacity) > 0
	if !p.capReported {
		// The balancer does not know the servers' speeds: estimate them
		// (nil until there are enough samples).
		obs.Capacity = p.capacity.Estimates()
		estimated = obs.Capacity != nil
	}
	return obs, estimated
}

// noop is a decision that changes nothing, with its reason.
func (c *Controller) noop(p *controlledPool, now time.Time, outcome Outcome, reason string) Decision {
	if outcome == OutcomeFailed {
		c.log.Warn("controller tick", "pool", p.Name, "reason", reason)
	}
	d := Decision{Time: now, Pool: p.Name, Policy: p.Policy.Name(), Reason: reason, Outcome: outcome}
	if outcome == OutcomeFailed {
		d.Error = reason
	}
	return d
}

// ctlWeightsDiffer reports whether any weight in w differs from the pool's
// current weight for that server (a server not in the pool counts as a
// difference, so the applier reports it).
func ctlWeightsDiffer(pr collector.PoolRates, w map[string]int) bool {
	cur := make(map[string]int, len(pr.Servers))
	for _, s := range pr.Servers {
		cur[s.Name] = s.Weight
	}
	for name, v := range w {
		if c, ok := cur[name]; !ok || c != v {
			return true
		}
	}
	return false
}

// SnapshotRing keeps the most recent snapshots in memory: the
// SnapshotSource of eval and training runs, fed by the simulator's scrapes.
type SnapshotRing struct {
	buf  []collector.Snapshot
	next int
	n    int
}

// NewSnapshotRing returns a ring holding up to size snapshots (size >= 2).
func NewSnapshotRing(size int) *SnapshotRing {
	return &SnapshotRing{buf: make([]collector.Snapshot, max(size, 2))}
}

// Add appends a snapshot, evicting the oldest when full.
func (r *SnapshotRing) Add(s collector.Snapshot) {
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
}

// Recent returns up to n of the newest snapshots, oldest first.
func (r *SnapshotRing) Recent(_ context.Context, n int) ([]collector.Snapshot, error) {
	n = min(n, r.n)
	out := make([]collector.Snapshot, n)
	for i := range n {
		out[i] = r.buf[(r.next-n+i+len(r.buf))%len(r.buf)]
	}
	return out, nil
}
