package tuner

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner/config"
)

// Pool is one tuned pool: its decision loop, mode and history. Its
// controller records every decision through Record.
type Pool struct {
	d        *Daemon
	name     string
	cfg      config.Pool
	template agent.Template
	// source is the Snapshot.Source its snapshots are stored under.
	source string
	// applied reports the weights its NGINX actuator applied (nil for
	// balancers that report weights themselves): see recentSnapshots.
	applied func(pool string) map[string]int
	// clock is the pool's time: the wall clock, or a simulated cluster's.
	clock func() time.Time
	// period is the wall-clock time between decisions.
	period time.Duration
	// scrape is the snapshot interval in the pool's time.
	scrape  time.Duration
	applier agent.Applier
	sim     *sim.Live // nil for a real pool
	// loop is a simulated pool's collector loop.
	loop *collector.Loop
	// stop ends the pool's goroutines (set by startPool).
	stop  context.CancelFunc
	guard *agent.Guard
	// auto is the policy of auto and shadow mode, fallback the threshold
	// policy of fallback-only mode, manual the operator's +1/-1.
	auto, fallback agent.Policy
	manual         *manualPolicy
	log            *slog.Logger

	mu  sync.Mutex // serialises ticks, mode changes and manual scaling
	ctl *agent.Controller
	// src reads the pool's snapshots for its controllers (one across mode
	// changes) and keeps the newest two for Record's reward.
	src *recentSnapshots
	// learner is the pool's online learning; nil when off.
	learner *learner
	// templateSpec is the YAML of a pool started by `template up`.
	templateSpec string

	// recMu guards what Record writes and the API reads; mode and paused
	// are written holding mu and recMu, so either lock reads them.
	recMu   sync.Mutex
	mode    string
	paused  bool
	seq     uint64
	last    *agent.Decision
	servers int            // last server count applied
	weights map[string]int // last weights applied
	// charge is who decides and why, for /metrics (metrics.go); decided
	// is set (holding mu) when the policy decided during a tick.
	charge  poolCharge
	decided bool
}

var _ agent.Recorder = (*Pool)(nil)

// setModeLocked switches the pool's mode and rebuilds its controller (the new
// controller rebuilds its rate window from the store on its first tick).
// The caller holds p.mu.
func (p *Pool) setModeLocked(mode string) error {
	if !config.ValidMode(mode) {
		return fmt.Errorf("mode %q: want auto, shadow, manual or fallback-only: %w", mode, api.ErrBadRequest)
	}
	policy, guard := p.auto, p.guard
	switch mode {
	case config.ModeManual:
		// The operator's +1/-1 is deliberate: no spike hold or cooldown,
		// but still the template's limits, one step, and fresh data.
		policy = p.manual
		guard = agent.NewGuard(agent.GuardConfig{MaxStepUp: 1, MaxStepDown: 1, StaleAfter: agent.DefaultGuardConfig().StaleAfter}, p.clock)
	case config.ModeFallbackOnly:
		policy = p.fallback
	}
	// A 60 s window of scrape intervals for the fallback's sliding window.
	window := max(8, int(math.Ceil(float64(time.Minute)/float64(p.scrape)))+1)
	ctl, err := agent.NewController(agent.ControllerConfig{
		Interval:   p.d.cfg.Intervals.Decide,
		Window:     window,
		StaleAfter: 3 * max(p.d.cfg.Intervals.Decide, p.scrape),
		Timeout:    p.tickTimeout(),
		Pools:      []agent.PoolControl{{Name: p.name, Policy: timedPolicy{Policy: policy, p: p}, Template: p.template}},
		Source:     p.snapshots(),
		Applier:    timed(p.applier, p.d.metrics, p.name, p.actuatorName()),
		Guard:      guard,
		Recorder:   p,
		Shadow:     mode == config.ModeShadow,
		Now:        p.clock,
		// The daemon's logger, not the pool's: the controller names the
		// pool in its own lines (it can run several), and p.log's pool
		// attribute made them read "pool=web pool=web".
		Logger: p.d.log,
	})
	if err != nil {
		return fmt.Errorf("pool %s: %w", p.name, err)
	}
	p.ctl = ctl
	p.learner.setMode(mode)
	p.recMu.Lock()
	p.mode = mode
	p.recMu.Unlock()
	return nil
}

