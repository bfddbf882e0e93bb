package sim

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Balancer names a balancing algorithm.
type Balancer string

// The balancing algorithms the simulator reproduces.
const (
	// LeastConn is NGINX least_conn: the up server with the fewest active
	// (in service + queued) requests per unit of weight; ties rotate.
	LeastConn Balancer = "least_conn"
	// SmoothWRR is NGINX's default smooth weighted round robin.
	SmoothWRR Balancer = "swrr"
	// TwoChoices is random two choices: two distinct random up servers, the
	// one with fewer active requests per unit of weight wins.
	TwoChoices Balancer = "p2c"
	// HAProxyRR is HAProxy `balance roundrobin` with weights: a smooth
	// weighted interleaving, precomputed once per change of servers or weights.
	HAProxyRR Balancer = "haproxy_rr"
)

// Class is one request class (e.g. light, medium, heavy).
type Class struct {
	Name string `yaml:"name"`
	// Share is the class's fraction of the pool's arrivals; shares are
	// normalised to sum to 1.
	Share float64 `yaml:"share"`
	// Service is the work per request, in seconds on a Speed 1 server.
	Service Dist `yaml:"service"`
}

// Failures injects server failures into a pool. A failed server loses its
// in-service and queued requests (counted as failed) and shows as down in
// the next snapshot, then leaves the pool.
type Failures struct {
	// At are times from the start at which one random up server fails.
	At []time.Duration `yaml:"at"`
	// PerServerHour is the failure rate of each up server (Poisson).
	PerServerHour float64 `yaml:"per_server_hour"`
	// Replace boots a replacement for every failed server.
	Replace bool `yaml:"replace"`
}

// PoolConfig describes one simulated pool.
type PoolConfig struct {
	Name string `yaml:"name"`
	// Share is the pool's fraction of the trace's arrivals (default: all of
	// it for one pool, an equal part for several).
	Share float64 `yaml:"share"`
	// Servers is the number of servers up at t = 0.
	Servers int `yaml:"servers"`
	// Speed is each server's speed factor (service time = demand / Speed).
	Speed float64 `yaml:"speed"`
	// Slots is each server's concurrency cap: requests served at once;
	// more wait in the server's FIFO queue. Default 1.
	Slots int `yaml:"slots"`
	// MaxQueue is the longest queue a server accepts; a request routed to a
	// server with a full queue is dropped. 0 = unbounded.
	MaxQueue int `yaml:"max_queue"`
	// Weight is the initial weight of every server (default 1).
	Weight int `yaml:"weight"`
	// Balancer is the balancing algorithm (default least_conn).
	Balancer Balancer `yaml:"balancer"`
	// BootDelay is how long a new server takes before it serves.
	BootDelay time.Duration `yaml:"boot_delay"`
	// Classes are the request classes (default: one exponential class of
	// mean 1 s).
	Classes []Class `yaml:"classes"`
	// Failures injects server failures.
	Failures Failures `yaml:"failures"`
	// StatsSamples, when > 0, makes the pool report what HAProxy's stats
	// socket reports instead of exact interval figures: each server's
	// mean response time is a sliding average over its last StatsSamples
	// requests (HAProxy's qtime+ctime+rtime, TIME_STATS_SAMPLES = 512),
	// with no latency sum and no percentiles. At a few requests per
	// server and second it lags the load by minutes, as the real one does.
	StatsSamples int `yaml:"stats_samples"`
}

// HAProxyStatsSamples is HAProxy's TIME_STATS_SAMPLES, the length of its
// per-server sliding averages of queue, connect and response times.
const HAProxyStatsSamples = 512

// Config describes a simulation.
type Config struct {
	// Start is the wall-clock time of t = 0, used for snapshot times
	// (default 2000-01-01T00:00:00Z).
	Start time.Time
	// Seed makes the run reproducible: the same seed gives the same
	// arrivals and service demands whatever the policy does.
	Seed uint64
	// Trace is the total arrival rate.
	Trace *Trace
	// Pools are the simulated pools.
	Pools []PoolConfig
}

// ErrConfig marks an invalid simulation configuration.
var ErrConfig = errors.New("invalid simulation config")

