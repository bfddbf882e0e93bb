package tuner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/tuner/config"
)

// seriesPoints caps the points /v1/series returns per pool; longer
// histories are thinned by taking every k-th snapshot (counters are
// cumulative, so rates over k intervals stay exact).
const seriesPoints = 720

// State is every pool's mode, limits, latest interval and last decision.
func (d *Daemon) State(ctx context.Context) (api.State, error) {
	st := api.State{Version: d.Version, Started: d.started, Now: time.Now()}
	for _, p := range d.poolList() {
		ps := api.PoolState{
			Name: p.name, Simulated: p.sim != nil, Now: p.clock(),
			Min: p.template.Min, Max: p.template.Max, TargetMs: float64(p.template.TargetP95) / float64(time.Millisecond),
			Cluster: -1,
		}
		p.recMu.Lock()
		ps.Mode, ps.Paused = p.mode, p.paused
		if p.last != nil {
			last := *p.last
			ps.LastDecision = &last
		}
		p.recMu.Unlock()
		if ld := ps.LastDecision; ld != nil {
			if c, ok := clusterOf(ld.Metrics); ok {
				ps.Cluster = int(c)
			}
			ps.FallbackActive = ld.Policy != "agent" && ld.Policy != "manual"
			if v, ok := ld.Metrics["switch_fallback"]; ok {
				ps.FallbackActive = v == 1
			}
		}
		if pt, ok := p.latestPoint(ctx); ok {
			ps.Latest = &pt
		}
		st.Pools = append(st.Pools, ps)
	}
	return st, nil
}

// Policy explains what decides each pool: the policy of its mode, whether
// the agent is trained, the learned load states and the fallback
// thresholds, and the trained policy distilled into rules.
func (d *Daemon) Policy(ctx context.Context) (api.Policy, error) {
	var out api.Policy
	clusters := []api.Cluster{}
	if d.trained != nil {
		clusters = d.trained.clusters() // the same model for every pool: summarised once
		out.Clusters = clusters
		if tree, err := d.trained.explain(); err == nil {
			out.Explanation = tree
		} else {
			out.ExplanationError = err.Error()
		}
	}
	for _, p := range d.poolList() {
		p.recMu.Lock()
		mode := p.mode
		var last agent.Decision
		if p.last != nil {
			last = *p.last
		}
		p.recMu.Unlock()
		pp := api.PoolPolicy{Pool: p.name, Policy: p.auto.Name(), Clusters: clusters, Balance: p.balance(ctx, last)}
		switch mode {
		case config.ModeManual:
			pp.Policy = "manual"
		case config.ModeFallbackOnly:
			pp.Policy = p.fallback.Name()
		}
		if sw, ok := p.auto.(*agent.Switch); ok {
			pp.Trained = sw.Agent().Table().Trained()
			if pp.Trained {
				pp.ScaleIn = scaleInOf(sw.Agent())
			}
		}
		tc := poolFallback(d.cfg, &p.cfg, p.template) // as tuner/policy.go builds it
		proportional := 0.0
		if tc.Proportional {
			proportional = 1
		}
		pp.Fallback = map[string]float64{
			"target_p95_ms":   float64(p.template.TargetP95) / float64(time.Millisecond),
			"window_s":        tc.Window.Seconds(),
			"min_breach_s":    tc.MinBreach.Seconds(),
			"min_requests":    tc.MinRequests,
			"util_high":       tc.UtilHigh,
			"util_low":        tc.UtilLow,
			"grow_ratio":      tc.GrowRatio,
			"shrink_ratio":    tc.ShrinkRatio,
			"shrink_below":    tc.ShrinkBelow,
			"reserve_servers": float64(tc.Reserve),
			"queue_high":      tc.QueueHigh,
			"queue_low":       tc.QueueLow,
			"down_cooldown_s": tc.DownCooldown.Seconds(),
			// the calm rules (issue 18): breach confidence, the breach
			// memory, proportional steps (1) or the fixed ratios (0)
			"breach_confidence": tc.BreachConfidence,
			"breach_memory_s":   tc.BreachMemory.Seconds(),
			"proportional":      proportional,
			"min_servers":       float64(p.template.Min),
			"max_servers":       float64(p.template.Max),
		}
		pp.Objective = objectiveOf(d.cfg.PoolReward(&p.cfg), p.template.TargetP95)
		out.Pools = append(out.Pools, pp)
	}
	return out, nil
}

// balance is pool p's algorithm as its balancer reports it now, with the
// advice of its last decision; nil when the balancer cannot tell.
func (p *Pool) balance(ctx context.Context, last agent.Decision) *api.PoolBalance {
	b, err := balancingOf(ctx, p.applier, p.name)
	if errors.Is(err, agent.ErrNoBalancing) {
		return nil
	}
	out := &api.PoolBalance{Algorithm: b.Algorithm, Auto: b.Auto, Advice: last.Balance, Reason: last.BalanceReason}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}

