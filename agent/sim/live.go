package sim

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// LiveConfig configures a Live simulation.
type LiveConfig struct {
	// Sim is the simulation; Sim.Start is its t = 0 and Sim.Trace its load.
	Sim Config
	// Speedup is simulated seconds per wall-clock second (> 0).
	Speedup float64
	// Elapsed is the simulated time already run before this start: a
	// resumed simulation is fast-forwarded to it, so its clock never goes
	// back.
	Elapsed time.Duration
	// Wall is the wall clock (time.Now when nil).
	Wall func() time.Time
	// Resume, when set, is the last snapshot this simulated source stored
	// before the restart: counters continue from it (see Live.Scrape).
	Resume *collector.Snapshot
	// OnPhase, when set, is told each time the offered rate changes: the
	// simulated time the trace's new step starts and its rate.
	OnPhase func(at time.Time, rps float64)
}

// Live is a simulated cluster run against the wall clock, standing in for
// a balancer and its servers in the online tuner: a collector.Source and an
// applier of decisions (SetWeights, Scale, Booting, Capacities) at once.
// Its clock runs Speedup times faster than the wall clock; the simulator is
// advanced to that clock before every use and by Run in between. Safe for
// concurrent use.
type Live struct {
	mu  sync.Mutex
	sim *Sim
	// start is the simulation's t = 0; base is its elapsed time at wall0.
	start   time.Time
	base    time.Duration
	wall0   time.Time
	speedup float64
	wall    func() time.Time
	// trace is the arrival rate; phase is the index of its current step.
	trace   *Trace
	phase   int
	onPhase func(at time.Time, rps float64)
	// resume and at0 carry the counters across a restart: resume is the
	// last stored snapshot, at0 the fast-forwarded simulation's snapshot at
	// the restart (nil: a fresh start, counters as simulated).
	resume, at0 *collector.Snapshot
}

var _ collector.Source = (*Live)(nil)

// NewLive builds the simulation of c and fast-forwards it to c.Elapsed.
func NewLive(c LiveConfig) (*Live, error) {
	if !(c.Speedup > 0) || math.IsInf(c.Speedup, 0) {
		return nil, fmt.Errorf("live simulation: speedup %v: %w", c.Speedup, ErrConfig)
	}
	if c.Wall == nil {
		c.Wall = time.Now
	}
	s, err := New(c.Sim)
	if err != nil {
		return nil, err
	}
	// Fast-forward a resumed simulation to where it stopped.
	s.Advance(c.Elapsed)
	tr := s.Config().Trace
	l := &Live{sim: s, start: s.Config().Start, base: c.Elapsed, wall0: c.Wall(), speedup: c.Speedup, wall: c.Wall,
		trace: tr, phase: -1, onPhase: c.OnPhase}
	if c.Resume != nil {
		// The fast-forward re-simulates from t = 0 with the servers last
		// applied, so its counters are not the ones stored before the
		// restart: some would go backwards and every interval across the
		// restart would look like a counter reset. Scrape reports the
		// stored counters plus what happened since the restart instead.
		at0, err := s.Scrape(context.Background())
		if err != nil {
			return nil, fmt.Errorf("live simulation: snapshot at resume: %w", err)
		}
		r := *c.Resume
		l.resume, l.at0 = &r, &at0
	}
	if c.Elapsed > 0 {
		// A resumed simulation already reported the phase it is in.
		for l.phase+1 < len(tr.Times) && tr.Times[l.phase+1] <= c.Elapsed.Seconds() {
			l.phase++
		}
	}
	return l, nil
}

// ServiceRate is the requests/s a reference server (speed 1, one slot) of
// the first pool sustains; the simulator reports each server's capacity
// relative to it.
func (l *Live) ServiceRate() float64 {
	return 1 / l.sim.Config().Pools[0].MeanService()
}

// Speedup is simulated seconds per wall-clock second.
func (l *Live) Speedup() float64 { return l.speedup }

// Start is the simulation's t = 0.
func (l *Live) Start() time.Time { return l.start }

