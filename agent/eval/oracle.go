package eval

import (
	"context"
	"fmt"
	"github.com/lbtune/lbtune/agent"
	"math"
	"time"

	"github.com/lbtune/lbtune/agent/queueing"
	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/collector"
)

// OracleConfig tells the oracle the future: the pool's arrival rate over
// the whole run and its servers' service rate.
type OracleConfig struct {
	// Trace is the arrival rate; Share the pool's fraction of it (0 = 1).
	Trace *sim.Trace
	Share float64
	// ServiceRate is the requests per second one slot of a server serves;
	// Slots is each server's concurrency cap (0 = 1): the pool is sized as
	// an M/M/(servers x Slots) queue.
	ServiceRate float64
	Slots       int
	// SCV is the service demand's squared coefficient of variation
	// (0 = 1, exponential); above 1 the waits are scaled up (Allen-Cunneen).
	SCV float64
	// TargetP95 is the response-time target.
	TargetP95 time.Duration
	// BootDelay is how long a new server takes to serve; Interval is the
	// decision interval.
	BootDelay, Interval time.Duration
	// Start is the wall-clock time of the trace's t = 0 (the simulator's
	// Config.Start).
	Start time.Time
	// Min and Max bound the count (Max 0 = none).
	Min, Max int
	// Headroom is the fraction of TargetP95 the M/M/c p95 is sized for
	// (0 = DefaultOracleHeadroom).
	Headroom float64
}

// DefaultOracleHeadroom sizes the oracle's M/M/c model for a p95 of 0.8 x
// the target. M/M/c has one shared queue; a balanced pool has one FIFO queue
// per server, and even least_conn (join the shortest queue) has a longer
// tail: at the M/M/c minimum the simulated p95 exceeds the target in most
// minutes, at 0.8 x target it meets it in about every minute (measured at
// 4 to 17 servers, 70-90% utilisation; see docs/DESIGN.md).
const DefaultOracleHeadroom = 0.8

// Oracle is the clairvoyant baseline: for every minute it knows the
// arrival rate and sizes the pool with the fewest servers whose M/M/c
// response-time p95 (Erlang-C, with the Allen-Cunneen correction for
// non-exponential service) meets Headroom x the target. Since a server ordered now
// serves only after the boot delay and the next decision comes one interval
// later, each decision asks for the largest need over [now, now + interval
// + boot delay]: capacity needed then must be ordered now, and a server
// removed now cannot come back before then. Weights are proportional to
// capacity. No causal policy meeting the same SLO should use fewer
// server-hours; eval reports it as the bound.
type Oracle struct {
	cfg  OracleConfig
	need []int // per minute
}

// NewOracle precomputes the per-minute needs; it panics on a nil trace or a
// non-positive service rate (programmer error).
func NewOracle(cfg OracleConfig) *Oracle {
	if cfg.Trace == nil || !(cfg.ServiceRate > 0) {
		panic("eval: oracle needs a trace and a positive service rate")
	}
	if cfg.Share == 0 {
		cfg.Share = 1
	}
	if cfg.SCV == 0 {
		cfg.SCV = 1
	}
	if cfg.Headroom == 0 {
		cfg.Headroom = DefaultOracleHeadroom
	}
	o := &Oracle{cfg: cfg}
	maxC := cfg.Max
	if maxC <= 0 {
		maxC = 1 << 16
	}
	target := cfg.TargetP95.Seconds() * cfg.Headroom
	minutes := int(math.Ceil(cfg.Trace.End / 60))
	o.need = make([]int, minutes)
	cache := map[float64]int{}
	for m := range minutes {
		lambda := meanRate(cfg.Trace, float64(m)*60, float64(m+1)*60) * cfg.Share
		c, ok := cache[lambda]
		if !ok {
			slots := max(cfg.Slots, 1)
			c = (queueing.MinServersSCV(lambda, cfg.ServiceRate, cfg.SCV, target, 0.95, maxC*slots) + slots - 1) / slots
			cache[lambda] = c
		}
		o.need[m] = agent.Template{Min: cfg.Min, Max: cfg.Max}.Clamp(c)
	}
	return o
}

// meanRate is the trace's mean rate over [from, to) seconds.
func meanRate(tr *sim.Trace, from, to float64) float64 {
	var sum float64
	for i, t0 := range tr.Times {
		t1 := tr.End
		if i+1 < len(tr.Times) {
			t1 = tr.Times[i+1]
		}
		if t1 <= from {
			continue
		}
		if t0 >= to {
			break
		}
		sum += tr.Rates[i] * (math.Min(t1, to) - math.Max(t0, from))
	}
	return sum / (to - from)
}

// Need is the number of servers the oracle orders at time at (since the
// trace start): the largest per-minute need over [at, at + interval + boot
// delay].
func (o *Oracle) Need(at time.Duration) int {
	from := int(at / time.Minute)
	to := int((at + o.cfg.Interval + o.cfg.BootDelay) / time.Minute)
	n := 0
	for m := max(from, 0); m <= to && m < len(o.need); m++ {
		n = max(n, o.need[m])
	}
	if n == 0 {
		n = agent.Template{Min: o.cfg.Min, Max: o.cfg.Max}.Clamp(1)
	}
	return n
}

// Name is "oracle".
func (o *Oracle) Name() string { return "oracle" }

// Decide orders Need at the observation's time, with weights proportional
// to capacity when the servers differ.
func (o *Oracle) Decide(_ context.Context, obs agent.Observation) (agent.Decision, error) {
	at := obs.Time.Sub(o.cfg.Start)
	n := o.Need(at)
	minute := min(max(int(at/time.Minute), 0), len(o.need)-1)
	d := agent.Decision{Policy: o.Name(), Servers: n,
		Reason: fmt.Sprintf("oracle: %d servers meet p95 %v until %v from now (boot %v)", n, o.cfg.TargetP95, o.cfg.Interval+o.cfg.BootDelay, o.cfg.BootDelay),
		Metrics: map[string]float64{
			"rate":     meanRate(o.cfg.Trace, at.Seconds(), at.Seconds()+60) * o.cfg.Share,
			"need_now": float64(o.need[minute]), "need": float64(n),
		}}
	d.Weights = capacityWeightsFor(obs.Latest, obs.Capacity, obs.Template.MaxWeight)
	return d, nil
}

// capacityWeightsFor returns weights proportional to each up server's
// capacity (the largest gets min(MaxWeight, 100)), or nil when every
// server has the same capacity.
func capacityWeightsFor(pr collector.PoolRates, capacity map[string]float64, maxWeight int) map[string]int {
	if len(capacity) == 0 {
		return nil
	}
	var hi, lo float64
	for _, s := range pr.Servers {
		c := capacity[s.Name]
		if c <= 0 {
			c = 1
		}
		if hi == 0 || c > hi {
			hi = c
		}
		if lo == 0 || c < lo {
			lo = c
		}
	}
	if hi == lo {
		return nil
	}
	top := 100
	if maxWeight > 0 {
		top = min(top, maxWeight)
	}
	w := make(map[string]int, len(pr.Servers))
	for _, s := range pr.Servers {
		c := capacity[s.Name]
		if c <= 0 {
			c = 1
		}
		w[s.Name] = max(1, int(math.Round(float64(top)*c/hi)))
	}
	return w
}
