package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/tuner/config"
)

// daemonSim is a simulated cluster standing in for a balancer and its
// servers: the pool's collector.Source and agent.Applier at once. Its clock
// runs Speedup times faster than the wall clock; the simulator is advanced
// to that clock before every use. Safe for concurrent use.
type daemonSim struct {
	mu  sync.Mutex
	sim *sim.Sim
	// start is the simulation's t = 0; base is its elapsed time at wall0.
	start   time.Time
	base    time.Duration
	wall0   time.Time
	speedup float64
	wall    func() time.Time
	name    string
	// trace is the arrival rate; phase is the index of its current step.
	trace *sim.Trace
	phase int
	// onPhase is told each time the offered rate changes (nil: nobody).
	onPhase func(at time.Time, rps float64)
}

var (
	_ collector.Source = (*daemonSim)(nil)
	_ agent.Applier    = (*daemonSim)(nil)
)

// daemonSimHorizon is how much simulated time repeated phases cover.
const daemonSimHorizon = 14 * 24 * time.Hour

// newDaemonSim builds the simulated cluster of pool p. A resumed pool
// (st.SimStart set) starts at its persisted clock plus margin, with the
// servers last applied, so its clock never goes back and nothing it did is
// done again.
func newDaemonSim(p config.Pool, st daemonPoolState, resumed bool, margin time.Duration, wall func() time.Time) (*daemonSim, error) {
	sc := p.Sim
	var tr *sim.Trace
	if sc.Trace != "" {
		t, err := sim.ReadTraceFile(sc.Trace)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		if sc.From > 0 {
			if t, err = t.Slice(sc.From, t.Duration()); err != nil {
				return nil, fmt.Errorf("pool %s: trace %s from %s: %w", p.Name, sc.Trace, sc.From, err)
			}
		}
		tr = t
	} else {
		var phases []sim.Phase
		var total time.Duration
		for total < daemonSimHorizon {
			for _, ph := range sc.Phases {
				phases = append(phases, sim.Phase{Duration: ph.Duration, RPS: ph.RPS})
				total += ph.Duration
			}
		}
		tr = sim.Synthetic(p.Name, phases, nil)
	}
	if sc.Scale != 1 {
		tr = tr.Scaled(sc.Scale)
	}
	tr.Name = p.Name

	servers := sc.Servers
	if servers == 0 {
		servers = max(p.Template.Min, 1)
	}
	start := wall().UTC().Truncate(time.Second)
	var base time.Duration
	if resumed && !st.SimStart.IsZero() {
		start, base = st.SimStart, st.SimElapsed+margin
		if st.Servers > 0 {
			servers = st.Servers
		}
	}
	pc := sim.PoolConfig{
		Name: p.Name, Servers: servers, BootDelay: sc.BootDelay, Weight: 100,
		Balancer: sim.LeastConn,
		Classes:  []sim.Class{{Name: "request", Share: 1, Service: sim.Dist{Kind: "exp", Mean: sc.ServiceMs / 1000}}},
	}
	if len(p.Template.Sizes) > 0 {
		pc.Speed = p.Template.Sizes[0].Speed
		pc.Slots = p.Template.Sizes[0].Concurrency
	}
	s, err := sim.New(sim.Config{Start: start, Seed: uint64(sc.Seed), Trace: tr, Pools: []sim.PoolConfig{pc}})
	if err != nil {
		return nil, fmt.Errorf("pool %s: simulator: %w", p.Name, err)
	}
	// Fast-forward a resumed simulation to where it stopped.
	s.Advance(base)
	ds := &daemonSim{sim: s, start: start, base: base, wall0: wall(), speedup: sc.Speedup, wall: wall, name: p.Name, trace: tr, phase: -1}
	if base > 0 {
		// A resumed simulation already reported the phase it is in.
		for ds.phase+1 < len(tr.Times) && tr.Times[ds.phase+1] <= base.Seconds() {
			ds.phase++
		}
	}
	return ds, nil
}

// serviceRate is the requests/s a reference server (speed 1, one slot)
// sustains; the simulator reports each server's capacity relative to it.
func (s *daemonSim) serviceRate() float64 {
	return 1 / s.sim.Config().Pools[0].MeanService()
}

// elapsed is the simulated time since t = 0.
func (s *daemonSim) elapsed() time.Duration {
	return s.base + time.Duration(float64(s.wall().Sub(s.wall0))*s.speedup)
}

// clock is the simulated wall-clock time.
func (s *daemonSim) clock() time.Time { return s.start.Add(s.elapsed()) }

func (s *daemonSim) advanceLocked() { s.sim.Advance(s.elapsed()) }

// String names the source: "sim:POOL".
func (s *daemonSim) String() string { return "sim:" + s.name }

// Scrape returns the simulated balancer's snapshot now.
func (s *daemonSim) Scrape(ctx context.Context) (collector.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	return s.sim.Scrape(ctx)
}

// Scale brings the simulated pool to n serving servers.
func (s *daemonSim) Scale(ctx context.Context, pool string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	return s.sim.Scale(ctx, pool, n)
}

// SetWeights sets simulated servers' weights.
func (s *daemonSim) SetWeights(ctx context.Context, pool string, w map[string]int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	return s.sim.SetWeights(ctx, pool, w)
}

// Booting is the number of simulated servers still booting.
func (s *daemonSim) Booting(pool string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sim.Booting(pool)
}

// Capacities are the simulated servers' relative capacities.
func (s *daemonSim) Capacities(pool string) map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sim.Capacities(pool)
}

// reportPhase tells onPhase when the trace has entered a new step with a
// different rate (the load phases plotted on charts).
func (s *daemonSim) reportPhase() {
	el := s.elapsed().Seconds()
	i := s.phase
	for i+1 < len(s.trace.Times) && s.trace.Times[i+1] <= el {
		i++
	}
	if i == s.phase || i < 0 {
		return
	}
	changed := s.phase < 0 || s.trace.Rates[i] != s.trace.Rates[s.phase]
	s.phase = i
	if changed && s.onPhase != nil {
		s.onPhase(s.start.Add(time.Duration(s.trace.Times[i]*float64(time.Second))), s.trace.Rates[i])
	}
}

// run advances the simulation every 100 ms of wall time, so its work is
// spread evenly rather than done in bursts at each scrape.
func (s *daemonSim) run(ctx context.Context) error {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			s.mu.Lock()
			s.advanceLocked()
			s.mu.Unlock()
			s.reportPhase()
		}
	}
}