// tickTimeout bounds one tick, actuation included: long enough for a drain
// (30 s) or a local server's start, and for a cloud instance's boot (the
// AWS provider waits up to 10 minutes). A tick in progress delays the next.
func (p *Pool) tickTimeout() time.Duration {
	if a := p.d.cfg.Actuator(p.cfg.Actuator); a != nil && a.AWS != nil {
		return 15 * time.Minute
	}
	return max(p.period, time.Minute)
}

// run ticks the pool's controller every period until ctx ends. Ticks are
// offset per pool so several pools do not fire in lockstep.
func (p *Pool) run(ctx context.Context) error {
	if p.period <= 0 { // config.Validate keeps it positive: never divide by it otherwise
		p.log.Error("pool not run: decision period is not positive", "period", p.period)
		return nil
	}
	h := fnv.New32a()
	h.Write([]byte(p.name))
	offset := time.Duration(h.Sum32()) % p.period
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(offset):
	}
	tk := time.NewTicker(p.period)
	defer tk.Stop()
	for {
		p.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
	}
}

// tick makes one decision unless the pool is paused.
func (p *Pool) tick(ctx context.Context) []agent.Decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused || ctx.Err() != nil {
		return nil
	}
	start := time.Now()
	now := p.clock()
	decs := p.ctl.Tick(ctx, now)
	p.learnAfterTick(now)
	p.d.metrics.DecisionLoop.Observe(time.Since(start).Seconds())
	return decs
}

// Record stores a decision with the next id, its reward, updates the
// metrics and persists the pool's state (agent.Recorder).
func (p *Pool) Record(ctx context.Context, dec agent.Decision) error {
	p.recMu.Lock()
	defer p.recMu.Unlock()
	p.seq++
	if dec.Outcome == agent.OutcomeApplied {
		if dec.Servers > 0 {
			p.servers = dec.Servers
		}
		if dec.Weights != nil {
			p.weights = dec.Weights
		}
	}
	p.last = &dec
	d := p.d
	d.metrics.ObserveDecision(dec)
	if v, ok := clusterOf(dec.Metrics); ok {
		d.metrics.Cluster.WithLabelValues(p.name).Set(v)
	}
	fb := 0.0
	if dec.Policy != "agent" && dec.Policy != "manual" {
		fb = 1
	}
	if v, ok := dec.Metrics["switch_fallback"]; ok {
		fb = v
	}
	d.metrics.FallbackActive.WithLabelValues(p.name).Set(fb)
	d.metrics.ObserveBalance(p.name, dec)
	p.noteChargeLocked(dec)

	// The state (with this decision's id), the decision and its reward go
	// in one transaction: all of them or none, so a stored state's id is
	// always its last stored decision's.
	state, err := json.Marshal(p.stateLocked())
	if err != nil {
		return fmt.Errorf("encode state of pool %s: %w", p.name, err)
	}
	b, err := json.Marshal(Record{Seq: p.seq, Decision: dec})
	if err != nil {
		return fmt.Errorf("encode decision: %w", err)
	}
	var reward []byte
	if pt, ok := p.latestPoint(ctx); ok {
		// The one reward (agent.RewardConfig.Reward), with the pool's
		// objective the agent learns from, over the one pool p95 estimate.
		r := d.cfg.PoolReward(&p.cfg).Reward(pt.ErrorRatio, pt.P95Ms, pt.Servers, p.template.TargetP95)
		d.metrics.Reward.WithLabelValues(p.name).Set(r)
		d.metrics.Servers.WithLabelValues(p.name).Set(float64(pt.Servers))
		reward, _ = json.Marshal(RewardRecord{Pool: p.name, Seq: p.seq, Reward: r})
	}
	// Queued behind the tick (recordWriter): the tick does not wait for
	// the commit; a record the store refuses is logged and counted there.
	seq := p.seq
	return d.records.submit(ctx, recordJob{pool: p.name, seq: seq, what: "record decision", fn: func(w *datasets.TxWriter) error {
		if err := w.Put(datasets.BucketMeta, poolStateKey(p.name), state); err != nil {
			return fmt.Errorf("save state of pool %s: %w", p.name, err)
		}
		if err := w.AppendRecord(datasets.BucketDecisions, dec.Time, b); err != nil {
			return fmt.Errorf("store decision %d of pool %s: %w", seq, p.name, err)
		}
		if reward != nil {
			if err := w.AppendRecord(datasets.BucketRewards, dec.Time, reward); err != nil {
				return fmt.Errorf("store reward of pool %s: %w", p.name, err)
			}
		}
		return nil
	}}, false)
}

