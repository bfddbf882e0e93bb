package agent

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// sloSampleRates is one interval of n requests over secs seconds whose
// response times are drawn from an exponential distribution with the given
// p95 (ms), reported as a source reports them: the sample's p50, p95 and
// p99 (nearest rank).
func sloSampleRates(rng *rand.Rand, n int, secs, p95 float64) collector.PoolRates {
	mean := p95 / math.Log(20)
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = rng.ExpFloat64() * mean
	}
	slices.Sort(xs)
	q := func(p float64) *float64 {
		v := xs[min(int(math.Ceil(p*float64(n)))-1, n-1)]
		return &v
	}
	return collector.PoolRates{Name: "web", SourceP50Ms: q(0.5), SourceP95Ms: q(0.95), SourceP99Ms: q(0.99),
		Servers: []collector.ServerRates{{Name: "a", State: collector.StateUp, Requests: float64(n) / secs}}}
}

// TestTailEstimateNoise draws 400 intervals of n exponential response
// times per case and counts how often the p95 is called above a 1000 ms
// target, by the point estimate (p95 > target) and by TailEstimate.Over at
// 95% confidence. An idle server's p95 (0.75 x target) and a p95 exactly at
// the target must rarely be called above at any n (the point estimate calls
// a p95 at the target above about half the time); a p95 at 1.5 x target
// must be caught almost always once the interval holds enough requests.
func TestTailEstimateNoise(t *testing.T) {
	const target, runs = 1000.0, 400
	tests := []struct {
		n          int
		p95        float64 // true p95, ms
		maxOver    float64 // largest share of runs called above with confidence
		minOver    float64 // smallest share
		pointAbove float64 // the point estimate's share is at least this (its noise)
	}{
		{n: 50, p95: 750, maxOver: 0.02, pointAbove: 0.05},
		{n: 50, p95: 1000, maxOver: 0.08, pointAbove: 0.35},
		{n: 200, p95: 1000, maxOver: 0.08, pointAbove: 0.35},
		{n: 1000, p95: 1000, maxOver: 0.08, pointAbove: 0.35},
		{n: 5000, p95: 1000, maxOver: 0.08, pointAbove: 0.35},
		{n: 5000, p95: 750, maxOver: 0},
		{n: 50, p95: 2000, minOver: 0.6, maxOver: 1},
		{n: 200, p95: 1500, minOver: 0.7, maxOver: 1},
		{n: 1000, p95: 1500, minOver: 0.99, maxOver: 1},
		{n: 5000, p95: 1100, minOver: 0.95, maxOver: 1},
	}
	for _, tc := range tests {
		rng := rand.New(rand.NewPCG(uint64(tc.n), uint64(tc.p95)))
		over, point := 0, 0
		for range runs {
			pr := sloSampleRates(rng, tc.n, 30, tc.p95)
			e := IntervalTail(&pr, 30, target)
			if math.Abs(e.Requests-float64(tc.n)) > 1e-6 {
				t.Fatalf("n %d: estimate rests on %v requests", tc.n, e.Requests)
			}
			if e.Over(0.95) {
				over++
			}
			if pr.P95Ms() > target {
				point++
			}
		}
		o, p := float64(over)/runs, float64(point)/runs
		t.Logf("n %d, true p95 %.0f ms: above at 95%% in %.1f%%, point estimate above in %.1f%%", tc.n, tc.p95, 100*o, 100*p)
		if o > tc.maxOver || o < tc.minOver {
			t.Errorf("n %d, true p95 %.0f ms: called above at 95%% in %.1f%% of runs, want %.1f%%..%.1f%%",
				tc.n, tc.p95, 100*o, 100*tc.minOver, 100*tc.maxOver)
		}
		if p < tc.pointAbove {
			t.Errorf("n %d, true p95 %.0f ms: point estimate above in %.1f%% of runs, want at least %.1f%% (the noise the test is about)",
				tc.n, tc.p95, 100*p, 100*tc.pointAbove)
		}
	}
}

