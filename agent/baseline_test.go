package agent

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

var (
	_ DecisionGuard  = (*Guard)(nil)
	_ SnapshotSource = (*SnapshotRing)(nil)
)

// blObs builds an observation of n up servers sharing rps requests/s with
// the given interval p95 and queue per server, window of k equal intervals.
func blObs(at time.Time, n int, rps, p95, queue float64, k int, iv time.Duration) Observation {
	pr := collector.PoolRates{Name: "web"}
	for i := range n {
		v := p95
		pr.Servers = append(pr.Servers, collector.ServerRates{
			Name: string(rune('a' + i)), Weight: 1, State: collector.StateUp, Requests: rps / float64(n),
			Gauges: collector.Gauges{P95Ms: &v, Queue: queue},
		})
	}
	w := make([]collector.PoolRates, k)
	for i := range w {
		w[i] = pr
	}
	return Observation{Time: at, Pool: "web", Latest: pr, Window: w, Interval: iv, Servers: n,
		Template: Template{Min: 1, Max: 40, TargetP95: 100 * time.Millisecond, ServiceRate: 10}}
}

func TestHPA(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		after time.Duration
		n     int
		rps   float64
		want  int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		// 90 req/s on 10 servers of 10/s: util 0.9, ratio 1.5 -> 15.
		{"scale up at once", []step{{0, 10, 90, 15}}},
		// util 0.63 is within 10% of 0.6.
		{"tolerance holds", []step{{0, 10, 63, 10}}},
		// At 1 min util 0.3 recommends ceil(15 x 0.5) = 8, but 15 was
		// recommended 60 s before: hold. At 6 min util 0.2 recommends 5;
		// the 15 has left the 5 min window, the 8 has not: down to 8.
		{"scale down waits for the window", []step{{0, 10, 90, 15}, {time.Minute, 15, 45, 15}, {6 * time.Minute, 15, 30, 8}}},
		// zero load recommends the template minimum.
		{"idle goes to min", []step{{0, 4, 0, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHPA("hpa@0.6", DefaultHPAConfig())
			for i, s := range tc.steps {
				d, err := h.Decide(context.Background(), blObs(t0.Add(s.after), s.n, s.rps, 10, 0, 4, 30*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if d.Servers != s.want {
					t.Errorf("step %d: %d servers, want %d (%s)", i, d.Servers, s.want, d.Reason)
				}
				if d.Policy != "hpa@0.6" || d.Metrics["util"] == 0 && s.rps > 0 {
					t.Errorf("step %d: provenance %q metrics %v", i, d.Policy, d.Metrics)
				}
			}
		})
	}
}

func TestThreshold(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		after        time.Duration
		n            int
		rps, p95, q  float64
		k            int
		iv           time.Duration
		want         int
		wantInReason string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		// p95 200 ms > 100 ms for 4 x 15 s: grow x2.
		{"sustained breach grows", []step{{0, 10, 50, 200, 0, 4, 15 * time.Second, 20, "p95"}}},
		// One 2 s interval above target is a spike shorter than 5 s.
		{"short spike ignored", []step{{0, 10, 50, 200, 0, 1, 2 * time.Second, 10, "hold"}}},
		// util 0.9 > 0.8: grow even under the target, proportionally: to
		// the band's middle 0.55, ceil(10 x 0.9/0.55) = 17.
		{"high utilisation grows", []step{{0, 10, 90, 50, 0, 4, 15 * time.Second, 17, "utilisation"}}},
		// util 0.2 < 0.3 under target: shrink x0.5 once the cooldown passed.
		{"low utilisation shrinks", []step{{0, 10, 20, 50, 0, 4, 15 * time.Second, 5, "x0.5"}}},
		// Queue 3 > 2 switches 2 reserve servers on; 1 (between 0.5 and
		// 2) keeps them on; 0.2 < 0.5 switches them off after the cooldown.
		{"reserve hysteresis", []step{
			{0, 10, 50, 50, 3, 4, 15 * time.Second, 12, "reserve"},
			{time.Minute, 12, 60, 50, 1, 4, 15 * time.Second, 12, "hold"},
			{5 * time.Minute, 12, 60, 50, 0.2, 4, 15 * time.Second, 10, "-2 reserve"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th := DefaultThreshold()
			for i, s := range tc.steps {
				obs := blObs(t0.Add(10*time.Minute+s.after), s.n, s.rps, s.p95, s.q, s.k, s.iv)
				d, err := th.Decide(context.Background(), obs)
				if err != nil {
					t.Fatal(err)
				}
				if d.Servers != s.want || !strings.Contains(d.Reason, s.wantInReason) {
					t.Errorf("step %d: %d servers (%s), want %d and %q", i, d.Servers, d.Reason, s.want, s.wantInReason)
				}
			}
		})
	}
	if err := (ThresholdConfig{UtilHigh: 0.5, UtilLow: 0.6, GrowRatio: 2}).Validate(); err == nil {
		t.Error("util_low above util_high accepted")
	}
}

// TestThresholdScrapeSteps: in the daemon the window's intervals are
// scrapes (1 s), shorter than the decision period (5 s). The spike rule
// counts the breach in scrape steps: four 1 s scrapes over target are a 4 s
// spike, ignored; six are a 6 s breach, acted on. (Counting each scrape as
// a decision period made any 1 s spike a 5 s breach.)
func TestThresholdScrapeSteps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	for _, tc := range []struct {
		k        int
		want     int
		inReason string
	}{{4, 10, "hold"}, {6, 20, "p95"}} {
		obs := blObs(t0, 10, 50, 200, 0, tc.k, 5*time.Second)
		obs.Step = time.Second
		d, err := DefaultThreshold().Decide(context.Background(), obs)
		if err != nil {
			t.Fatal(err)
		}
		if d.Servers != tc.want || !strings.Contains(d.Reason, tc.inReason) {
			t.Errorf("%d scrapes of 1 s over target: %d servers (%s), want %d and %q", tc.k, d.Servers, d.Reason, tc.want, tc.inReason)
		}
	}
}

// TestNewThresholdInvalid: an invalid configuration (a NaN target, as a
// NaN target_seconds converts to, a NaN ratio, a negative duration) is an
// error from NewThreshold, not a panic; the default is valid.
func TestNewThresholdInvalid(t *testing.T) {
	if err := DefaultThresholdConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v (DefaultThreshold relies on it)", err)
	}
	nan := math.NaN()
	tests := []struct {
		name string
		edit func(c *ThresholdConfig)
		want string
	}{
		{"NaN target", func(c *ThresholdConfig) { c.TargetP95 = time.Duration(int64(math.MinInt64)) }, "durations must not be negative"},
		{"NaN util_high", func(c *ThresholdConfig) { c.UtilHigh = nan }, "util_high"},
		{"Inf grow ratio", func(c *ThresholdConfig) { c.GrowRatio = math.Inf(1) }, "grow_ratio"},
		{"NaN queue_low", func(c *ThresholdConfig) { c.QueueLow = nan }, "queue_low"},
		{"negative min requests", func(c *ThresholdConfig) { c.MinRequests = -1 }, "min_requests"},
		{"negative window", func(c *ThresholdConfig) { c.Window = -time.Second }, "durations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultThresholdConfig()
			tc.edit(&c)
			th, err := NewThreshold(c)
			if err == nil || th != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewThreshold = %v, %v; want an error containing %q", th, err, tc.want)
			}
		})
	}
	if _, err := NewThreshold(DefaultThresholdConfig()); err != nil {
		t.Errorf("NewThreshold(default): %v", err)
	}
}
