package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"
)

// WeightSetter changes server weights of one pool; actuator/haproxy.Runtime
// and actuator/nginx.NGINX both satisfy it.
type WeightSetter interface {
	SetWeights(ctx context.Context, pool string, weights map[string]int) error
}

// Change is one weight change the Explorer made.
type Change struct {
	Time   time.Time
	Pool   string
	Server string
	Old    int
	New    int
	// Reason says which exploration step made it ("random" or "reset").
	Reason string
}

// Explorer makes scripted exploratory weight changes on a running testbed,
// the control a tuner learns, so that recorded datasets show how the load
// responds to weights. Every Every it picks a pool and one of its servers at
// random and gives it a random weight in [1, MaxWeight]; every ResetEvery-th
// step it instead puts a whole pool back to its initial weights.
type Explorer struct {
	Setter     WeightSetter
	Every      time.Duration
	ResetEvery int
	MaxWeight  int
	Rand       *rand.Rand
	Now        func() time.Time
	Log        *slog.Logger

	weights map[string]map[string]int // pool -> server -> current weight
	initial map[string]map[string]int
}

// NewExplorer returns an Explorer over the pools in st.
func NewExplorer(st *State, setter WeightSetter, every time.Duration, maxWeight int, src rand.Source) *Explorer {
	e := &Explorer{Setter: setter, Every: every, ResetEvery: 8, MaxWeight: maxWeight, Rand: rand.New(src), Now: time.Now,
		weights: map[string]map[string]int{}, initial: map[string]map[string]int{}}
	for _, b := range st.Backends {
		if e.weights[b.Pool] == nil {
			e.weights[b.Pool], e.initial[b.Pool] = map[string]int{}, map[string]int{}
		}
		e.weights[b.Pool][b.Name], e.initial[b.Pool][b.Name] = b.Weight, b.Weight
	}
	return e
}

// Run explores until ctx is done, calling emit for every change applied. A
// failed change is logged and skipped; Run returns nil when ctx ends.
func (e *Explorer) Run(ctx context.Context, emit func(Change) error) error {
	if len(e.weights) == 0 {
		return errors.New("explore: no pools")
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(e.Every)
	defer t.Stop()
	for step := 1; ; step++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		changes := e.plan(step)
		if len(changes) == 0 {
			continue
		}
		pool := changes[0].Pool
		ws := map[string]int{}
		for _, c := range changes {
			ws[c.Server] = c.New
		}
		sctx, cancel := context.WithTimeout(ctx, max(e.Every, 15*time.Second))
		err := e.Setter.SetWeights(sctx, pool, ws)
		cancel()
		if err != nil {
			e.Log.Warn("explore: weight change failed", "pool", pool, "weights", ws, "err", err)
			continue
		}
		now := e.Now().UTC()
		for _, c := range changes {
			e.weights[c.Pool][c.Server] = c.New
			c.Time = now
			if err := emit(c); err != nil {
				return fmt.Errorf("explore: record change: %w", err)
			}
		}
		e.Log.Info("explore: weights set", "pool", pool, "weights", ws)
	}
}

// plan returns the changes of one step, all in one pool.
func (e *Explorer) plan(step int) []Change {
	pools := make([]string, 0, len(e.weights))
	for p := range e.weights {
		pools = append(pools, p)
	}
	sort.Strings(pools)
	pool := pools[e.Rand.IntN(len(pools))]
	servers := make([]string, 0, len(e.weights[pool]))
	for s := range e.weights[pool] {
		servers = append(servers, s)
	}
	sort.Strings(servers)
	var out []Change
	if e.ResetEvery > 0 && step%e.ResetEvery == 0 {
		for _, s := range servers {
			if w := e.initial[pool][s]; w != e.weights[pool][s] {
				out = append(out, Change{Pool: pool, Server: s, Old: e.weights[pool][s], New: w, Reason: "reset"})
			}
		}
		return out
	}
	s := servers[e.Rand.IntN(len(servers))]
	w := 1 + e.Rand.IntN(max(1, e.MaxWeight))
	if w == e.weights[pool][s] {
		return nil
	}
	return []Change{{Pool: pool, Server: s, Old: e.weights[pool][s], New: w, Reason: "random"}}
}