// Elapsed is the simulated time since t = 0.
func (l *Live) Elapsed() time.Duration {
	return l.base + time.Duration(float64(l.wall().Sub(l.wall0))*l.speedup)
}

// Now is the simulated wall-clock time: Start + Elapsed.
func (l *Live) Now() time.Time { return l.start.Add(l.Elapsed()) }

func (l *Live) advanceLocked() { l.sim.Advance(l.Elapsed()) }

// String names the source: "sim:" and the trace's name.
func (l *Live) String() string { return l.sim.String() }

// Scrape returns the simulated balancer's snapshot now.
func (l *Live) Scrape(ctx context.Context) (collector.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advanceLocked()
	snap, err := l.sim.Scrape(ctx)
	if err != nil || l.resume == nil {
		return snap, err
	}
	continueCounters(&snap, l.at0, l.resume)
	return snap, nil
}

// continueCounters rewrites cur's counters as resume's plus the increase
// since at0 (the simulation at the restart), server by server: a resumed
// simulation's counters then continue the stored history. A server absent
// from resume counts from zero at the restart; one absent from at0 (new
// since) keeps its own counters on top of resume's.
func continueCounters(cur, at0, resume *collector.Snapshot) {
	for i := range cur.Pools {
		cp := &cur.Pools[i]
		p0, pr := at0.Pool(cp.Name), resume.Pool(cp.Name)
		for j := range cp.Servers {
			cs := &cp.Servers[j]
			var base, prior collector.Counters
			if p0 != nil {
				if s := p0.Server(cs.Name); s != nil {
					base = s.Counters
				}
			}
			if pr != nil {
				if s := pr.Server(cs.Name); s != nil {
					prior = s.Counters
				}
			}
			c := &cs.Counters
			add := func(v *uint64, b, p uint64) {
				if *v >= b {
					*v = p + (*v - b)
				} else {
					*v = p
				}
			}
			add(&c.Requests, base.Requests, prior.Requests)
			add(&c.BytesIn, base.BytesIn, prior.BytesIn)
			add(&c.BytesOut, base.BytesOut, prior.BytesOut)
			add(&c.Errors, base.Errors, prior.Errors)
			add(&c.LatencySumMs, base.LatencySumMs, prior.LatencySumMs)
			for k := range c.Responses {
				add(&c.Responses[k], base.Responses[k], prior.Responses[k])
			}
		}
	}
}

// Scale brings the simulated pool to n serving servers.
func (l *Live) Scale(ctx context.Context, pool string, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advanceLocked()
	return l.sim.Scale(ctx, pool, n)
}

// SetWeights sets simulated servers' weights.
func (l *Live) SetWeights(ctx context.Context, pool string, w map[string]int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advanceLocked()
	return l.sim.SetWeights(ctx, pool, w)
}

// Booting is the number of simulated servers still booting.
func (l *Live) Booting(pool string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sim.Booting(pool)
}

// Capacities are the simulated servers' relative capacities.
func (l *Live) Capacities(pool string) map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sim.Capacities(pool)
}

// reportPhase tells onPhase when the trace has entered a new step with a
// different rate (the load phases plotted on charts).
func (l *Live) reportPhase() {
	el := l.Elapsed().Seconds()
	i := l.phase
	for i+1 < len(l.trace.Times) && l.trace.Times[i+1] <= el {
		i++
	}
	if i == l.phase || i < 0 {
		return
	}
	changed := l.phase < 0 || l.trace.Rates[i] != l.trace.Rates[l.phase]
	l.phase = i
	if changed && l.onPhase != nil {
		l.onPhase(l.start.Add(time.Duration(l.trace.Times[i]*float64(time.Second))), l.trace.Rates[i])
	}
}

// Run advances the simulation every 100 ms of wall time, so its work is
// spread evenly rather than done in bursts at each scrape, until ctx ends;
// it returns nil then.
func (l *Live) Run(ctx context.Context) error {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			l.mu.Lock()
			l.advanceLocked()
			l.mu.Unlock()
			l.reportPhase()
		}
	}
}
