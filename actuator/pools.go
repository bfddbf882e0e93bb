package actuator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbtune/lbtune/agent"
)

// Member is one server of a pool as a Provider sees it.
type Member struct {
	// Name identifies the server to the balancer and the provider (a local
	// server's "127.0.0.1:port", an instance id).
	Name string
	// Addr is host:port where the balancer reaches it.
	Addr string
	// Started is when it was launched; scale-in removes the newest first.
	Started time.Time
	// Healthy is false once the provider saw it die or fail its health
	// checks; Reason then says why.
	Healthy bool
	Reason  string
}

// Balancer is what Pools needs of a load balancer: weights, and servers in
// and out. RemoveServer must drain: when it returns, the balancer sends the
// server no new request and those in flight have finished (or a bounded
// drain timeout passed, which the implementation logs).
type Balancer interface {
	SetWeights(ctx context.Context, pool string, weights map[string]int) error
	AddServer(ctx context.Context, pool, name, addr string, weight int) error
	RemoveServer(ctx context.Context, pool, name string) error
}

// Provider starts and stops the servers of a pool. Launch returns once the
// server is ready to serve. Members lists the servers it runs, marking dead
// or failing ones unhealthy.
type Provider interface {
	Launch(ctx context.Context, pool string) (Member, error)
	Stop(ctx context.Context, pool string, m Member) error
	Members(ctx context.Context, pool string) ([]Member, error)
}

// ServerState is one server of a balancer pool as the balancer sees it.
type ServerState struct {
	// Name is the server's name in the balancer; Addr is host:port.
	Name, Addr string
	// Serving is true when the balancer sends it new requests: up by its
	// health checks, not drained and not in maintenance.
	Serving bool
	// State is the balancer's word for it ("UP", "DOWN", "DRAIN", "MAINT").
	State string
}

// Lister is implemented by a Balancer that can list the servers of a pool
// (actuator/haproxy). Pools then counts every server serving in the pool,
// its own and the others (configured, `node add`), and can find its
// leftover entries. Without it Pools counts only the provider's members.
type Lister interface {
	PoolServers(ctx context.Context, pool string) ([]ServerState, error)
}

// Adopter is implemented by a Provider that can take over the servers a
// previous run handed over (actuator/fleet with a StateFile). Adopt returns
// pool's servers that are alive and answer their health check, now members
// of the provider, and those that are gone (dead or failing; a failing one
// is stopped), which the balancer may still list.
type Adopter interface {
	Adopt(ctx context.Context, pool string) (adopted, gone []Member, err error)
}

// Limits bound one pool's size, counted as the servers serving in the
// balancer pool (see Count); Pools never goes below Min on its own.
type Limits struct {
	Min, Max int
	// Weight is the weight a newly added server gets; 0 means 1.
	Weight int
}

// ErrUnknownPool marks a pool Pools was not configured with.
var ErrUnknownPool = errors.New("unknown pool")

// ErrLimit marks a request refused because it would take a pool above its
// Max or below its Min.
var ErrLimit = errors.New("pool limit")

var _ agent.Applier = (*Pools)(nil)

// Pools applies decisions to pools served by one Balancer and one Provider.
//
// A pool's size is what serves in it: the servers the balancer sends
// requests to, whether the provider launched them ("own") or not
// ("static": configured in the balancer, added by `node add`). Min and
// Max bound that total, and every method that adds a server checks Max
// against it first. Pools only ever stops or removes its own servers on
// its own; static ones leave only through RemoveServer.
type Pools struct {
	balancer Balancer
	provider Provider
	// Interval is the supervision period of Run; 0 means 1s.
	Interval time.Duration
	// Log receives one line per action; nil means slog.Default().
	Log *slog.Logger
	// Acting, when set, is asked before each supervision tick of a pool
	// (shadow or paused pools answer false). A pool it holds gets no
	// launch, replacement, trim or stop from Run; Run logs what it would
	// have done, once per change. It must not block nor call Pools. Nil
	// means every pool acts. Explicit calls (Scale, Launch, AddServer,
	// RemoveServer, SetWeights) are not gated: the caller decides.
	Acting func(pool string) bool

	pmu   sync.RWMutex // guards pools (AddPool)
	pools map[string]*poolState
}

