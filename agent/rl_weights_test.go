package agent

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// swrrQueues is a minimal discrete-event model of one balanced pool with
// heterogeneous servers: Poisson arrivals routed by NGINX's smooth weighted
// round robin to per-server FIFO queues with exponential service at each
// server's speed. agent/sim has one speed per pool, so the weight test
// carries this small model of its own.
type swrrQueues struct {
	speeds []float64
	rng    *rand.Rand
	free   []float64 // when each server finishes its queue
	cur    []int     // SWRR current weights
}

func newSWRRQueues(speeds []float64, seed uint64) *swrrQueues {
	return &swrrQueues{speeds: speeds, rng: rand.New(rand.NewPCG(seed, 1)),
		free: make([]float64, len(speeds)), cur: make([]int, len(speeds))}
}

// run sends n requests at rate lambda from time t with weights w and
// returns the response times per server and the end time.
func (q *swrrQueues) run(t, lambda float64, n int, w []int) (lat [][]float64, end float64) {
	lat = make([][]float64, len(q.speeds))
	total := 0
	for _, x := range w {
		total += x
	}
	for range n {
		t += q.rng.ExpFloat64() / lambda
		// Smooth WRR: add weights, pick the largest, subtract the total.
		best := 0
		for i := range q.cur {
			q.cur[i] += w[i]
			if q.cur[i] > q.cur[best] {
				best = i
			}
		}
		q.cur[best] -= total
		start := math.Max(t, q.free[best])
		q.free[best] = start + q.rng.ExpFloat64()/q.speeds[best]
		lat[best] = append(lat[best], q.free[best]-t)
	}
	return lat, t
}

func p95Of(lat [][]float64) float64 {
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	return all[int(0.95*float64(len(all)))]
}

// TestAgentWeightsHeterogeneous: on servers of speeds 1:2:4 the agent's
// weight actions, starting from equal weights and reading only per-server
// latencies, must reach weights whose p95 is at least 30% below equal
// weights' and within 5% of the best static weights found by grid search.
func TestAgentWeightsHeterogeneous(t *testing.T) {
	speeds := []float64{1, 2, 4}
	const lambda = 2.5 // 36% of the pool's capacity of 7; the slow server gets 83% under equal weights
	names := []string{"s1", "s2", "s4"}
	n := 60_000
	if testing.Short() {
		n = 20_000
	}
	score := func(w []int) float64 {
		lat, _ := newSWRRQueues(speeds, 42).run(0, lambda, n, w)
		return p95Of(lat)
	}
	equal := score([]int{1, 1, 1})
	// Best static weights: a coarse grid over ratios 1 : b : c (the slow
	// server gets the least, b up to 16, c up to 48), then every ratio
	// within 2 of the coarse winner.
	best, bestW := math.Inf(1), []int(nil)
	try := func(w []int) {
		if p := score(w); p < best {
			best, bestW = p, w
		}
	}
	for b := 1; b <= 16; b += 3 {
		for c := b; c <= 48; c += 4 {
			try([]int{1, b, c})
		}
	}
	cb, cc := bestW[1], bestW[2]
	for b := max(1, cb-2); b <= cb+2; b++ {
		for c := max(b, cc-3); c <= cc+3; c++ {
			try([]int{1, b, c})
		}
	}

	// The agent adjusts weights every interval of 2000 requests.
	a := NewAgent(NewPolicyTable(1, RLConfig{}), nil, RLConfig{}, rand.NewPCG(1, 1))
	q := newSWRRQueues(speeds, 7)
	w := []int{10, 10, 10}
	now := 0.0
	for i := range 60 {
		lat, end := q.run(now, lambda, 2000, w)
		pr := collector.PoolRates{Name: "web"}
		for j := range speeds {
			l := append([]float64(nil), lat[j]...)
			slices.Sort(l)
			var p95, mean float64
			if len(l) > 0 {
				p95 = 1000 * l[int(0.95*float64(len(l)))]
				for _, x := range l {
					mean += 1000 * x / float64(len(l))
				}
			}
			pr.Servers = append(pr.Servers, collector.ServerRates{Name: names[j], State: collector.StateUp, Weight: w[j],
				Requests: float64(len(l)) / (end - now), MeanLatencyMs: mean, Gauges: collector.Gauges{P95Ms: &p95}})
		}
		now = end
		obs := Observation{Time: t0.Add(time.Duration(i) * time.Minute), Pool: "web", Latest: pr, Interval: time.Minute,
			Servers: 3, Capacity: map[string]float64{"s1": 1, "s2": 2, "s4": 4},
			Template: Template{Min: 3, Max: 3, MaxWeight: 1000}}
		d, err := a.Decide(context.Background(), obs)
		if err != nil {
			t.Fatal(err)
		}
		if d.Weights != nil {
			for j, n := range names {
				w[j] = d.Weights[n]
			}
		}
	}
	learned := score(w)
	t.Logf("p95: equal weights %.3fs, best static %v %.3fs, learned %v %.3fs", equal, bestW, best, w, learned)
	if learned > 0.7*equal {
		t.Errorf("learned p95 %.3fs is not 30%% below equal weights' %.3fs", learned, equal)
	}
	if learned > 1.05*best {
		t.Errorf("learned p95 %.3fs is more than 5%% above the best static %.3fs (%v)", learned, best, bestW)
	}
}
