package tuner

import (
	"context"
	"errors"
	"maps"
	"net"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/tuner/config"
)

// poolCharge is who decides a pool and why, as the pool's decisions tell
// it, for /metrics (api.PoolStatus). Record updates it, holding recMu
// (and the pool's mu, so the policy's state can be read).
type poolCharge struct {
	// policy made the last decision a policy made; reason is why a
	// fallback is in charge (api.FallbackNone when none is).
	policy, reason string
	// desired is the servers the latest decision that asked for a size
	// asked for (0: none yet).
	desired int
	// stateKnown, ood and confidence are the agent's latest load state.
	stateKnown bool
	ood        bool
	confidence float64
	// table names the pool's policy table: name, creation and updates.
	table         string
	tableCreated  time.Time
	tableUpdates  int
	switchCounted map[string]int // the switch's counts already exported
}

// timedPolicy times a pool's policy into the decision duration histogram
// and marks that the policy decided this tick (so Record knows the
// decision says who is in charge). The controller calls it holding the
// pool's mu.
type timedPolicy struct {
	agent.Policy
	p *Pool
}

// Decide times the policy's Decide.
func (t timedPolicy) Decide(ctx context.Context, obs agent.Observation) (agent.Decision, error) {
	start := time.Now()
	d, err := t.Policy.Decide(ctx, obs)
	t.p.d.metrics.DecisionDuration.WithLabelValues(t.p.name).Observe(time.Since(start).Seconds())
	t.p.decided = true
	return d, err
}

// noteChargeLocked updates p.charge from dec, and counts the agent
// switch's new decisions by reason. The caller holds mu and recMu.
func (p *Pool) noteChargeLocked(dec agent.Decision) {
	c := &p.charge
	if dec.Servers > 0 && dec.Outcome != agent.OutcomeRefused {
		c.desired = dec.Servers
	}
	sw, isSwitch := p.auto.(*agent.Switch)
	if isSwitch {
		if tb := sw.Agent().Table(); tb != nil {
			c.table, c.tableCreated, c.tableUpdates = tb.Name, tb.Created, tb.Steps
		}
	}
	if !p.decided {
		return // no policy decided (no data, stale data): who was in charge still is
	}
	p.decided = false
	c.policy, c.reason = dec.Policy, api.FallbackNone
	switch {
	case p.mode == config.ModeFallbackOnly:
		c.reason = api.FallbackMode
	case p.mode == config.ModeManual || !isSwitch:
	default:
		if c.switchCounted == nil {
			// Every reason from 0, so the first of each is a rise.
			for _, r := range []string{agent.SwitchAgent, agent.SwitchUntrained, agent.SwitchStale, agent.SwitchOOD, agent.SwitchUnsure, agent.SwitchError} {
				p.d.metrics.SwitchDecisions.WithLabelValues(p.name, r)
			}
		}
		counts := sw.Counts()
		for reason, n := range counts {
			if d := n - c.switchCounted[reason]; d > 0 {
				p.d.metrics.SwitchDecisions.WithLabelValues(p.name, reason).Add(float64(d))
				if reason != agent.SwitchAgent {
					c.reason = reason
				}
			}
		}
		c.switchCounted = counts
		if post, ood := sw.Agent().LastState(); len(post) > 0 {
			c.stateKnown, c.ood, c.confidence = true, ood, post[0]
			for _, v := range post {
				c.confidence = max(c.confidence, v)
			}
		}
	}
}

// poolCounter counts a pool's servers by state (actuator.Pools).
type poolCounter interface {
	Count(ctx context.Context, pool string) (actuator.Count, error)
}

// actuatorName names the pool's actuator in metrics: the configured one,
// or "sim" for a simulated pool.
func (p *Pool) actuatorName() string {
	if p.sim != nil || p.cfg.Actuator == "" {
		return "sim"
	}
	return p.cfg.Actuator
}

// loopName is the name of the collector loop of the pool's source.
func (p *Pool) loopName() string {
	if p.sim != nil {
		return p.source
	}
	return p.cfg.Source
}

// poolStatus is every pool's state for /metrics (api.PoolCollector): the
// latest interval and servers by state read now, who decides from the
// latest decisions, the scrape state from the collector loops.
func (d *Daemon) poolStatus(ctx context.Context) []api.PoolStatus {
	d.syncScrapeErrors()
	var out []api.PoolStatus
	for _, p := range d.poolList() {
		st := api.PoolStatus{Pool: p.name, Target: p.template.TargetP95, Min: p.template.Min, Max: p.template.Max}
		p.recMu.Lock()
		c := p.charge
		st.Mode, st.Paused = p.mode, p.paused
		p.recMu.Unlock()
		st.Policy, st.FallbackReason = c.policy, c.reason
		st.StateKnown, st.OOD, st.Confidence = c.stateKnown, c.ood, c.confidence
		st.PolicyName, st.PolicyCreated, st.PolicyUpdates = c.table, c.tableCreated, c.tableUpdates
		if pt, ok := p.latestPoint(ctx); ok {
			st.Latest = &pt
		}
		st.ServersKnown, st.Serving, st.Booting, st.Draining = p.serversByState(ctx, st.Latest)
		st.Desired = c.desired
		if st.Desired == 0 {
			st.Desired = st.Serving + st.Booting
		}
		var last time.Time
		d.mu.Lock()
		if l := d.loops[p.loopName()]; l != nil {
			last, st.ScrapeErrors = l.loop.Stats().LastSnapshot, maps.Clone(l.kinds)
		}
		d.mu.Unlock()
		st.LastScrape = p.wallTime(last)
		out = append(out, st)
	}
	return out
}

// wallTime is the wall-clock time of t on the pool's clock (zero stays
// zero): a simulated pool's clock runs ahead, speedup times faster.
func (p *Pool) wallTime(t time.Time) time.Time {
	if t.IsZero() || p.sim == nil {
		return t
	}
	age := p.clock().Sub(t)
	return p.d.wall().Add(-time.Duration(float64(age) / p.sim.Speedup()))
}

// serversByState counts the pool's servers serving, booting and
// draining: from its actuator.Pools when it has one, otherwise serving
// from the latest interval (PoolRates.ServersUp) and booting from the
// applier (the simulator); known is false when neither can tell.
func (p *Pool) serversByState(ctx context.Context, latest *collector.PoolPoint) (known bool, serving, booting, draining int) {
	if pc, ok := p.applier.(poolCounter); ok {
		c, err := pc.Count(ctx, p.name)
		if err != nil {
			p.log.Debug("count servers for /metrics", "err", err)
			return false, 0, 0, 0
		}
		return true, c.Serving(), c.Booting, c.Draining
	}
	if latest == nil {
		return false, 0, 0, 0
	}
	if bc, ok := p.applier.(bootCounter); ok {
		booting = bc.Booting(p.name)
	}
	return true, latest.Servers, booting, 0
}

// scrapeErrorKind classifies a failed scrape for the kind label of
// lbtune_pool_scrape_errors_total (api.ScrapeErrorKinds).
func scrapeErrorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &ne):
		return "connection"
	case errors.Is(err, collector.ErrMalformed):
		return "malformed"
	}
	return "other"
}