// scaleInOf is an agent's scale-in hysteresis as /v1/policy shows it: what
// it runs (the operator's window wins) and its table's selection.
func scaleInOf(a *agent.Agent) map[string]float64 {
	choice, selected := a.Table().ScaleInSetting()
	sel := 0.0
	if selected {
		sel = 1
	}
	return map[string]float64{
		"z":         a.Config().ScaleInZ,
		"window_s":  a.Config().ScaleInWindow.Seconds(),
		"selected":  sel,
		"objective": choice.Objective,
		"episodes":  float64(choice.Episodes),
	}
}

// objectiveOf is a pool's objective as /v1/policy shows it.
func objectiveOf(r agent.RewardConfig, target time.Duration) map[string]float64 {
	return map[string]float64{
		"server_hour":      r.ServerHour(),
		"violation_minute": r.ViolationMinute(),
		"target_p95_ms":    float64(target) / float64(time.Millisecond),
		"latency":          r.Latency,
		"errors":           r.Errors,
		"violation":        r.Violation,
		"server_cost":      r.ServerCost,
	}
}

// clusterOf is the load state a decision's metrics name: "state"
// from the agent, or "cluster".
func clusterOf(m map[string]float64) (float64, bool) {
	if v, ok := m["state"]; ok {
		return v, true
	}
	v, ok := m["cluster"]
	return v, ok
}

// Decisions reads recorded decisions from the store.
func (d *Daemon) Decisions(ctx context.Context, pool string, since time.Time, limit int) ([]agent.Decision, error) {
	if pool != "" {
		if _, err := d.findPool(pool); err != nil {
			return nil, err
		}
	}
	recs, err := ReadDecisions(d.store, pool, since, limit)
	if err != nil {
		return nil, err
	}
	out := make([]agent.Decision, len(recs))
	for i, r := range recs {
		out[i] = r.Decision
	}
	return out, ctx.Err()
}

// Model describes the loaded model.
func (d *Daemon) Model(context.Context) (json.RawMessage, error) {
	if d.model == nil {
		return nil, api.ErrNoModel
	}
	return d.model, nil
}

