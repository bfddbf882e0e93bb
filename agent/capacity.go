package agent

import (
	"math"
	"slices"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// CapacityConfig tunes a CapacityEstimator; zero fields take the defaults.
type CapacityConfig struct {
	// Horizon is how long a sample counts (default 30 min): long enough to
	// remember a server's busiest minutes through a quiet spell, short
	// enough to follow a server that was resized or replaced under the
	// same name.
	Horizon time.Duration
	// MinRequests is how many completed requests one sample needs (default
	// 20): a starved server's intervals are pooled until they reach it, so
	// its sample is a mean over enough requests, not one slow request.
	MinRequests float64
	// MinSamples is how many samples a server needs before it has an
	// estimate (default 3).
	MinSamples int
	// Quantile of a server's samples taken as its capacity (default 0.9):
	// the sample nearest saturation, where the estimate is exact (see
	// CapacityEstimator), without trusting the single highest one.
	Quantile float64
	// MaxAccumulate bounds how long intervals are pooled into one sample
	// (default 5 min): a server that stays nearly idle longer starts over,
	// so one sample never spans very different loads.
	MaxAccumulate time.Duration
}

func (c CapacityConfig) withDefaults() CapacityConfig {
	if c.Horizon <= 0 {
		c.Horizon = 30 * time.Minute
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 20
	}
	if c.MinSamples <= 0 {
		c.MinSamples = 3
	}
	if !(c.Quantile > 0 && c.Quantile <= 1) {
		c.Quantile = 0.9
	}
	if c.MaxAccumulate <= 0 {
		c.MaxAccumulate = 5 * time.Minute
	}
	return c
}

// capMaxSamples bounds a server's samples (the oldest go first): at 5 s
// intervals the 30 min horizon holds 360.
const capMaxSamples = 512

// CapacityEstimator estimates each server's relative capacity (its service
// rate: the inverse of its service time, times its slots) online from the
// per-server rates the collector gives, for balancers that do not know the
// servers' speeds (HAProxy, NGINX). The controller keeps one per pool and
// uses it when the Applier reports no capacities (the simulator does).
//
// Each sample is a server's completed-request rate X (requests/s, 5xx and
// connection errors left out) plus the inverse of its mean latency L over
// the same requests:
//
//	mu ~ X + 1/L
//
// For a single-slot FIFO server under Poisson arrivals (M/M/1) this is
// exact at every load: L = 1/(mu - X). It needs no idle period: a
// saturated server's X is its capacity (1/L is then small), an idle one's
// 1/L is (its service time is its latency). Reading the latency alone
// would not do: an overloaded slow server's latency is its queue, and the
// weights would starve it further (docs/RESULTS.md, issue 18 section 5).
// For a server with c slots the sample reads between 1/S (idle) and c/S
// (saturated), so a server's estimate is the Quantile of its samples over
// the Horizon: its busiest intervals, where it reads its full capacity.
// HAProxy's stats give L as a moving average over the server's last 1024
// requests, which lags X; the quantile also keeps a sample taken just
// after a server's load changed from deciding the estimate alone.
//
// Estimates are normalised so that their mean over the pool's servers is 1:
// the capacities then move weight between the servers and leave the
// pool's total (what the threshold fallback's utilisation divides by)
// where it was when they were unknown. A server with too few samples (just
// added, or starved of requests) has no entry, which the policies read as
// 1, the pool's average. A server that leaves the pool's rates is
// forgotten. Fewer than two servers with estimates give no estimate (nil):
// the old behaviour, comparing raw latencies.
type CapacityEstimator struct {
	cfg     CapacityConfig
	servers map[string]*capServer
	present []string // servers of the latest observed rates, not backup
}

type capServer struct {
	// The intervals pooled into the next sample.
	count, latSum, secs float64
	samples             []capSample
}

type capSample struct {
	at time.Time
	mu float64
}

// NewCapacityEstimator returns an empty estimator.
func NewCapacityEstimator(cfg CapacityConfig) *CapacityEstimator {
	return &CapacityEstimator{cfg: cfg.withDefaults(), servers: map[string]*capServer{}}
}

// Observe adds one interval of the pool's rates, of length step, ending at
// at. Intervals of a server that is not up, was reset, is implausible, has
// no latency, or failed more than half its requests are left out.
func (e *CapacityEstimator) Observe(at time.Time, step time.Duration, pr *collector.PoolRates) {
	secs := step.Seconds()
	e.present = e.present[:0]
	seen := make(map[string]bool, len(pr.Servers))
	for i := range pr.Servers {
		s := &pr.Servers[i]
		if s.Backup {
			continue
		}
		seen[s.Name] = true
		e.present = append(e.present, s.Name)
		st := e.servers[s.Name]
		if st == nil {
			st = &capServer{}
			e.servers[s.Name] = st
		}
		st.drop(at.Add(-e.cfg.Horizon))
		if secs <= 0 || s.State != collector.StateUp || s.Reset || s.Implausible || s.ErrorRatio() > 0.5 {
			continue
		}
		x := capCompleted(s)
		if x > 0 && !(s.MeanLatencyMs > 0) {
			continue
		}
		st.count += x * secs
		st.latSum += s.MeanLatencyMs * x * secs
		st.secs += secs
		if st.count >= e.cfg.MinRequests {
			l := st.latSum / st.count / 1000
			st.add(capSample{at: at, mu: st.count/st.secs + 1/l})
			st.count, st.latSum, st.secs = 0, 0, 0
		} else if st.secs > e.cfg.MaxAccumulate.Seconds() {
			st.count, st.latSum, st.secs = 0, 0, 0
		}
	}
	for n := range e.servers {
		if !seen[n] {
			delete(e.servers, n)
		}
	}
}

// capCompleted is a server's rate of completed requests: its non-5xx
// responses where the source counts responses, else its requests less
// errors.
func capCompleted(s *collector.ServerRates) float64 {
	var all float64
	for _, r := range s.Responses {
		all += r
	}
	if all > 0 {
		return s.Responses[0] + s.Responses[1] + s.Responses[2] + s.Responses[3]
	}
	return s.Requests * (1 - s.ErrorRatio())
}

func (st *capServer) drop(before time.Time) {
	i := 0
	for i < len(st.samples) && st.samples[i].at.Before(before) {
		i++
	}
	if i > 0 {
		st.samples = append(st.samples[:0], st.samples[i:]...)
	}
}

func (st *capServer) add(s capSample) {
	if len(st.samples) >= capMaxSamples {
		st.samples = append(st.samples[:0], st.samples[1:]...)
	}
	st.samples = append(st.samples, s)
}

// Estimates maps each server of the latest observed rates that has enough
// samples to its relative capacity (mean 1 over those servers); nil when
// fewer than two servers have one.
func (e *CapacityEstimator) Estimates() map[string]float64 {
	raw := make(map[string]float64, len(e.present))
	var sum float64
	for _, n := range e.present {
		st := e.servers[n]
		if st == nil || len(st.samples) < e.cfg.MinSamples {
			continue
		}
		v := make([]float64, len(st.samples))
		for i, s := range st.samples {
			v[i] = s.mu
		}
		slices.Sort(v)
		q := v[min(len(v)-1, int(e.cfg.Quantile*float64(len(v))))]
		if !(q > 0) || math.IsInf(q, 0) {
			continue
		}
		raw[n] = q
		sum += q
	}
	if len(raw) < 2 {
		return nil
	}
	mean := sum / float64(len(raw))
	for n := range raw {
		raw[n] /= mean
	}
	return raw
}

// formatCapacities renders capacities as "s1 0.43 s2 0.86 s4 1.71", in
// server order.
func formatCapacities(c map[string]float64) string { return rlFormatSorted(c, "%s %.2f") }