// poolState is one pool's limits, desired size and lock: one change at a
// time per pool.
type poolState struct {
	mu       sync.Mutex
	limits   Limits
	desired  int
	held     string       // the last plan logged while held ("" when acting)
	booting  atomic.Int64 // launches in progress
	draining atomic.Int64 // servers being drained out of the balancer
}

// NewPools returns Pools over b and p for the pools in limits.
func NewPools(b Balancer, p Provider, limits map[string]Limits) *Pools {
	ps := &Pools{balancer: b, provider: p, pools: map[string]*poolState{}}
	for name, l := range limits {
		if l.Weight <= 0 {
			l.Weight = 1
		}
		ps.pools[name] = &poolState{limits: l, desired: l.Min}
	}
	return ps
}

func (p *Pools) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// AddPool adds pool with limits l while Pools runs (`lbtune template
// up`); Run supervises it from its next tick. A pool already there keeps
// its state and takes the new limits.
func (p *Pools) AddPool(name string, l Limits) {
	if l.Weight <= 0 {
		l.Weight = 1
	}
	p.pmu.Lock()
	st, ok := p.pools[name]
	if !ok {
		p.pools[name] = &poolState{limits: l, desired: l.Min}
		p.pmu.Unlock()
		return
	}
	p.pmu.Unlock()
	st.mu.Lock()
	st.limits = l
	st.mu.Unlock()
}

// snapshot returns the pools by name.
func (p *Pools) snapshot() map[string]*poolState {
	p.pmu.RLock()
	defer p.pmu.RUnlock()
	m := make(map[string]*poolState, len(p.pools))
	for k, v := range p.pools {
		m[k] = v
	}
	return m
}

func (p *Pools) pool(name string) (*poolState, error) {
	p.pmu.RLock()
	st, ok := p.pools[name]
	p.pmu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("pool %q: %w", name, ErrUnknownPool)
	}
	return st, nil
}

// SetWeights passes the pool's weights to the balancer.
func (p *Pools) SetWeights(ctx context.Context, pool string, weights map[string]int) error {
	st, err := p.pool(pool)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := p.balancer.SetWeights(ctx, pool, weights); err != nil {
		return fmt.Errorf("set weights of %s: %w", pool, err)
	}
	return nil
}

// Count is what serves in one pool.
type Count struct {
	// Static are the servers serving in the balancer pool that the
	// provider does not run (configured in the balancer, `node add`).
	Static int `json:"static"`
	// Own are the provider's healthy servers.
	Own int `json:"own"`
	// Failed are the provider's dead or failing servers; they do not serve.
	Failed int `json:"failed"`
	// Booting are launches in progress, not serving yet.
	Booting int `json:"booting"`
	// Draining are servers being drained out of the balancer before
	// they are removed (Pools' own drains).
	Draining int `json:"draining"`
}

// Serving is the pool's size: static plus own servers serving.
func (c Count) Serving() int { return c.Static + c.Own }

// view is one look at a pool: its count and the servers behind it.
// room refuses, with ErrLimit, k more servers when the servers serving
// plus those booting plus k would exceed max: the one limit check of
// Launch and AddServer.
func (v view) room(k, max int) error {
	if n := v.Serving() + v.Booting + k; n > max {
		return fmt.Errorf("%d serving + %d booting + %d = %d exceeds max %d: %w", v.Serving(), v.Booting, k, n, max, ErrLimit)
	}
	return nil
}

type view struct {
	Count
	healthy, failed []Member
	listed          map[string]ServerState // the balancer's entries; nil without a Lister
}

