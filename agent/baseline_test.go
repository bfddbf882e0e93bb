package agent

import (
	"context"
	"math"
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
