package agent

import (
	"math"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// capMM1 is one interval of single-slot servers with service rates mu
// (requests/s) each offered lambda: their exact M/M/1 mean latency.
func capMM1(names []string, mu, lambda []float64) collector.PoolRates {
	pr := collector.PoolRates{Name: "web"}
	for i, n := range names {
		pr.Servers = append(pr.Servers, collector.ServerRates{Name: n, State: collector.StateUp, Weight: 1,
			Requests: lambda[i], Responses: [5]float64{1: lambda[i]}, MeanLatencyMs: 1000 / (mu[i] - lambda[i])})
	}
	return pr
}

// capWantRatio checks that got holds the speeds' ratios within tol
// (relative) and has mean 1.
func capWantRatio(t *testing.T, got map[string]float64, names []string, speeds []float64, tol float64) {
	t.Helper()
	if len(got) != len(names) {
		t.Fatalf("estimates %v, want one per server of %v", got, names)
	}
	var sum, mean float64
	for _, s := range speeds {
		sum += s
	}
	for i, n := range names {
		want := speeds[i] / (sum / float64(len(speeds)))
		if math.Abs(got[n]-want) > tol*want {
			t.Errorf("capacity of %s %.3f, want %.3f within %.0f%% (all: %s)", n, got[n], want, 100*tol, formatCapacities(got))
		}
		mean += got[n] / float64(len(names))
	}
	if math.Abs(mean-1) > 1e-9 {
		t.Errorf("estimates' mean %.6f, want 1", mean)
	}
}

// TestCapacityEstimatorConverges: from per-server rates alone, under load
// that varies, the estimates reach the servers' true speed ratios.
func TestCapacityEstimatorConverges(t *testing.T) {
	names := []string{"s1", "s2", "s4"}
	speeds := []float64{1, 2, 4}
	for _, tc := range []struct {
		name string
		tol  float64
		// run feeds est and returns when done.
		run func(est *CapacityEstimator)
	}{{
		// Exact M/M/1 figures: mu = X + 1/L holds at every load, so the
		// estimate is exact whatever the load does.
		name: "mm1 exact, load 5-90% varying per server",
		tol:  1e-9,
		run: func(est *CapacityEstimator) {
			mu := []float64{10, 20, 40}
			for i := range 40 {
				lambda := make([]float64, 3)
				for j := range mu {
					rho := 0.05 + 0.85*float64((i*(j+3))%11)/10
					lambda[j] = rho * mu[j]
				}
				pr := capMM1(names, mu, lambda)
				est.Observe(t0.Add(time.Duration(i)*5*time.Second), 5*time.Second, &pr)
			}
		},
	}, {
		// Simulated FIFO queues behind smooth weighted round robin, the
		// pool's load cycling from 20% to 80% of its capacity of 7 at
		// equal weights then capacity weights: noisy samples.
		name: "simulated queues, load 20-80% cycling",
		tol:  0.15,
		run: func(est *CapacityEstimator) {
			q := newSWRRQueues(speeds, 3)
			now := 0.0
			for i := range 120 {
				w := []int{1, 2, 4}
				if i < 20 {
					w = []int{1, 1, 1}
				}
				lambda := 7 * (0.2 + 0.6*float64(i%7)/6)
				if w[0] == w[1] {
					lambda = math.Min(lambda, 2.7) // keep the slow server below saturation
				}
				lat, end := q.run(now, lambda, 300, w)
				pr := swrrRates(q, names, w, lat, end-now)
				now = end
				est.Observe(t0.Add(time.Duration(i)*time.Minute), time.Minute, &pr)
			}
		},
	}, {
		// Equal weights at 70%: the slow server is overloaded (163%) and
		// its latency is its growing queue; its completions say its speed.
		name: "slow server overloaded at equal weights",
		tol:  0.2,
		run: func(est *CapacityEstimator) {
			q := newSWRRQueues(speeds, 5)
			now := 0.0
			for i := range 30 {
				lat, end := q.run(now, 4.9, 300, []int{1, 1, 1})
				pr := swrrRates(q, names, []int{1, 1, 1}, lat, end-now)
				now = end
				est.Observe(t0.Add(time.Duration(i)*time.Minute), time.Minute, &pr)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			est := NewCapacityEstimator(CapacityConfig{})
			tc.run(est)
			got := est.Estimates()
			t.Logf("estimates %s (true ratios 0.43 0.86 1.71)", formatCapacities(got))
			capWantRatio(t, got, names, speeds, tc.tol)
		})
	}
}

// TestCapacityEstimatorNoData: no estimate (nil, the old behaviour)
// without enough samples from at least two servers.
func TestCapacityEstimatorNoData(t *testing.T) {
	mu := []float64{10, 20, 40}
	names := []string{"a", "b", "c"}
	busy := func(pr *collector.PoolRates) {}
	for _, tc := range []struct {
		name      string
		intervals int
		step      time.Duration
		edit      func(pr *collector.PoolRates)
	}{
		{name: "nothing observed", intervals: 0, step: 5 * time.Second, edit: busy},
		// 2 samples of >= 20 requests each per server: MinSamples is 3.
		{name: "too few samples", intervals: 2, step: 5 * time.Second, edit: busy},
		{name: "idle pool", intervals: 50, step: 5 * time.Second, edit: func(pr *collector.PoolRates) {
			for i := range pr.Servers {
				pr.Servers[i].Requests, pr.Servers[i].Responses = 0, [5]float64{}
			}
		}},
		{name: "one server only", intervals: 50, step: 5 * time.Second, edit: func(pr *collector.PoolRates) {
			pr.Servers = pr.Servers[:1]
		}},
		{name: "all failing", intervals: 50, step: 5 * time.Second, edit: func(pr *collector.PoolRates) {
			for i := range pr.Servers {
				pr.Servers[i].Responses = [5]float64{4: pr.Servers[i].Requests}
			}
		}},
		{name: "all down", intervals: 50, step: 5 * time.Second, edit: func(pr *collector.PoolRates) {
			for i := range pr.Servers {
				pr.Servers[i].State = collector.StateDown
			}
		}},
		{name: "every interval reset", intervals: 50, step: 5 * time.Second, edit: func(pr *collector.PoolRates) {
			for i := range pr.Servers {
				pr.Servers[i].Reset = true
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			est := NewCapacityEstimator(CapacityConfig{})
			for i := range tc.intervals {
				pr := capMM1(names, mu, []float64{5, 10, 20})
				tc.edit(&pr)
				est.Observe(t0.Add(time.Duration(i)*tc.step), tc.step, &pr)
			}
			if got := est.Estimates(); got != nil {
				t.Errorf("estimates %v, want none", got)
			}
		})
	}
}

// TestCapacityEstimatorMembership: a server that leaves is forgotten and
// the others are normalised among themselves; one that joins has no
// entry (read as the pool's average) until it has samples; samples older
// than the horizon stop counting.
func TestCapacityEstimatorMembership(t *testing.T) {
	est := NewCapacityEstimator(CapacityConfig{Horizon: 10 * time.Minute})
	at := t0
	feed := func(n int, names []string, mu []float64) {
		for range n {
			lambda := make([]float64, len(mu))
			for j := range mu {
				lambda[j] = 0.5 * mu[j]
			}
			pr := capMM1(names, mu, lambda)
			at = at.Add(5 * time.Second)
			est.Observe(at, 5*time.Second, &pr)
		}
	}
	feed(20, []string{"a", "b", "c"}, []float64{10, 20, 40})
	capWantRatio(t, est.Estimates(), []string{"a", "b", "c"}, []float64{1, 2, 4}, 1e-9)

	// c leaves.
	feed(1, []string{"a", "b"}, []float64{10, 20})
	capWantRatio(t, est.Estimates(), []string{"a", "b"}, []float64{1, 2}, 1e-9)

	// d joins: no entry until it has MinSamples samples.
	feed(1, []string{"a", "b", "d"}, []float64{10, 20, 80})
	if got := est.Estimates(); len(got) != 2 || got["d"] != 0 {
		t.Errorf("estimates just after d joined: %v, want a and b only", got)
	}
	feed(10, []string{"a", "b", "d"}, []float64{10, 20, 80})
	capWantRatio(t, est.Estimates(), []string{"a", "b", "d"}, []float64{1, 2, 8}, 1e-9)

	// b is replaced by a server twice as fast under the same name: once
	// the old samples are past the horizon, the estimate follows.
	feed(130, []string{"a", "b", "d"}, []float64{10, 40, 80})
	capWantRatio(t, est.Estimates(), []string{"a", "b", "d"}, []float64{1, 4, 8}, 1e-9)
}

// TestCapacityEstimatorStarved: a server the weights starve (a request
// every few seconds) still gets samples, its intervals pooled until they
// hold enough requests.
func TestCapacityEstimatorStarved(t *testing.T) {
	est := NewCapacityEstimator(CapacityConfig{})
	for i := range 200 {
		// a: 0.5 req/s at mu 10, b: 30 req/s at mu 40 (M/M/1).
		pr := capMM1([]string{"a", "b"}, []float64{10, 40}, []float64{0.5, 30})
		est.Observe(t0.Add(time.Duration(i)*5*time.Second), 5*time.Second, &pr)
	}
	capWantRatio(t, est.Estimates(), []string{"a", "b"}, []float64{1, 4}, 1e-9)
}