// look counts what serves in pool. Called with st.mu held, or for a
// read-only count. The balancer is asked first: a server the provider
// starts appears in its members before it is registered, and is drained
// from the balancer before it leaves them, so no own server is taken for
// a static one.
func (p *Pools) look(ctx context.Context, pool string, st *poolState) (view, error) {
	var v view
	if l, ok := p.balancer.(Lister); ok {
		servers, err := l.PoolServers(ctx, pool)
		if err != nil {
			return view{}, fmt.Errorf("list %s servers: %w", pool, err)
		}
		v.listed = map[string]ServerState{}
		for _, s := range servers {
			v.listed[s.Name] = s
		}
	}
	members, err := p.provider.Members(ctx, pool)
	if err != nil {
		return view{}, fmt.Errorf("list %s members: %w", pool, err)
	}
	own := map[string]bool{}
	for _, m := range members {
		own[m.Name] = true
		if !m.Healthy {
			v.failed = append(v.failed, m)
			continue
		}
		v.healthy = append(v.healthy, m)
		// With a Lister, a server not registered yet is booting, not serving.
		if _, ok := v.listed[m.Name]; ok || v.listed == nil {
			v.Own++
		}
	}
	for name, s := range v.listed {
		if s.Serving && !own[name] {
			v.Static++
		}
	}
	v.Failed = len(v.failed)
	v.Booting = int(st.booting.Load())
	v.Draining = int(st.draining.Load())
	return v, nil
}

// Count returns what serves in pool now, without waiting for a change in
// progress (it may then be off by one server for that moment). `node add`,
// `node launch` and every other path that adds servers check Max against
// Serving()+Booting under the pool's lock.
func (p *Pools) Count(ctx context.Context, pool string) (Count, error) {
	st, err := p.pool(pool)
	if err != nil {
		return Count{}, err
	}
	v, err := p.look(ctx, pool, st)
	return v.Count, err
}

// clamp bounds n to the pool's limits, logging a change.
func (p *Pools) clamp(pool string, st *poolState, n int) int {
	c := min(max(n, st.limits.Min), st.limits.Max)
	if c != n {
		p.log().Warn("scale clamped to pool limits", "pool", pool, "asked", n, "to", c, "min", st.limits.Min, "max", st.limits.Max)
	}
	return c
}

// Scale brings pool to n servers serving (static and own, see Count), n
// clamped to its Limits (the clamp is logged). New servers are launched in
// parallel, each added to the balancer once ready; surplus own servers
// (newest first) are drained from the balancer, then stopped. Static
// servers are never removed: if they alone exceed n, Scale stops every own
// server and logs it. A request below what serves never launches a server,
// even when the clamp to Min asks for more: Min is restored by Run, as a
// dead server is replaced.
func (p *Pools) Scale(ctx context.Context, pool string, n int) error {
	st, err := p.pool(pool)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	v, err := p.look(ctx, pool, st)
	if err != nil {
		return fmt.Errorf("scale %s to %d: %w", pool, n, err)
	}
	c := p.clamp(pool, st, n)
	st.desired = c
	target := c
	if n < v.Serving() && c > v.Serving() {
		target = v.Serving()
		p.log().Info("scale-in request below min: nothing launched", "pool", pool, "asked", n, "serving", v.Serving(), "min", st.limits.Min)
	}
	return p.apply(ctx, pool, st, v, target, true)
}