// WithDefaults returns c with zero values filled: start 2000-01-01 UTC,
// share 1/len(pools), speed 1, slots 1, weight 1, least_conn, one exponential
// class of mean 1 s.
func (c Config) WithDefaults() Config {
	if c.Start.IsZero() {
		c.Start = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	pools := make([]PoolConfig, len(c.Pools))
	copy(pools, c.Pools)
	for i := range pools {
		p := &pools[i]
		if p.Share == 0 {
			p.Share = 1 / float64(len(pools))
		}
		if p.Speed == 0 {
			p.Speed = 1
		}
		if p.Slots == 0 {
			p.Slots = 1
		}
		if p.Weight == 0 {
			p.Weight = 1
		}
		if p.Balancer == "" {
			p.Balancer = LeastConn
		}
		if len(p.Classes) == 0 {
			p.Classes = []Class{{Name: "medium", Share: 1, Service: Dist{Kind: "exp", Mean: 1}}}
		}
	}
	c.Pools = pools
	return c
}

// Validate reports every problem of a defaulted config, joined.
func (c Config) Validate() error {
	var errs []error
	if c.Trace == nil || len(c.Trace.Times) == 0 {
		errs = append(errs, errors.New("no trace"))
	} else {
		for i, r := range c.Trace.Rates {
			// A NaN or infinite rate never advances the arrival clock.
			if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
				errs = append(errs, fmt.Errorf("trace %s: rate %v at step %d: want a finite rate >= 0", c.Trace.Name, r, i))
				break
			}
		}
	}
	if len(c.Pools) == 0 {
		errs = append(errs, errors.New("no pools"))
	}
	seen := map[string]bool{}
	for i, p := range c.Pools {
		name := p.Name
		if name == "" {
			errs = append(errs, fmt.Errorf("pool %d: empty name", i))
			name = fmt.Sprint(i)
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("pool %s: duplicate name", name))
		}
		seen[name] = true
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("pool %s: "+format, append([]any{name}, a...)...))
		}
		if !(p.Share > 0) || math.IsInf(p.Share, 0) {
			bad("share %v must be positive", p.Share)
		}
		if p.Servers < 0 {
			bad("servers %d is negative", p.Servers)
		}
		if !(p.Speed > 0) || math.IsInf(p.Speed, 0) {
			bad("speed %v must be positive", p.Speed)
		}
		if p.Slots < 1 {
			bad("slots %d must be >= 1", p.Slots)
		}
		if p.MaxQueue < 0 {
			bad("max_queue %d is negative", p.MaxQueue)
		}
		if p.Weight < 0 {
			bad("weight %d is negative", p.Weight)
		}
		if p.BootDelay < 0 {
			bad("boot_delay %v is negative", p.BootDelay)
		}
		if p.StatsSamples < 0 {
			bad("stats_samples %d is negative", p.StatsSamples)
		}
		switch p.Balancer {
		case LeastConn, SmoothWRR, TwoChoices, HAProxyRR:
		default:
			bad("unknown balancer %q (want least_conn, swrr, p2c or haproxy_rr)", p.Balancer)
		}
		for j, cl := range p.Classes {
			if !(cl.Share > 0) || math.IsInf(cl.Share, 0) {
				bad("class %d (%s): share %v must be positive", j, cl.Name, cl.Share)
			}
			if err := cl.Service.Validate(); err != nil {
				bad("class %d (%s): %v", j, cl.Name, err)
			}
		}
		if p.Failures.PerServerHour < 0 {
			bad("failures per_server_hour %v is negative", p.Failures.PerServerHour)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

// MeanService is the mean service demand of a pool's request mix in
// seconds on a Speed 1 server (classes weighted by share).
func (p PoolConfig) MeanService() float64 {
	var sum, w float64
	for _, c := range p.Classes {
		sum += c.Share * c.Service.Mean
		w += c.Share
	}
	if w == 0 {
		return 0
	}
	return sum / w
}

// ServiceRate is the requests per second one of the pool's servers
// sustains: Slots x Speed / MeanService.
func (p PoolConfig) ServiceRate() float64 {
	m := p.MeanService()
	if m == 0 {
		return 0
	}
	return float64(max(p.Slots, 1)) * math.Max(p.Speed, 0) / m
}

// ServiceSCV is the squared coefficient of variation of the pool's service
// demand over its class mix: E[S²]/E[S]² - 1 with E[S²] = Σ share·mean²·(1+scv)
// (exponential classes count scv 1, deterministic 0).
func (p PoolConfig) ServiceSCV() float64 {
	var m1, m2, w float64
	for _, c := range p.Classes {
		scv := c.Service.SCV
		if c.Service.Kind == "exp" || (c.Service.Kind == "" && scv == 0) {
			scv = 1
		}
		m1 += c.Share * c.Service.Mean
		m2 += c.Share * c.Service.Mean * c.Service.Mean * (1 + scv)
		w += c.Share
	}
	if m1 == 0 {
		return 1
	}
	m1, m2 = m1/w, m2/w
	return m2/(m1*m1) - 1
}