// stateLocked is the pool's persistent state; the caller holds recMu.
func (p *Pool) stateLocked() PoolState {
	st := PoolState{Mode: p.mode, Paused: p.paused, Seq: p.seq, Servers: p.servers, Weights: p.weights, Template: p.templateSpec}
	if p.sim != nil {
		st.SimStart, st.SimElapsed = p.sim.Start(), p.sim.Elapsed()
	}
	return st
}

// persist saves the pool's state now (after a mode or pause change),
// through the record queue so that no state queued before it is written
// after it, and waits until it is stored.
func (p *Pool) persist() error {
	p.recMu.Lock()
	defer p.recMu.Unlock()
	b, err := json.Marshal(p.stateLocked())
	if err != nil {
		return fmt.Errorf("encode state of pool %s: %w", p.name, err)
	}
	return p.d.records.submit(context.Background(), recordJob{pool: p.name, seq: p.seq, what: "save pool state", fn: func(w *datasets.TxWriter) error {
		if err := w.Put(datasets.BucketMeta, poolStateKey(p.name), b); err != nil {
			return fmt.Errorf("save state of pool %s: %w", p.name, err)
		}
		return nil
	}}, true)
}

// snapshots is the pool's snapshot reader, made on first use.
func (p *Pool) snapshots() *recentSnapshots {
	if p.src == nil {
		p.src = &recentSnapshots{store: p.d.store, source: p.source, scrape: p.scrape, clock: p.clock, pool: p.name, applied: p.applied}
	}
	return p.src
}

// latestPoint is the pool's most recent interval: from the two newest
// snapshots the controller read this tick, else from the store.
func (p *Pool) latestPoint(ctx context.Context) (collector.PoolPoint, bool) {
	src := p.snapshots()
	snaps := src.newest()
	if len(snaps) < 2 {
		var err error
		if snaps, err = src.Recent(ctx, 2); err != nil || len(snaps) < 2 {
			return collector.PoolPoint{}, false
		}
	}
	pts := collector.PoolPoints(nil, snaps, p.name)
	if len(pts) == 0 {
		return collector.PoolPoint{}, false
	}
	return pts[len(pts)-1], true
}

// recentSnapshots reads a source's latest snapshots from the store: the
// controller's agent.SnapshotSource. The collector loop writes them; the
// two loops meet only here.
type recentSnapshots struct {
	store  *datasets.Store
	source string
	scrape time.Duration
	clock  func() time.Time
	// pool and applied fill in the weights a source cannot see: the NGINX
	// access log reports every weight as 0, but the NGINX actuator knows
	// the weights it applied (by server address). nil: nothing to fill.
	pool    string
	applied func(pool string) map[string]int

	mu   sync.Mutex
	last []collector.Snapshot // the newest two snapshots returned, oldest first
}

// newest returns the newest two snapshots After or Recent returned, or
// nil when they are older than Recent(ctx, 2) would look back.
func (r *recentSnapshots) newest() []collector.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.last) < 2 || r.last[1].Time.Before(r.clock().Add(-5*r.scrape)) {
		return nil
	}
	return slices.Clone(r.last)
}

// Recent returns up to n of the newest snapshots, oldest first, looking
// back n+3 scrape intervals (older data would be stale anyway).
func (r *recentSnapshots) Recent(ctx context.Context, n int) ([]collector.Snapshot, error) {
	return r.After(ctx, time.Time{}, n)
}