// Launch starts exactly k new servers in pool (`node launch`), refusing
// with ErrLimit, before anything starts, if the servers serving plus those
// booting plus k exceed Max. The pool is then kept at that size.
func (p *Pools) Launch(ctx context.Context, pool string, k int) error {
	st, err := p.pool(pool)
	if err != nil {
		return err
	}
	if k < 1 {
		return fmt.Errorf("launch %d servers in %s: want at least 1", k, pool)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	v, err := p.look(ctx, pool, st)
	if err != nil {
		return fmt.Errorf("launch in %s: %w", pool, err)
	}
	if err := v.room(k, st.limits.Max); err != nil {
		return fmt.Errorf("launch %d in %s: %w", k, pool, err)
	}
	st.desired = max(v.Serving()+k, st.limits.Min)
	if err := p.grow(ctx, pool, st.limits.Weight, k); err != nil {
		return fmt.Errorf("launch %d in %s: %w", k, pool, err)
	}
	return nil
}

// AddServer registers a server Pools does not run (`node add`) in the
// balancer pool with weight (0 means the pool's Weight), refusing with
// ErrLimit if it would take the servers serving plus booting above Max.
// The pool is then kept at that size (an own server is not trimmed to make
// room for it).
func (p *Pools) AddServer(ctx context.Context, pool, name, addr string, weight int) error {
	st, err := p.pool(pool)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	v, err := p.look(ctx, pool, st)
	if err != nil {
		return fmt.Errorf("add %s to %s: %w", name, pool, err)
	}
	if err := v.room(1, st.limits.Max); err != nil {
		return fmt.Errorf("add %s to %s: %w", name, pool, err)
	}
	if weight <= 0 {
		weight = st.limits.Weight
	}
	if err := p.balancer.AddServer(ctx, pool, name, addr, weight); err != nil {
		return fmt.Errorf("add %s to %s: %w", name, pool, err)
	}
	st.desired = max(st.desired, v.Serving()+1)
	p.log().Info("server added", "pool", pool, "server", name, "addr", addr, "weight", weight)
	return nil
}

// RemoveServer drains name out of the balancer pool (`node rm`) and, if
// the provider runs it, stops it. Removing a serving server is refused
// with ErrLimit when it would take the pool below Min; an entry that does
// not serve (down, in maintenance) can always go. The pool is then kept
// at that size.
func (p *Pools) RemoveServer(ctx context.Context, pool, name string) error {
	st, err := p.pool(pool)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	v, err := p.look(ctx, pool, st)
	if err != nil {
		return fmt.Errorf("remove %s from %s: %w", name, pool, err)
	}
	var own *Member
	for _, m := range append(slices.Clone(v.healthy), v.failed...) {
		if m.Name == name {
			own = &m
		}
	}
	serving := v.listed[name].Serving
	if own != nil {
		serving = own.Healthy
	}
	if serving && v.Serving()-1 < st.limits.Min {
		return fmt.Errorf("remove %s from %s: %d serving - 1 is below min %d: %w", name, pool, v.Serving(), st.limits.Min, ErrLimit)
	}
	if own != nil {
		if err := p.shrink(ctx, pool, []Member{*own}); err != nil {
			return fmt.Errorf("remove %s from %s: %w", name, pool, err)
		}
	} else if err := p.drain(ctx, pool, st, name); err != nil {
		return fmt.Errorf("remove %s from %s: %w", name, pool, err)
	}
	if serving {
		st.desired = max(min(st.desired, v.Serving()-1), st.limits.Min)
	}
	p.log().Info("server removed", "pool", pool, "server", name, "reason", "removed on request")
	return nil
}

// plan is what one reconcile would do to a pool.
type plan struct {
	launch int      // servers to launch
	trim   []Member // own healthy servers to drain and stop
	failed []Member // own dead or failing servers to drain and stop
}

// planFor is the reconcile of v towards target serving servers. exact
// trims down to target; otherwise (supervision) only what exceeds Max is
// trimmed, so a server added by hand or a static one back up is not paid
// for with an own one. Launches stop at Max counting what boots.
func planFor(v view, target int, l Limits, exact bool) plan {
	pl := plan{failed: v.failed}
	serving := v.Serving()
	switch {
	case target > serving:
		pl.launch = max(0, min(target-serving, l.Max-serving-v.Booting))
	case target < serving:
		over := serving - target
		if !exact {
			over = serving - l.Max
		}
		if over > 0 {
			// Newest first: the oldest servers are warm and proven.
			healthy := slices.Clone(v.healthy)
			slices.SortFunc(healthy, func(a, b Member) int { return b.Started.Compare(a.Started) })
			pl.trim = healthy[:min(over, len(healthy))]
		}
	}
	return pl
}

func (pl plan) String() string {
	names := func(ms []Member) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.Name
		}
		return out
	}
	return fmt.Sprintf("launch %d, trim %v, replace failed %v", pl.launch, names(pl.trim), names(pl.failed))
}

