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

// Limits bound one pool's size; Pools never goes below Min on its own.
type Limits struct {
	Min, Max int
	// Weight is the weight a newly added server gets; 0 means 1.
	Weight int
}

// ErrUnknownPool marks a pool Pools was not configured with.
var ErrUnknownPool = errors.New("unknown pool")

var _ agent.Applier = (*Pools)(nil)

// Pools applies decisions to pools served by one Balancer and one Provider.
type Pools struct {
	balancer Balancer
	provider Provider
	// Interval is the supervision period of Run; 0 means 1s.
	Interval time.Duration
	// Log receives one line per action; nil means slog.Default().
	Log *slog.Logger

	pools map[string]*poolState
}

// poolState is one pool's limits, desired size and lock: one change at a
// time per pool.
type poolState struct {
	mu      sync.Mutex
	limits  Limits
	desired int
	booting atomic.Int64 // launches in progress
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

func (p *Pools) pool(name string) (*poolState, error) {
	st, ok := p.pools[name]
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

// Scale brings pool to n healthy servers, n clamped to its Limits (the
// clamp is logged). New servers are launched in parallel, each added to the
// balancer once ready; surplus servers (newest first) are drained from the
// balancer, then stopped.
func (p *Pools) Scale(ctx context.Context, pool string, n int) error {
	st, err := p.pool(pool)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if c := min(max(n, st.limits.Min), st.limits.Max); c != n {
		p.log().Warn("scale clamped to pool limits", "pool", pool, "asked", n, "to", c, "min", st.limits.Min, "max", st.limits.Max)
		n = c
	}
	st.desired = n
	return p.reconcile(ctx, pool, st)
}

// reconcile makes the pool's healthy servers match st.desired, replacing
// unhealthy ones: replacements are added before the failed servers are
// removed, so the pool never shrinks while it heals. Called with st.mu held.
func (p *Pools) reconcile(ctx context.Context, pool string, st *poolState) error {
	members, err := p.provider.Members(ctx, pool)
	if err != nil {
		return fmt.Errorf("list %s: %w", pool, err)
	}
	var healthy, failed []Member
	for _, m := range members {
		if m.Healthy {
			healthy = append(healthy, m)
		} else {
			failed = append(failed, m)
		}
	}
	var errs []error
	switch d := st.desired - len(healthy); {
	case d > 0:
		errs = append(errs, p.grow(ctx, pool, st.limits.Weight, d))
	case d < 0:
		// Newest first: the oldest servers are warm and proven.
		slices.SortFunc(healthy, func(a, b Member) int { return b.Started.Compare(a.Started) })
		failed = append(failed, healthy[:-d]...)
	}
	errs = append(errs, p.shrink(ctx, pool, failed))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scale %s to %d: %w", pool, st.desired, err)
	}
	return nil
}

// grow launches k servers in parallel and adds each to the balancer. A
// server the balancer refused is stopped again.
func (p *Pools) grow(ctx context.Context, pool string, weight, k int) error {
	errs := make([]error, k)
	st := p.pools[pool]
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
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.balancer.RemoveServer(ctx, pool, m.Name); err != nil {
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

// Run starts every pool at its Min and then, every Interval, replaces dead
// or failing servers, keeping each pool at its desired size. A failed tick
// is logged and the loop goes on; Run returns when ctx ends.
func (p *Pools) Run(ctx context.Context) error {
	interval := p.Interval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for name, st := range p.pools {
			st.mu.Lock()
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
	st, ok := p.pools[pool]
	if !ok {
		return 0
	}
	return int(st.booting.Load())
}
