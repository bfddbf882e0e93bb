package agent

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// GuardConfig holds the safety limits the Guard enforces on every decision,
// on top of each pool's Template (Min, Max, MaxWeight).
type GuardConfig struct {
	// UpCooldown is the least time between two scale-ups of a pool.
	UpCooldown time.Duration
	// DownCooldown is how long after a scale-up a scale-in is refused (a
	// scale-in needs strictly more time than this; the HPA's scale-down
	// stabilisation, and eval's reversal rule): a pool that just grew
	// does not shrink back on the next dip, so load oscillating around a
	// threshold yields at most two changes per DownCooldown. Consecutive
	// scale-ins are paced by MaxStepDown alone.
	DownCooldown time.Duration
	// MaxStepUp and MaxStepDown bound how many servers one decision may add
	// or remove; 0 means no bound.
	MaxStepUp, MaxStepDown int
	// SpikeHold is how long a scale-up must be asked for before it is
	// allowed, so load spikes shorter than this are ignored. The latest
	// interval counts as evidence for its whole length: with intervals of
	// SpikeHold or longer, one interval-averaged request suffices.
	SpikeHold time.Duration
	// MinLifetime is how long a server must have run before it may be
	// removed (the cloud's billing granularity, or a stability floor).
	MinLifetime time.Duration
	// StaleAfter is the data age beyond which the guard refuses to act.
	StaleAfter time.Duration
}

// DefaultGuardConfig returns the limits used when none are configured: up
// at most every 30 s, down no sooner than 5 min after an up, at most 10
// servers added or 2 removed per decision, 5 s spike hold, 5 min minimum
// lifetime, and data older than 3 min is stale.
func DefaultGuardConfig() GuardConfig {
	return GuardConfig{
		UpCooldown:   30 * time.Second,
		DownCooldown: 5 * time.Minute,
		MaxStepUp:    10,
		MaxStepDown:  2,
		SpikeHold:    5 * time.Second,
		MinLifetime:  5 * time.Minute,
		StaleAfter:   3 * time.Minute,
	}
}

// Validate reports a negative limit.
func (c GuardConfig) Validate() error {
	for name, d := range map[string]time.Duration{
		"up cooldown": c.UpCooldown, "down cooldown": c.DownCooldown, "spike hold": c.SpikeHold,
		"min lifetime": c.MinLifetime, "stale after": c.StaleAfter,
	} {
		if d < 0 {
			return fmt.Errorf("guard: %s %v is negative", name, d)
		}
	}
	if c.MaxStepUp < 0 || c.MaxStepDown < 0 {
		return fmt.Errorf("guard: max step up %d / down %d is negative", c.MaxStepUp, c.MaxStepDown)
	}
	return nil
}

// Guard clamps decisions to the pool's limits before they reach an
// actuator: server count within [max(Min,1), Max], separate up and down
// cooldowns, step limits, a hold that ignores short spikes, a minimum server
// lifetime before scale-in, weights within 1..MaxWeight (so never all zero),
// and no action at all on stale data. Every change it makes is appended to
// Decision.Clamps with its reason.
//
// The guard assumes each decision it passes is carried out; it reconciles
// with the observed server count on every call. One Guard serves any number
// of pools (state is kept per pool name); it is not safe for concurrent use.
type Guard struct {
	cfg   GuardConfig
	now   func() time.Time
	pools map[string]*guardPool
}

// guardPool is the guard's memory of one pool.
type guardPool struct {
	lastUp  time.Time // last approved scale-up; zero: never
	upSince time.Time // start of the current run of scale-up requests; zero: none
	// launched holds the launch time of every server the pool runs, oldest
	// first; servers that were there before the guard saw the pool carry the
	// zero time (old enough).
	launched []time.Time
	seen     bool
}

// NewGuard returns a Guard enforcing cfg. now is the clock; nil means each
// Observation's Time is the clock (the simulator's case).
func NewGuard(cfg GuardConfig, now func() time.Time) *Guard {
	return &Guard{cfg: cfg, now: now, pools: map[string]*guardPool{}}
}

// Config returns the guard's limits.
func (g *Guard) Config() GuardConfig { return g.cfg }