// apply runs the plan of v towards target: launches first, then drains
// and stops the surplus and the failed servers, so the pool never shrinks
// while it heals. Called with st.mu held.
func (p *Pools) apply(ctx context.Context, pool string, st *poolState, v view, target int, exact bool) error {
	pl := planFor(v, target, st.limits, exact)
	if v.Static > target && exact {
		p.log().Warn("static servers alone exceed the pool's size; they are not removed", "pool", pool, "static", v.Static, "size", target)
	}
	var errs []error
	if pl.launch > 0 {
		errs = append(errs, p.grow(ctx, pool, st.limits.Weight, pl.launch))
	}
	errs = append(errs, p.shrink(ctx, pool, append(pl.trim, pl.failed...)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scale %s to %d: %w", pool, target, err)
	}
	return nil
}

// reconcile is one supervision tick: the pool is brought back to its
// desired size (replacing failed servers, launching to Min) and trimmed
// only above Max. Called with st.mu held.
func (p *Pools) reconcile(ctx context.Context, pool string, st *poolState) error {
	v, err := p.look(ctx, pool, st)
	if err != nil {
		return err
	}
	return p.apply(ctx, pool, st, v, st.desired, false)
}

// hold is the supervision tick of a held pool: it only logs, once per
// change, what reconcile would do.
func (p *Pools) hold(ctx context.Context, pool string, st *poolState) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v, err := p.look(ctx, pool, st)
	if err != nil {
		return
	}
	pl := planFor(v, st.desired, st.limits, false)
	s := pl.String()
	if pl.launch == 0 && len(pl.trim) == 0 && len(pl.failed) == 0 {
		s = "nothing"
	}
	if s != st.held {
		st.held = s
		p.log().Info("pool held: supervision would", "pool", pool, "plan", s, "serving", v.Serving(), "desired", st.desired)
	}
}

