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
	// pend are the completion times of each server's requests not yet
	// counted in done, the completions of the last run's interval.
	pend [][]float64
	done []int
}

func newSWRRQueues(speeds []float64, seed uint64) *swrrQueues {
	return &swrrQueues{speeds: speeds, rng: rand.New(rand.NewPCG(seed, 1)),
		free: make([]float64, len(speeds)), cur: make([]int, len(speeds)),
		pend: make([][]float64, len(speeds)), done: make([]int, len(speeds))}
}

// run sends n requests at rate lambda from time t with weights w and
// returns the response times per server and the end time; q.done counts
// the requests each server completed up to then.
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
		q.pend[best] = append(q.pend[best], q.free[best])
	}
	for j, p := range q.pend {
		k := 0
		for k < len(p) && p[k] <= t {
			k++
		}
		q.done[j] = k
		q.pend[j] = append(p[:0], p[k:]...)
	}
	return lat, t
}

// swrrRates are the per-server rates of one interval of length secs of q
// (latencies in seconds, as run returns them): request rate, completions
// (as 2xx responses), mean and p95 latency in ms.
func swrrRates(q *swrrQueues, names []string, w []int, lat [][]float64, secs float64) collector.PoolRates {
	pr := collector.PoolRates{Name: "web"}
	for j := range names {
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
			Requests: float64(len(l)) / secs, Responses: [5]float64{1: float64(q.done[j]) / secs},
			MeanLatencyMs: mean, Gauges: collector.Gauges{P95Ms: &p95}})
	}
	return pr
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
// rates, must reach weights whose p95 is at least 30% below equal weights'
// and within a margin of the best static weights found by grid search,
// whether the servers' capacities are reported (as the simulator reports
// them) or estimated from the rates alone (CapacityEstimator, as on
// HAProxy or NGINX); the slow server must keep at least half of the share
// the best static weights give it (raw latencies starved it to 2-3% on
// the real testbed at 70% load: docs/RESULTS.md, issue 18 section 5) and
// the estimated capacities must give it within 35% of the share the
// reported ones do (in this model the estimator puts the slow server at
// 0.49 of the mean against a true 0.43, so its band lies higher).
func TestAgentWeightsHeterogeneous(t *testing.T) {
	speeds := []float64{1, 2, 4}
	names := []string{"s1", "s2", "s4"}
	n := 60_000
	if testing.Short() {
		n = 20_000
	}
	for _, load := range []struct {
		name   string
		lambda float64
		// The learned p95 may exceed the best static weights' by this share.
		margin float64
	}{
		// 36% of the pool's capacity of 7; the slow server gets 83% under
		// equal weights.
		{name: "36%", lambda: 2.5, margin: 0.05},
		// 70%: equal weights overload the slow server (163%).
		{name: "70%", lambda: 4.9, margin: 0.05},
	} {
		score := func(w []int) float64 {
			lat, _ := newSWRRQueues(speeds, 42).run(0, load.lambda, n, w)
			return p95Of(lat)
		}
		equal := score([]int{1, 1, 1})
		// Best static weights: a coarse grid over ratios 1 : b : c (the
		// slow server gets the least, b up to 16, c up to 48), then every
		// ratio within 2 of the coarse winner.
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
		bestSlow := 1 / float64(1+bestW[1]+bestW[2])
		reportedSlow := 0.0 // the slow server's share with the capacities reported
		for _, estimated := range []bool{false, true} {
			name := load.name + "/reported"
			if estimated {
				name = load.name + "/estimated"
			}
			t.Run(name, func(t *testing.T) {
				// The agent adjusts weights every interval of 2000 requests.
				a := NewAgent(NewPolicyTable(1, RLConfig{}), nil, RLConfig{}, rand.NewPCG(1, 1))
				est := NewCapacityEstimator(CapacityConfig{})
				q := newSWRRQueues(speeds, 7)
				w := []int{10, 10, 10}
				now := 0.0
				var caps map[string]float64
				for i := range 60 {
					lat, end := q.run(now, load.lambda, 2000, w)
					pr := swrrRates(q, names, w, lat, end-now)
					now = end
					at := t0.Add(time.Duration(i) * time.Minute)
					caps = map[string]float64{"s1": 1, "s2": 2, "s4": 4}
					if estimated {
						est.Observe(at, time.Minute, &pr)
						caps = est.Estimates()
					}
					obs := Observation{Time: at, Pool: "web", Latest: pr, Interval: time.Minute,
						Servers: 3, Capacity: caps, Template: Template{Min: 3, Max: 3, MaxWeight: 1000}}
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
				slow := float64(w[0]) / float64(w[0]+w[1]+w[2])
				t.Logf("p95: equal weights %.3fs, best static %v %.3fs (slow share %.3f), learned %v %.3fs (slow share %.3f), capacities %s",
					equal, bestW, best, bestSlow, w, learned, slow, formatCapacities(caps))
				if learned > 0.7*equal {
					t.Errorf("learned p95 %.3fs is not 30%% below equal weights' %.3fs", learned, equal)
				}
				if learned > (1+load.margin)*best {
					t.Errorf("learned p95 %.3fs is more than %.0f%% above the best static %.3fs (%v)", learned, 100*load.margin, best, bestW)
				}
				if !estimated {
					reportedSlow = slow
				} else if math.Abs(slow-reportedSlow) > 0.35*reportedSlow {
					t.Errorf("slow server's share %.3f from estimated capacities is more than 35%% off its share %.3f with the capacities reported", slow, reportedSlow)
				}
				if slow < bestSlow/2 {
					t.Errorf("slow server starved: weight share %.3f (weights %v) below half the best static weights' %.3f", slow, w, bestSlow)
				}
			})
		}
	}
}

// TestAgentWeightsSqrtShares: the square-root rule's split of a request
// rate over servers of given service rates.
func TestAgentWeightsSqrtShares(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mu     []float64
		lambda float64
		want   []float64 // nil: none
	}{
		// The real testbed's pool: 20, 40, 80 req/s; k = (140-lambda)/19.741
		// (at 70%: k = 2.128, lambda_1 = 20 - 2.128 sqrt(20) = 10.49 of 98).
		{name: "1:2:4 at 50%", mu: []float64{20, 40, 80}, lambda: 70, want: []float64{0.0592, 0.2511, 0.6898}},
		{name: "1:2:4 at 70%", mu: []float64{20, 40, 80}, lambda: 98, want: []float64{0.1070, 0.2709, 0.6221}},
		{name: "1:2:4 at 85%", mu: []float64{20, 40, 80}, lambda: 119, want: []float64{0.1281, 0.2796, 0.5923}},
		// At 30% the slow server gets nothing: k = 98/19.74 = 4.96 > sqrt(20),
		// so the split is over 40 and 80 alone: k = 78/15.27.
		{name: "1:2:4 at 30%", mu: []float64{20, 40, 80}, lambda: 42, want: []float64{0, 0.1830, 0.8170}},
		{name: "equal servers", mu: []float64{10, 10, 10}, lambda: 12, want: []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}},
		{name: "overloaded: capacity-proportional", mu: []float64{20, 40, 80}, lambda: 150, want: []float64{1.0 / 7, 2.0 / 7, 4.0 / 7}},
		{name: "idle", mu: []float64{20, 40, 80}, lambda: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rlSqrtShares(tc.mu, tc.lambda)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("shares %v, want none", got)
				}
				return
			}
			var sum float64
			for i := range tc.want {
				if math.Abs(got[i]-tc.want[i]) > 5e-4 {
					t.Errorf("share %d %.4f, want %.4f (all %v)", i, got[i], tc.want[i], got)
				}
				sum += got[i]
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("shares sum to %.6f, want 1", sum)
			}
		})
	}
}