// Check returns d clamped to the guard's limits for the pool obs describes,
// with a Clamp per change. A decision refused entirely (stale data) gets
// Outcome "refused"; otherwise Outcome is left as the caller set it.
func (g *Guard) Check(obs Observation, d Decision) Decision {
	now := obs.Time
	if g.now != nil {
		now = g.now()
	}
	p := g.pool(obs, now)
	d.Clamps = append([]Clamp(nil), d.Clamps...)

	// Stale data: no action of any kind.
	if g.cfg.StaleAfter > 0 && obs.DataAge > g.cfg.StaleAfter {
		cur := obs.Servers + obs.Booting
		if d.Servers != 0 || d.Weights != nil || d.Balance != "" {
			d.Clamps = append(d.Clamps, Clamp{Rule: "stale", From: d.Servers, To: 0,
				Reason: fmt.Sprintf("refused: data is %v old, more than %v (pool keeps %d servers and its weights)", obs.DataAge.Round(time.Second), g.cfg.StaleAfter, cur)})
			d.Outcome = OutcomeRefused
		}
		d.Servers, d.Weights, d.Balance, d.BalanceReason = 0, nil, "", ""
		p.upSince = time.Time{}
		return d
	}

	d.Weights = g.checkWeights(obs, d.Weights, &d.Clamps)
	if d.Servers != 0 {
		d.Servers = g.checkServers(obs, p, now, d.Servers, &d.Clamps)
	} else {
		p.upSince = time.Time{}
	}
	return d
}

// pool returns the guard's state for obs.Pool, reconciled with the observed
// number of servers (ordered or serving).
func (g *Guard) pool(obs Observation, now time.Time) *guardPool {
	p := g.pools[obs.Pool]
	if p == nil {
		p = &guardPool{}
		g.pools[obs.Pool] = p
	}
	cur := obs.Servers + obs.Booting
	if !p.seen {
		p.seen = true
		p.launched = make([]time.Time, cur) // present before us: old enough
		return p
	}
	for len(p.launched) < cur { // servers appeared (replacements, manual launches)
		p.launched = append(p.launched, now)
	}
	if len(p.launched) > cur { // servers vanished: forget the oldest
		p.launched = p.launched[len(p.launched)-cur:]
	}
	return p
}

// checkServers clamps a desired server count; it returns the new desired
// count, or 0 for no change.
func (g *Guard) checkServers(obs Observation, p *guardPool, now time.Time, want int, clamps *[]Clamp) int {
	cur := obs.Servers + obs.Booting
	lo, hi := obs.Template.Min, obs.Template.Max
	if lo < 1 {
		lo = 1
	}
	if hi < lo {
		hi = lo
	}
	add := func(rule string, from, to int, format string, args ...any) {
		*clamps = append(*clamps, Clamp{Rule: rule, From: from, To: to, Reason: fmt.Sprintf(format, args...)})
	}
	if want > hi {
		add("max", want, hi, "capped count from %d to %d to stay within max", want, hi)
		want = hi
	}
	if want < lo {
		add("min", want, lo, "raised count from %d to %d to stay within min", want, lo)
		want = lo
	}
	switch {
	case cur < lo || cur > hi:
		// Out of bounds now (template changed, servers failed): the bounds
		// win over cooldowns, steps and lifetimes.
	case want > cur:
		want = g.checkUp(obs, p, now, cur, want, add)
	case want < cur:
		p.upSince = time.Time{}
		want = g.checkDown(p, now, cur, want, add)
	default:
		p.upSince = time.Time{}
	}
	if want == cur {
		return 0
	}
	g.record(p, now, cur, want)
	return want
}