// Series is a pool's history since the given time, at most
// seriesPoints points.
func (d *Daemon) Series(ctx context.Context, pool string, since time.Time) ([]collector.PoolPoint, error) {
	p, err := d.findPool(pool)
	if err != nil {
		return nil, err
	}
	var snaps []collector.Snapshot
	err = d.store.Range(p.source, since.Add(-2*p.scrape), time.Time{}, func(s collector.Snapshot) error {
		snaps = append(snaps, s)
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("series of pool %s: %w", pool, err)
	}
	if k := (len(snaps) + seriesPoints - 1) / seriesPoints; k > 1 {
		thin := snaps[:0]
		for i := 0; i < len(snaps); i += k {
			thin = append(thin, snaps[i])
		}
		snaps = thin
	}
	return collector.PoolPoints(nil, snaps, pool), nil
}

// SetMode switches one pool, or every pool when pool is "".
func (d *Daemon) SetMode(_ context.Context, pool, mode string) error {
	if !config.ValidMode(mode) {
		return fmt.Errorf("mode %q: want auto, shadow, manual or fallback-only: %w", mode, api.ErrBadRequest)
	}
	pools := d.poolList()
	if pool != "" {
		p, err := d.findPool(pool)
		if err != nil {
			return err
		}
		pools = []*Pool{p}
	}
	for _, p := range pools {
		p.mu.Lock()
		err := p.setModeLocked(mode)
		if err == nil {
			err = p.persist()
		}
		p.mu.Unlock()
		if err != nil {
			return err
		}
		p.log.Info("mode changed", "mode", mode)
	}
	return nil
}

// Scale asks a pool in manual mode for one server more or fewer and
// returns the decision the controller made of it (after the guard).
func (d *Daemon) Scale(ctx context.Context, pool string, delta int) (agent.Decision, error) {
	p, err := d.findPool(pool)
	if err != nil {
		return agent.Decision{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.mode != config.ModeManual:
		return agent.Decision{}, fmt.Errorf("pool %s is in %s mode: switch it to manual first (lbtune mode manual): %w", pool, p.mode, api.ErrConflict)
	case p.paused:
		return agent.Decision{}, fmt.Errorf("pool %s is paused: %w", pool, api.ErrConflict)
	}
	p.manual.pending = delta
	ds := p.ctl.Tick(ctx, p.clock())
	p.manual.pending = 0
	return ds[0], nil
}

// Pause stops or resumes a pool's decisions.
func (d *Daemon) Pause(_ context.Context, pool string, paused bool) error {
	p, err := d.findPool(pool)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recMu.Lock()
	p.paused = paused
	p.recMu.Unlock()
	p.log.Info("pool paused", "paused", paused)
	return p.persist()
}

// nodeAdder registers an existing server in a balancer pool.
type nodeAdder interface {
	AddServer(ctx context.Context, pool, name, addr string, weight int) error
}

// nodeRemover drains a server and removes it from a balancer pool.
type nodeRemover interface {
	RemoveServer(ctx context.Context, pool, name string) error
}

// bootCounter reports servers ordered but not serving yet.
type bootCounter interface {
	Booting(pool string) int
}

// launcher starts new servers in a pool within its limits.
type launcher interface {
	Launch(ctx context.Context, pool string, k int) error
}

// nodeErr wraps an actuator error of a node operation: a refusal at the
// pool's limits is a conflict.
func nodeErr(what string, err error) error {
	if errors.Is(err, actuator.ErrLimit) {
		return fmt.Errorf("%s: refused at the pool's limits: %w: %w", what, err, api.ErrConflict)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// shadowRefusal is the error of an operation that would change a pool in
// shadow mode (which decides and records but changes nothing); nil
// otherwise. The caller holds p.mu.
func (p *Pool) shadowRefusal() error {
	if p.mode == config.ModeShadow {
		return fmt.Errorf("pool %s is in shadow mode: switch it to manual or auto first (lbtune mode): %w", p.name, api.ErrConflict)
	}
	return nil
}

// Node adds, removes or launches one server, within the pool's limits
// (a request beyond them is refused with api.ErrConflict). A pool in
// shadow mode refuses them all.
func (d *Daemon) Node(ctx context.Context, req api.NodeRequest) (string, error) {
	p, err := d.findPool(req.Pool)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.shadowRefusal(); err != nil {
		return "", err
	}
	switch req.Op {
	case "launch":
		if l, ok := p.applier.(launcher); ok {
			if err := l.Launch(ctx, p.name, 1); err != nil {
				return "", nodeErr(fmt.Sprintf("launch in pool %s", p.name), err)
			}
			return fmt.Sprintf("pool %s: launched 1 server", p.name), nil
		}
		// Other appliers (a simulated cluster, HAProxy standby): one
		// server more than serving + booting.
		pt, ok := p.latestPoint(ctx)
		if !ok {
			return "", fmt.Errorf("launch in pool %s: no data yet to count its servers: %w", p.name, api.ErrConflict)
		}
		n := pt.Servers + 1
		if bc, ok := p.applier.(bootCounter); ok {
			n += bc.Booting(p.name)
		}
		if n > p.template.Max {
			return "", fmt.Errorf("launch in pool %s: %d servers would exceed the template's max %d: %w", p.name, n, p.template.Max, api.ErrConflict)
		}
		if err := p.applier.Scale(ctx, p.name, n); err != nil {
			return "", fmt.Errorf("launch in pool %s: %w", p.name, err)
		}
		return fmt.Sprintf("pool %s: ordered %d servers", p.name, n), nil
	case "add":
		a, ok := p.applier.(nodeAdder)
		if !ok {
			return "", fmt.Errorf("add to pool %s: its actuator cannot register servers: %w", p.name, api.ErrConflict)
		}
		// The API checks it too; the daemon refuses an address a balancer
		// would take verbatim (e.g. "<<", a control character) whoever asks.
		if err := api.CheckAddress(req.Address); err != nil {
			return "", fmt.Errorf("add to pool %s: %w", p.name, err)
		}
		name := req.Name
		if name == "" {
			name = strings.NewReplacer(":", "_", ".", "_", "[", "", "]", "").Replace(req.Address)
		}
		if err := a.AddServer(ctx, p.name, name, req.Address, max(1, p.template.MaxWeight/2)); err != nil {
			return "", nodeErr(fmt.Sprintf("add %s to pool %s", name, p.name), err)
		}
		return fmt.Sprintf("pool %s: added %s (%s)", p.name, name, req.Address), nil
	case "rm":
		r, ok := p.applier.(nodeRemover)
		if !ok {
			return "", fmt.Errorf("remove from pool %s: its actuator cannot remove servers: %w", p.name, api.ErrConflict)
		}
		if req.Name == "" {
			return "", fmt.Errorf("remove from pool %s: name is required: %w", p.name, api.ErrBadRequest)
		}
		if err := r.RemoveServer(ctx, p.name, req.Name); err != nil {
			return "", nodeErr(fmt.Sprintf("remove %s from pool %s", req.Name, p.name), err)
		}
		return fmt.Sprintf("pool %s: drained and removed %s", p.name, req.Name), nil
	}
	return "", fmt.Errorf("node op %q: %w", req.Op, api.ErrBadRequest)
}
