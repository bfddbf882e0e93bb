package tuner

import (
	"fmt"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/tuner/config"
)

// A simulated pool's cluster is its source and its applier at once.
var _ agent.Applier = (*sim.Live)(nil)

// simHorizon is how much simulated time repeated phases cover, and
// simMaxPhases the most repeated phases built to cover it (short phases
// cover less: the load stops at the end of the last).
const (
	simHorizon   = 14 * 24 * time.Hour
	simMaxPhases = 100_000
)

// simMaxQueue is the most requests a simulated server queues; more are
// dropped and counted as errors, as a real server's accept queue would.
// It bounds the simulator's memory under overload (docs/OPERATIONS.md,
// "Setting ranges").
const simMaxQueue = 1000

// newSim builds the simulated cluster of pool p. A resumed pool
// (st.SimStart set) starts at its persisted clock plus margin, with the
// servers last applied, so its clock never goes back and nothing it did is
// done again. onPhase is told each change of the offered rate.
func newSim(p config.Pool, st PoolState, resumed bool, margin time.Duration, wall func() time.Time, onPhase func(time.Time, float64), last *collector.Snapshot) (*sim.Live, error) {
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
		for total < simHorizon && len(phases) < simMaxPhases {
			for _, ph := range sc.Phases {
				if ph.Duration <= 0 || !(ph.RPS >= 0) {
					return nil, fmt.Errorf("pool %s: sim phase of %s at %v rps: want a positive duration and rate (config.Validate)", p.Name, ph.Duration, ph.RPS)
				}
				phases = append(phases, sim.Phase{Duration: ph.Duration, RPS: ph.RPS})
				total += ph.Duration
			}
		}
		tr = sim.Synthetic(p.Name, phases, nil)
	}
	if sc.Scale != 1 {
		tr = tr.Scaled(sc.Scale)
	}
	// A trace's rates are only known now: bound the simulated load here
	// as Validate does for phases.
	for _, r := range tr.Rates {
		if !(r <= config.MaxSimRPS) {
			return nil, fmt.Errorf("pool %s: sim: peak rate %v req/s (x scale %v): want at most %v simulated req/s per pool", p.Name, r, sc.Scale, float64(config.MaxSimRPS))
		}
		if r*sc.Speedup > config.MaxSimWallRPS {
			return nil, fmt.Errorf("pool %s: sim: peak rate %v req/s (x scale %v) x speedup %v: want at most %v req/s of wall-clock time", p.Name, r, sc.Scale, sc.Speedup, float64(config.MaxSimWallRPS))
		}
	}
	tr.Name = p.Name

	servers := sc.Servers
	if servers == 0 {
		servers = max(p.Template.Min, 1)
	}
	start := wall().UTC().Truncate(time.Second)
	var base time.Duration
	var resume *collector.Snapshot
	if resumed && !st.SimStart.IsZero() {
		resume = last
		start, base = st.SimStart, st.SimElapsed+margin
		if st.Servers > 0 {
			servers = st.Servers
		}
	}
	pc := sim.PoolConfig{
		Name: p.Name, Servers: servers, BootDelay: sc.BootDelay, Weight: 100, MaxQueue: simMaxQueue,
		Balancer: sim.LeastConn,
		Classes:  []sim.Class{{Name: "request", Share: 1, Service: sim.Dist{Kind: "exp", Mean: sc.ServiceMs / 1000}}},
	}
	if len(p.Template.Sizes) > 0 {
		pc.Speed = p.Template.Sizes[0].Speed
		pc.Slots = p.Template.Sizes[0].Concurrency
	}
	l, err := sim.NewLive(sim.LiveConfig{
		Sim:     sim.Config{Start: start, Seed: uint64(sc.Seed), Trace: tr, Pools: []sim.PoolConfig{pc}},
		Speedup: sc.Speedup, Elapsed: base, Wall: wall, OnPhase: onPhase, Resume: resume,
	})
	if err != nil {
		return nil, fmt.Errorf("pool %s: simulator: %w", p.Name, err)
	}
	return l, nil
}

// simScrape is the wall-clock scrape interval of a simulated pool: one
// scrape interval of simulated time, but not more often than every 100 ms,
// which a store commit (an fsync) can sustain.
func simScrape(scrape time.Duration, speedup float64) time.Duration {
	return max(time.Duration(float64(scrape)/speedup), 100*time.Millisecond)
}