// TestExceedShare checks the tail interpolation on an exponential
// distribution (mean 1000 ms), where log-linear interpolation between its
// exact quantiles is exact, from a source with percentiles and from one
// with only a mean (P95PerMean x mean).
func TestExceedShare(t *testing.T) {
	mean := 1000.0
	q := func(p float64) *float64 { v := -mean * math.Log(1-p); return &v }
	full := collector.PoolRates{SourceP50Ms: q(0.5), SourceP95Ms: q(0.95), SourceP99Ms: q(0.99),
		Servers: []collector.ServerRates{{Requests: 10}}}
	meanOnly := collector.PoolRates{Servers: []collector.ServerRates{{Requests: 10, MeanLatencyMs: mean}}}
	for _, thr := range []float64{100, 693, 2000, 2996, 4000, 4605, 8000} {
		want := math.Exp(-thr / mean)
		for name, pr := range map[string]*collector.PoolRates{"percentiles": &full, "mean only": &meanOnly} {
			if got := ExceedShare(pr, thr); math.Abs(got-want) > 1e-3*want {
				t.Errorf("%s: share above %.0f ms = %.5f, want %.5f", name, thr, got, want)
			}
		}
	}
	if got := ExceedShare(&collector.PoolRates{}, 1000); got != 0 {
		t.Errorf("no requests: share %v, want 0", got)
	}
	// The test statistic: 10 of 100 above is (10 - 5)/sqrt(4.75) = 2.294
	// sigmas, above at 95% (1.645) and not at 99% (2.326); 5 of 100 is 0.
	e := TailEstimate{Requests: 100, Above: 10}
	if z := e.Z(); math.Abs(z-2.294) > 1e-3 || !e.Over(0.95) || e.Over(0.99) || e.Under(0.5) {
		t.Errorf("10 of 100: z %.4f, over@95 %v, over@99 %v", z, e.Over(0.95), e.Over(0.99))
	}
	if e := (TailEstimate{Requests: 100, Above: 5}); e.Z() != 0 || e.Over(0) || e.Under(0) {
		t.Errorf("5 of 100: z %v", e.Z())
	}
	if e := (TailEstimate{Requests: 100, Above: 1}); !e.Under(0.95) {
		t.Errorf("1 of 100 (z %.2f) should be under at 95%%", e.Z())
	}
}