// TestAgentWeightsBounds: a server whose latency reads high however
// little it gets (HAProxy's average of its last 1024 requests lags
// minutes) loses weight to shifts only down to the share that leaves it
// rlSpareMore times the square-root rule's headroom, and one that reads
// low however much it gets gains only up to rlSpareLess of it, when the
// capacities are known; unknown,
// the shifts starve the slow server (the old behaviour).
func TestAgentWeightsBounds(t *testing.T) {
	caps := map[string]float64{"s1": 3.0 / 7, "s2": 6.0 / 7, "s4": 12.0 / 7}
	for _, tc := range []struct {
		name             string
		caps             map[string]float64
		lat              map[string]float64 // each server's latency reading, ms
		minSlow, maxSlow float64            // the slow server's weight share must end within
	}{
		// mu 20:40:80 (service rate 46.67 x capacity), 98 req/s: k = 2.128,
		// the square-root share of s1 is 0.107, the floor (headroom 1.25 k
		// sqrt(20)) 0.0827, the ceiling (0.8 k sqrt(20)) 0.1264.
		{name: "slow reads high, capacities known", caps: caps, lat: map[string]float64{"s1": 2000, "s2": 60, "s4": 30}, minSlow: 0.0827, maxSlow: 0.095},
		{name: "slow reads high, capacities unknown", lat: map[string]float64{"s1": 2000, "s2": 60, "s4": 30}, minSlow: 0, maxSlow: 0.03},
		{name: "slow reads low, capacities known", caps: caps, lat: map[string]float64{"s1": 20, "s2": 200, "s4": 200}, minSlow: 0.115, maxSlow: 0.1264},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAgent(NewPolicyTable(1, RLConfig{}), nil, RLConfig{}, rand.NewPCG(1, 1))
			w := map[string]int{"s1": 30, "s2": 90, "s4": 180}
			for i := range 200 {
				total := float64(w["s1"] + w["s2"] + w["s4"])
				srv := func(n string) collector.ServerRates {
					return collector.ServerRates{Name: n, State: collector.StateUp, Weight: w[n],
						Requests: 98 * float64(w[n]) / total, MeanLatencyMs: tc.lat[n]}
				}
				pr := collector.PoolRates{Name: "web", Servers: []collector.ServerRates{srv("s1"), srv("s2"), srv("s4")}}
				obs := Observation{Time: t0.Add(time.Duration(i) * 5 * time.Second), Pool: "web", Latest: pr,
					Window: []collector.PoolRates{pr}, Interval: 5 * time.Second, Servers: 3, Capacity: tc.caps,
					Template: Template{Min: 3, Max: 3, ServiceRate: 140.0 / 3, MaxWeight: 256}}
				d, err := a.Decide(context.Background(), obs)
				if err != nil {
					t.Fatal(err)
				}
				for n, v := range d.Weights {
					w[n] = v
				}
			}
			slow := float64(w["s1"]) / float64(w["s1"]+w["s2"]+w["s4"])
			t.Logf("weights %v, slow share %.3f", w, slow)
			if slow < tc.minSlow || slow > tc.maxSlow {
				t.Errorf("slow server's weight share %.3f, want within [%.3f, %.3f]", slow, tc.minSlow, tc.maxSlow)
			}
		})
	}
}
