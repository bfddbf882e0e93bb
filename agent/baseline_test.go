package agent

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/collector"
)

// The simulator is the actuator of eval and training runs, and a source of
// snapshots like the collector's.
var (
	_ Applier          = (*sim.Sim)(nil)
	_ collector.Source = (*sim.Sim)(nil)
	_ DecisionGuard    = (*Guard)(nil)
	_ SnapshotSource   = (*SnapshotRing)(nil)
)

// testTrace is a 3-hour synthetic day: quiet, a ramp, a 10-minute flash
// crowd and a decay, at magnitudes that keep the test quick.
func testTrace() *sim.Trace {
	return sim.Synthetic("synthetic", []sim.Phase{
		{Duration: 30 * time.Minute, RPS: 40},
		{Duration: 30 * time.Minute, RPS: 80},
		{Duration: 40 * time.Minute, RPS: 140},
		{Duration: 40 * time.Minute, RPS: 70},
		{Duration: 40 * time.Minute, RPS: 30},
	}, []sim.Spike{{At: 75 * time.Minute, Duration: 10 * time.Minute, RPS: 200}, {At: 150 * time.Minute, Duration: 3 * time.Second, RPS: 400}})
}

func baselines(t *testing.T, sc Scenario) map[string]Policy {
	t.Helper()
	hpa := func(u float64) Policy {
		c := DefaultHPAConfig()
		c.Target = u
		return NewHPA("hpa", c)
	}
	return map[string]Policy{
		"static":    NewStatic(sc.Sim.Pools[0].Servers),
		"threshold": NewThreshold(DefaultThresholdConfig()),
		"hpa@0.5":   hpa(0.5),
		"hpa@0.6":   hpa(0.6),
		"hpa@0.7":   hpa(0.7),
		"hpa@0.8":   hpa(0.8),
		"oracle":    sc.Oracle(0),
	}
}

// TestOracleBound: on the same trace and seed, no policy that meets the
// SLO at least as well as the oracle uses fewer server-hours.
func TestOracleBound(t *testing.T) {
	sc, err := DefaultScenario(testTrace(), 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]Result{}
	for name, p := range baselines(t, sc) {
		r, err := Evaluate(context.Background(), sc, name, []Policy{p}, EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		results[name] = r
		t.Logf("%-10s slo %5.1f%% p95 %7.2fms failed %5d server-h %6.2f actions %3d reversals %2d cost %6.2f", name,
			r.SLOViolationPct, r.P95Ms, r.Failed, r.ServerHours, r.Actions, r.Reversals, r.Cost)
	}
	o := results["oracle"]
	for name, r := range results {
		if name == "oracle" {
			continue
		}
		if r.SLOViolationPct <= o.SLOViolationPct && r.ServerHours < o.ServerHours {
			t.Errorf("%s beat the oracle: %.1f%% violations with %.2f server-hours, oracle %.1f%% with %.2f",
				name, r.SLOViolationPct, r.ServerHours, o.SLOViolationPct, o.ServerHours)
		}
	}
	if o.SLOViolationPct > 10 {
		t.Errorf("oracle violates the SLO in %.1f%% of minutes, want <= 10%%", o.SLOViolationPct)
	}
	if results["static"].Actions != 0 {
		t.Errorf("static made %d actions", results["static"].Actions)
	}
	if math.IsNaN(o.Cost) || o.Cost <= 0 {
		t.Errorf("oracle cost %v", o.Cost)
	}
}

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
		// util 0.9 > 0.8: grow x2 even under the target.
		{"high utilisation grows", []step{{0, 10, 90, 50, 0, 4, 15 * time.Second, 20, "utilisation"}}},
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
			th := NewThreshold(DefaultThresholdConfig())
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

// TestScenarioFile evaluates every baseline on a two-pool scenario file:
// both pools serve, the oracle meets the targets in most pool-minutes, and
// the static policy never acts.
func TestScenarioFile(t *testing.T) {
	sc, err := ReadScenarioFile("testdata/scenario-two-pools.yaml", testTrace(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Sim.Pools) != 2 || sc.Interval != 20*time.Second || sc.C2 != 2 {
		t.Fatalf("scenario: %d pools, interval %v, c2 %v", len(sc.Sim.Pools), sc.Interval, sc.C2)
	}
	for i, p := range sc.Sim.Pools {
		if p.Servers < sc.Templates[i].Min {
			t.Errorf("pool %s starts with %d servers, below min %d", p.Name, p.Servers, sc.Templates[i].Min)
		}
	}
	for _, name := range []string{"static", "threshold", "hpa", "oracle"} {
		pols := make([]Policy, 2)
		for i := range pols {
			switch name {
			case "static":
				pols[i] = NewStatic(sc.Sim.Pools[i].Servers)
			case "threshold":
				pols[i] = NewThreshold(DefaultThresholdConfig())
			case "hpa":
				pols[i] = NewHPA("hpa", DefaultHPAConfig())
			case "oracle":
				pols[i] = sc.Oracle(i)
			}
		}
		r, err := Evaluate(context.Background(), sc, name, pols, EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-9s slo %5.1f%% p95 %6.1fms failed %5d server-h %6.2f actions %3d cost %6.2f", name, r.SLOViolationPct, r.P95Ms, r.Failed, r.ServerHours, r.Actions, r.Cost)
		if r.Requests < 5e5 {
			t.Errorf("%s: %d requests completed, want > 5e5", name, r.Requests)
		}
		if name == "static" && r.Actions != 0 {
			t.Errorf("static made %d actions", r.Actions)
		}
		// The oracle's M/M/c model (calibrated for least_conn) is only
		// approximate for the reports pool (lognormal service of SCV 2 behind
		// random two choices): about a third of its minutes miss; the api
		// pool misses only the 3 s spike.
		if name == "oracle" && r.SLOViolationPct > 20 {
			t.Errorf("oracle violates %.1f%% of pool-minutes", r.SLOViolationPct)
		}
	}
}

func TestScenarioFileErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "pools:\n  - name: a\n    colour: red\n", "colour"},
		{"no target", "pools:\n  - name: a\n", "target_p95 must be positive"},
		{"min above max", "pools:\n  - {name: a, target_p95: 1s, min: 5, max: 2}\n", "min 5 exceeds max 2"},
		{"bad balancer", "pools:\n  - {name: a, target_p95: 1s, balancer: magic}\n", "unknown balancer"},
		{"bad dist", "pools:\n  - {name: a, target_p95: 1s, classes: [{share: 1, service: {kind: h2, mean: 1, scv: 0.5}}]}\n", "h2 distribution needs scv > 1"},
		{"no pools", "interval: 10s\n", "no pools"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "s.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadScenarioFile(p, testTrace(), 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