// After returns up to n of the newest snapshots strictly after t (zero:
// any), oldest first, looking back n+3 scrape intervals as Recent does:
// the controller's next tick reads only what the collector wrote since.
func (r *recentSnapshots) After(ctx context.Context, t time.Time, n int) ([]collector.Snapshot, error) {
	from := r.clock().Add(-time.Duration(n+3) * r.scrape)
	if !t.IsZero() && !from.After(t) {
		from = t.Add(time.Nanosecond) // Range's from is inclusive; keys are in ns
	}
	out := make([]collector.Snapshot, 0, min(n+3, 16))
	err := r.store.Range(r.source, from, time.Time{}, func(s collector.Snapshot) error {
		out = append(out, s)
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("recent snapshots of %s: %w", r.source, err)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	r.fillMembers(out)
	r.fillWeights(out)
	r.mu.Lock()
	if len(out) >= 2 {
		r.last = append(r.last[:0], out[len(out)-2:]...)
	} else if len(out) == 1 {
		r.last = append(r.last, out[0])
		if len(r.last) > 2 {
			r.last = append(r.last[:0], r.last[len(r.last)-2:]...)
		}
	}
	r.mu.Unlock()
	return out, nil
}

// fillMembers makes the servers of r.pool that serve in a snapshot from a
// source blind to membership (the access log: every weight 0) the ones the
// NGINX actuator has in the upstream, not marked down. The log only knows
// the servers it has seen a request for, ever since it opened: a server
// that left the upstream (scale-in) would count as serving for good, and
// one that joined but has had no request yet (a warm-up before any load,
// a pool that scaled up in a lull) not at all. So a server the log lists
// that is not in the upstream is taken as in maintenance (its requests
// still count), and one in the upstream that the log has not seen is
// added with no request yet (the pool too, if the log has no line for
// it). A source that reports weights (vts) reports membership too and is
// left alone.
func (r *recentSnapshots) fillMembers(snaps []collector.Snapshot) {
	if r.applied == nil {
		return
	}
	w := r.applied(r.pool)
	if w == nil { // not a pool of this NGINX
		return
	}
	for i := range snaps {
		pl := snaps[i].Pool(r.pool)
		if pl == nil {
			snaps[i].Pools = append(snaps[i].Pools, collector.Pool{Name: r.pool})
			pl = &snaps[i].Pools[len(snaps[i].Pools)-1]
		}
		if slices.ContainsFunc(pl.Servers, func(s collector.Server) bool { return s.Weight > 0 }) {
			return // the source sees weights, hence membership
		}
		seen := make(map[string]bool, len(pl.Servers))
		for j := range pl.Servers {
			s := &pl.Servers[j]
			seen[s.Address] = true
			if _, ok := w[s.Address]; !ok && s.State == collector.StateUp {
				s.State = collector.StateMaint
			}
		}
		addrs := make([]string, 0, len(w))
		for a := range w {
			if !seen[a] {
				addrs = append(addrs, a)
			}
		}
		slices.Sort(addrs)
		for _, a := range addrs {
			pl.Servers = append(pl.Servers, collector.Server{Name: a, Address: a, State: collector.StateUp})
		}
	}
}

// fillWeights sets each server of r.pool that the source reports with no
// weight to the weight the actuator applied to it, so the agent's weight
// action sees (and moves) the real weights.
func (r *recentSnapshots) fillWeights(snaps []collector.Snapshot) {
	if r.applied == nil {
		return
	}
	w := r.applied(r.pool)
	if len(w) == 0 {
		return
	}
	for i := range snaps {
		pl := snaps[i].Pool(r.pool)
		if pl == nil {
			continue
		}
		for j := range pl.Servers {
			s := &pl.Servers[j]
			if s.Weight > 0 {
				continue
			}
			if v, ok := w[s.Address]; ok {
				s.Weight = v
			} else if v, ok := w[s.Name]; ok {
				s.Weight = v
			}
		}
	}
}

// manualPolicy is the policy of manual mode: it changes nothing until an
// operator asks for +1 or -1, then asks for one server more or fewer than
// serving + booting. Only the pool's tick (under its lock) touches pending.
type manualPolicy struct {
	pending int
}

// Name is "manual".
func (m *manualPolicy) Name() string { return "manual" }

// Decide turns a pending operator request into a decision.
func (m *manualPolicy) Decide(_ context.Context, obs agent.Observation) (agent.Decision, error) {
	cur := obs.Servers + obs.Booting
	metrics := map[string]float64{"servers": float64(obs.Servers), "booting": float64(obs.Booting)}
	if m.pending == 0 {
		return agent.Decision{Reason: "manual mode: no operator request", Metrics: metrics}, nil
	}
	delta := m.pending
	m.pending = 0
	return agent.Decision{Servers: max(cur+delta, 1), Metrics: metrics,
		Reason: fmt.Sprintf("operator asked %+d: %d -> %d servers", delta, cur, max(cur+delta, 1))}, nil
}