// checkUp applies the spike hold, the up cooldown and the up step.
func (g *Guard) checkUp(obs Observation, p *guardPool, now time.Time, cur, want int, add func(string, int, int, string, ...any)) int {
	if p.upSince.IsZero() {
		p.upSince = now
	}
	if held := now.Sub(p.upSince) + obs.Interval; held < g.cfg.SpikeHold {
		add("spike", want, cur, "held count at %d instead of %d: scale-up asked for %v, less than %v", cur, want, held, g.cfg.SpikeHold)
		return cur
	}
	if !p.lastUp.IsZero() && now.Sub(p.lastUp) < g.cfg.UpCooldown {
		add("cooldown-up", want, cur, "held count at %d instead of %d: last scale-up %v ago, cooldown %v", cur, want, now.Sub(p.lastUp), g.cfg.UpCooldown)
		return cur
	}
	if s := g.cfg.MaxStepUp; s > 0 && want-cur > s {
		add("step", want, cur+s, "capped count from %d to %d: at most %d servers added per decision", want, cur+s, s)
		want = cur + s
	}
	return want
}

// checkDown applies the down cooldown, the down step and the minimum lifetime.
func (g *Guard) checkDown(p *guardPool, now time.Time, cur, want int, add func(string, int, int, string, ...any)) int {
	if !p.lastUp.IsZero() && now.Sub(p.lastUp) <= g.cfg.DownCooldown {
		add("cooldown-down", want, cur, "held count at %d instead of %d: last scale-up %v ago, cooldown %v", cur, want, now.Sub(p.lastUp), g.cfg.DownCooldown)
		return cur
	}
	if s := g.cfg.MaxStepDown; s > 0 && cur-want > s {
		add("step", want, cur-s, "raised count from %d to %d: at most %d servers removed per decision", want, cur-s, s)
		want = cur - s
	}
	if old := p.oldEnough(now, g.cfg.MinLifetime); cur-want > old {
		add("lifetime", want, cur-old, "raised count from %d to %d: only %d servers have run %v", want, cur-old, old, g.cfg.MinLifetime)
		want = cur - old
	}
	return want
}

// record notes an approved change from cur to want servers at now.
func (g *Guard) record(p *guardPool, now time.Time, cur, want int) {
	if want > cur {
		p.lastUp = now
		p.upSince = time.Time{}
		for i := cur; i < want; i++ {
			p.launched = append(p.launched, now)
		}
		return
	}
	// Scale-in removes the oldest servers: they have served their minimum
	// lifetime (the lifetime rule guarantees there are enough of them).
	if n := cur - want; n <= len(p.launched) {
		p.launched = p.launched[n:]
	}
}

// oldEnough counts the servers that have run at least min.
func (p *guardPool) oldEnough(now time.Time, min time.Duration) int {
	cut := now.Add(-min)
	// launched is sorted oldest first; count those launched at or before cut.
	return sort.Search(len(p.launched), func(i int) bool { return p.launched[i].After(cut) })
}

// checkWeights clamps every weight into 1..MaxWeight (MaxWeight 0 means 256).
func (g *Guard) checkWeights(obs Observation, w map[string]int, clamps *[]Clamp) map[string]int {
	if w == nil {
		return nil
	}
	hi := obs.Template.MaxWeight
	if hi <= 0 {
		hi = 256
	}
	out := make(map[string]int, len(w))
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := w[n]
		switch {
		case v < 1:
			*clamps = append(*clamps, Clamp{Rule: "weight-min", From: v, To: 1, Reason: fmt.Sprintf("raised weight of %s from %d to 1: weights stay within 1..%d, never all zero", n, v, hi)})
			v = 1
		case v > hi:
			*clamps = append(*clamps, Clamp{Rule: "weight-max", From: v, To: hi, Reason: fmt.Sprintf("capped weight of %s from %d to %d: the balancer's maximum", n, v, hi)})
			v = hi
		}
		out[n] = v
	}
	return out
}

// Guarded is a Policy whose every decision passes through its own Guard:
// how the agent runs in eval, where the baselines run unguarded.
type Guarded struct {
	Policy Policy
	Guard  *Guard
}

// Name is the inner policy's name.
func (g *Guarded) Name() string { return g.Policy.Name() }

// Decide asks the inner policy and clamps its decision.
func (g *Guarded) Decide(ctx context.Context, obs Observation) (Decision, error) {
	d, err := g.Policy.Decide(ctx, obs)
	if err != nil {
		return d, err
	}
	return g.Guard.Check(obs, d), nil
}