// grow launches k servers in parallel and adds each to the balancer. A
// server the balancer refused is stopped again.
func (p *Pools) grow(ctx context.Context, pool string, weight, k int) error {
	errs := make([]error, k)
	st, err := p.pool(pool)
	if err != nil {
		return err
	}
	st.booting.Add(int64(k))
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.booting.Add(-1)
			m, err := p.provider.Launch(ctx, pool)
			if err != nil {
				errs[i] = fmt.Errorf("launch: %w", err)
				return
			}
			if err := p.balancer.AddServer(ctx, pool, m.Name, m.Addr, weight); err != nil {
				errs[i] = errors.Join(fmt.Errorf("add %s: %w", m.Name, err), p.provider.Stop(ctx, pool, m))
				return
			}
			p.log().Info("server joined", "pool", pool, "server", m.Name, "addr", m.Addr, "weight", weight)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// shrink drains each member out of the balancer, then stops it, in
// parallel. A member the balancer could not drain is not stopped: stopping
// it could fail requests.
func (p *Pools) shrink(ctx context.Context, pool string, ms []Member) error {
	st, err := p.pool(pool)
	if err != nil {
		return err
	}
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.drain(ctx, pool, st, m.Name); err != nil {
				errs[i] = fmt.Errorf("drain %s: %w", m.Name, err)
				if m.Healthy {
					return
				}
				// Dead or failing anyway: stop it so it is not left behind.
			}
			if err := p.provider.Stop(ctx, pool, m); err != nil {
				errs[i] = errors.Join(errs[i], fmt.Errorf("stop %s: %w", m.Name, err))
				return
			}
			reason := "scale-in"
			if !m.Healthy {
				reason = m.Reason
			}
			p.log().Info("server removed", "pool", pool, "server", m.Name, "reason", reason)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// drain removes name from the balancer pool, counted as draining
// meanwhile (Count.Draining).
func (p *Pools) drain(ctx context.Context, pool string, st *poolState, name string) error {
	st.draining.Add(1)
	defer st.draining.Add(-1)
	return p.balancer.RemoveServer(ctx, pool, name)
}

// Adopt takes over, for every pool, the servers a previous run handed
// over, if the provider is an Adopter: the live ones become own servers
// (registered in the balancer if it lost them or had them drained or in
// maintenance), the gone ones' entries are
// removed from the balancer (a Lister tells which it still has; without
// one every gone server is removed, ignoring errors). The pool is then
// kept at what serves, within its limits. Call it once, before Run and
// before any Scale.
func (p *Pools) Adopt(ctx context.Context) error {
	ad, ok := p.provider.(Adopter)
	if !ok {
		return nil
	}
	pools := p.snapshot()
	names := make([]string, 0, len(pools))
	for name := range pools {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	for _, pool := range names {
		if p.Acting != nil && !p.Acting(pool) {
			// Shadow or paused: adopting could stop a failing server or
			// change the balancer's entries; a held pool changes nothing.
			p.log().Info("pool held: handed-over servers left as they are, not adopted", "pool", pool)
			continue
		}
		st := pools[pool]
		st.mu.Lock()
		err := p.adopt(ctx, ad, pool, st)
		st.mu.Unlock()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (p *Pools) adopt(ctx context.Context, ad Adopter, pool string, st *poolState) error {
	adopted, gone, err := ad.Adopt(ctx, pool)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", pool, err)
	}
	v, err := p.look(ctx, pool, st)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", pool, err)
	}
	var errs []error
	for _, m := range gone {
		if v.listed != nil {
			if _, ok := v.listed[m.Name]; !ok {
				continue
			}
		}
		err := p.balancer.RemoveServer(ctx, pool, m.Name)
		if err != nil && v.listed != nil {
			errs = append(errs, fmt.Errorf("deregister %s: %w", m.Name, err))
			continue
		}
		p.log().Info("leftover server deregistered", "pool", pool, "server", m.Name, "reason", m.Reason)
	}
	for _, m := range adopted {
		s, listed := v.listed[m.Name]
		if v.listed == nil || listed && (s.Serving || s.State == "DOWN") {
			p.log().Info("server adopted", "pool", pool, "server", m.Name, "addr", m.Addr)
			continue
		}
		if listed {
			// Drained or in maintenance when the previous run stopped (a
			// scale-in cut short): register it again, ready.
			if err := p.balancer.RemoveServer(ctx, pool, m.Name); err != nil {
				errs = append(errs, fmt.Errorf("re-register adopted %s: %w", m.Name, err))
				continue
			}
		}
		if err := p.balancer.AddServer(ctx, pool, m.Name, m.Addr, st.limits.Weight); err != nil {
			errs = append(errs, fmt.Errorf("register adopted %s: %w", m.Name, err))
			continue
		}
		p.log().Info("server adopted and registered again", "pool", pool, "server", m.Name, "addr", m.Addr)
	}
	if v, err := p.look(ctx, pool, st); err == nil {
		st.desired = min(max(v.Serving(), st.limits.Min), st.limits.Max)
	}
	return errors.Join(errs...)
}

// Run supervises every pool each Interval (the first tick at once): it
// launches to Min, replaces dead or failing servers, keeps each pool at
// its desired size and trims own servers above Max. A pool that Acting
// holds is left alone (logged). A failed tick is logged and the loop goes
// on; Run returns when ctx ends.
func (p *Pools) Run(ctx context.Context) error {
	interval := p.Interval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for name, st := range p.snapshot() {
			if p.Acting != nil && !p.Acting(name) {
				p.hold(ctx, name, st)
				continue
			}
			st.mu.Lock()
			if st.held != "" {
				st.held = ""
				p.log().Info("pool acting again", "pool", name)
			}
			err := p.reconcile(ctx, name, st)
			st.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				p.log().Error("pool supervision tick failed", "pool", name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Desired returns the size pool is kept at.
func (p *Pools) Desired(pool string) (int, error) {
	st, err := p.pool(pool)
	if err != nil {
		return 0, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.desired, nil
}

// Booting returns how many servers of pool are being launched and have not
// joined the balancer yet (0 for an unknown pool). It does not wait for a
// Scale in progress.
func (p *Pools) Booting(pool string) int {
	st, err := p.pool(pool)
	if err != nil {
		return 0
	}
	return int(st.booting.Load())
}