// TestThresholdCalm: the threshold fallback at ~1 req/s (a 60 s window of
// 60 requests) does not grow on a p95 that passes the target by sampling
// noise, grows by the excess (not x2) on one that passes it for certain,
// does not halve a small pool below what M/M/c needs, and does not shrink
// back to a count that breached within BreachMemory.
func TestThresholdCalm(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	iv := 30 * time.Second
	// obs: n up servers sharing rps, every interval with the given p50,
	// p95, p99 (ms), a 100 ms target and 40 req/s per server (as in eval,
	// an idle server's p95 is 75% of the target).
	obs := func(at time.Duration, n int, rps, p50, p95, p99 float64) Observation {
		pr := collector.PoolRates{Name: "web", SourceP50Ms: &p50, SourceP95Ms: &p95, SourceP99Ms: &p99}
		for i := range n {
			pr.Servers = append(pr.Servers, collector.ServerRates{Name: string(rune('a' + i)), Weight: 1,
				State: collector.StateUp, Requests: rps / float64(n)})
		}
		return Observation{Time: t0.Add(at), Pool: "web", Latest: pr, Window: []collector.PoolRates{pr, pr}, Interval: iv, Servers: n,
			Template: Template{Min: 1, Max: 40, TargetP95: 100 * time.Millisecond, ServiceRate: 40}}
	}
	type step struct {
		at                 time.Duration
		n                  int
		rps, p50, p95, p99 float64
		want               int
		reason             string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		// 60 requests, p95 105 ms: 6% above the target, z 0.3.
		{"noise is no breach", []step{{0, 4, 1, 40, 105, 130, 4, "not at 90% confidence"}}},
		// The same p95 over 6000 requests is a breach; the excess is 5%,
		// so one server more, not twice as many.
		{"certain breach grows by the excess", []step{{0, 4, 100, 40, 105, 130, 5, "x1.05"}}},
		// 150 ms over 60 requests: 14% above, z 3.3; grow x1.5.
		{"clear breach at low rate", []step{{0, 2, 1, 40, 150, 220, 3, "p95 150ms > target"}}},
		// 2 servers at 20 req/s: util 0.25 < 0.3 would halve to 1, where
		// M/M/1 has a quarter of the requests above 70 ms: keep both.
		{"no halving below the plan", []step{{10 * time.Minute, 2, 20, 20, 50, 60, 2, "no shrink, M/M/c keeps p95 under 70% of the target with 2"}}},
		// A breach at 3 servers grows x2 to 6; at 6 req/s the pool would
		// halve to 3, but 3 breached 20 min ago: down to 4, and no lower
		// until the breach is an hour old; then halve to 2 (M/M/c's plan).
		{"breach memory", []step{
			{0, 3, 20, 40, 200, 300, 6, "x2.00"},
			{20 * time.Minute, 6, 6, 20, 50, 60, 4, "not back to the 3 servers"},
			{50 * time.Minute, 4, 6, 20, 50, 60, 4, "no shrink, not back to the 3"},
			{61 * time.Minute, 4, 6, 20, 50, 60, 2, "x0.50"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th := DefaultThreshold()
			for i, s := range tc.steps {
				d, err := th.Decide(context.Background(), obs(s.at, s.n, s.rps, s.p50, s.p95, s.p99))
				if err != nil {
					t.Fatal(err)
				}
				if d.Servers != s.want || !strings.Contains(d.Reason, s.reason) {
					t.Errorf("step %d: %d servers (%s), want %d and %q", i, d.Servers, d.Reason, s.want, s.reason)
				}
			}
		})
	}
}

// TestAgentTailNoise: the agent's tail-aware override (90% of a 200 ms
// target) fires on a p95 of 190 ms measured over 3600 requests, not on the
// same p95 over 30 requests (0.5 req/s for a minute: sampling noise), and
// does on 400 ms over 30 requests.
func TestAgentTailNoise(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		rate, p95 float64
		servers   int
		breach    bool
	}{
		{60, 190, 5, true},
		{0.5, 190, 1, false},
		{0.5, 400, 1, true},
	}
	for _, tc := range tests {
		a := NewAgent(nil, nil, RLConfig{}, rand.NewPCG(1, 1))
		var d Decision
		for i := range 11 {
			p95 := 80.0
			if i == 10 {
				p95 = tc.p95
			}
			d, _ = a.Decide(ctx, withP95(poolObs(time.Duration(i)*time.Minute, tc.rate, tc.servers), p95))
		}
		if got := d.Metrics["breach"] == 1; got != tc.breach {
			t.Errorf("%.1f req/s, p95 %.0f ms: breach %v (z %.2f), want %v", tc.rate, tc.p95, got, d.Metrics["breach_z"], tc.breach)
		}
	}
}

// FuzzExceedShare: whatever percentiles a source reports (they come from
// outside: logs, exporters), the estimated share is a number in [0, 1] and
// the test statistic is finite.
func FuzzExceedShare(f *testing.F) {
	f.Add(693.0, 2996.0, 4605.0, 2000.0, 10.0)
	f.Add(0.0, 0.0, 0.0, 1.0, 0.0)
	f.Add(5000.0, 100.0, 50.0, 80.0, 1e6)
	f.Add(math.NaN(), 100.0, math.Inf(1), 80.0, math.NaN())
	f.Fuzz(func(t *testing.T, p50, p95, p99, thr, rps float64) {
		pr := collector.PoolRates{SourceP50Ms: &p50, SourceP95Ms: &p95, SourceP99Ms: &p99,
			Servers: []collector.ServerRates{{Requests: rps}}}
		s := ExceedShare(&pr, thr)
		if !(s >= 0 && s <= 1) {
			t.Fatalf("share %v for p50 %v p95 %v p99 %v above %v", s, p50, p95, p99, thr)
		}
		if e := IntervalTail(&pr, 30, thr); math.IsNaN(e.Z()) || math.IsInf(e.Z(), 0) {
			t.Fatalf("z %v from %+v", e.Z(), e)
		}
	})
}
