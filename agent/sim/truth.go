package sim

import (
	"math"
	"slices"
)

// MinuteTruth is the ground truth of one pool over one simulated minute.
type MinuteTruth struct {
	// Requests completed in the minute.
	Requests int
	// P95Ms is the exact 95th percentile of their response times (0 when
	// none completed).
	P95Ms float64
	// Failed counts requests dropped or lost to a failure in the minute.
	Failed int
	// Servers is the number of powered servers at the minute's end.
	Servers int
	// ServerSeconds integrates the powered servers over the minute (60 x
	// the minute's mean), what the minute's servers cost.
	ServerSeconds float64
}

// PoolTruth is what really happened in one pool, for scoring a policy.
type PoolTruth struct {
	Name string
	// Completed, Failed (lost to a server failure) and Dropped (no server
	// up, or the chosen server's queue full) count requests.
	Completed, Failed, Dropped uint64
	// SojournSeconds is the summed time in system of completed requests and
	// of queued requests lost to failures; divided by the elapsed time it is
	// the mean number of requests in the system (Little's law).
	SojournSeconds float64
	// ServerSeconds integrates the number of powered servers (booting,
	// serving or draining) over time.
	ServerSeconds float64
	// Actions counts scale orders that changed the count; Reversals those
	// against the previous order's direction within 5 minutes.
	Actions, Reversals int
	// Failures counts injected server failures.
	Failures int
	// Minutes holds one entry per completed simulated minute.
	Minutes []MinuteTruth
	// MeanMs, P50Ms, P95Ms, P99Ms summarise every completed request's
	// response time (percentiles within 0.3%, from a log histogram).
	MeanMs, P50Ms, P95Ms, P99Ms float64
}

// Truth returns the ground truth of every pool up to now. The returned
// values are copies.
func (s *Sim) Truth() []PoolTruth {
	out := make([]PoolTruth, len(s.pools))
	for i, p := range s.pools {
		s.setPowered(p, p.powered) // integrate server-seconds up to now
		t := p.truth
		t.Minutes = slices.Clone(p.truth.Minutes)
		if t.Completed > 0 {
			t.MeanMs = p.hist.sum / float64(p.hist.n)
			t.P50Ms = p.hist.quantile(0.50)
			t.P95Ms = p.hist.quantile(0.95)
			t.P99Ms = p.hist.quantile(0.99)
		}
		out[i] = t
	}
	return out
}

// histogram counts values (ms) in logarithmic buckets: 128 per power of two
// (relative width 0.54%), from the float64 bit pattern, so adding is a
// shift and an increment.
type histogram struct {
	counts []uint64
	n      uint64
	sum    float64
}

const (
	histSubBits = 7
	histMinExp  = -20 // 2^-20 ms, about 1 ns
	histMaxExp  = 40
)

func newHistogram() histogram {
	return histogram{counts: make([]uint64, (histMaxExp-histMinExp)<<histSubBits)}
}

func histIndex(v float64) int {
	if v <= 0 {
		return 0
	}
	b := math.Float64bits(v)
	i := int(b>>(52-histSubBits)) - (1023+histMinExp)<<histSubBits
	if i < 0 {
		return 0
	}
	if i >= (histMaxExp-histMinExp)<<histSubBits {
		return (histMaxExp-histMinExp)<<histSubBits - 1
	}
	return i
}

func (h *histogram) add(v float64) {
	h.counts[histIndex(v)]++
	h.n++
	h.sum += v
}

// quantile returns the midpoint of the bucket holding the q-quantile.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var c uint64
	for i, k := range h.counts {
		c += k
		if c >= rank {
			lo := math.Float64frombits(uint64(i+(1023+histMinExp)<<histSubBits) << (52 - histSubBits))
			hi := math.Float64frombits(uint64(i+1+(1023+histMinExp)<<histSubBits) << (52 - histSubBits))
			return (lo + hi) / 2
		}
	}
	return 0
}

// quantile32 returns the nearest-rank q-quantile of v (the ceil(q·n)-th
// smallest), reordering v in place; expected O(n) by quickselect.
func quantile32(v []float32, q float64) float32 {
	k := int(math.Ceil(q*float64(len(v)))) - 1
	if k < 0 {
		k = 0
	}
	lo, hi := 0, len(v)-1
	for lo < hi {
		// Median of three as the pivot.
		mid := lo + (hi-lo)/2
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		pivot := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}

// Overall summarises the response times of every completed request in
// every pool: mean, p50, p95 and p99 in ms (percentiles within 0.3%).
func (s *Sim) Overall() (meanMs, p50Ms, p95Ms, p99Ms float64) {
	all := newHistogram()
	for _, p := range s.pools {
		for i, c := range p.hist.counts {
			all.counts[i] += c
		}
		all.n += p.hist.n
		all.sum += p.hist.sum
	}
	if all.n == 0 {
		return 0, 0, 0, 0
	}
	return all.sum / float64(all.n), all.quantile(0.5), all.quantile(0.95), all.quantile(0.99)
}
