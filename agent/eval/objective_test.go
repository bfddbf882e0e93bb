package eval

import (
	"context"
	"math"
	"testing"

	"github.com/lbtune/lbtune/agent"
)

// TestObjectivePrices: eval's objective is the agent's reward priced over
// the run. On the same arrivals and decisions, moving the price of a
// server-hour moves the objective by the price difference x server-hours,
// and moving the cost of a violating minute moves it by the difference x
// the violating minutes eval counts: one definition of both.
func TestObjectivePrices(t *testing.T) {
	base, err := DefaultScenario(testTrace(), 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	run := func(serverHour, violMinute float64) Result {
		t.Helper()
		sc := base
		sc.Objective = agent.DefaultRLConfig().Reward.WithPrices(serverHour, violMinute)
		// Too few servers for the peak: some minutes miss the target.
		r, err := Evaluate(context.Background(), sc, "static", []agent.Policy{agent.NewStatic(6)}, EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	def := run(6, 8)
	violated := math.Round(def.SLOViolationPct * float64(def.Minutes) / 100) // the percentage is rounded
	if violated < 1 || def.ServerHours <= 0 {
		t.Fatalf("%.0f violating minutes, %v server-hours: the test needs both", violated, def.ServerHours)
	}
	var empty Scenario
	if zero := empty.Reward(); zero != agent.DefaultRLConfig().Reward {
		t.Errorf("zero objective %+v, want the agent's default", zero)
	}
	if got, want := def.ObjectiveServers, 6*def.ServerHours; math.Abs(got-want) > 0.01 {
		t.Errorf("servers' part %v, want 6 x %v server-hours = %v", got, def.ServerHours, want)
	}
	tests := []struct {
		name                   string
		serverHour, violMinute float64
		want                   float64 // objective minus the default's
	}{
		{"servers 4x dearer", 24, 8, 18 * def.ServerHours},
		{"servers 4x cheaper", 1.5, 8, -4.5 * def.ServerHours},
		{"violations 10x dearer", 6, 80, 72 * violated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(tc.serverHour, tc.violMinute)
			if r.ServerHours != def.ServerHours || r.SLOViolationPct != def.SLOViolationPct {
				t.Fatalf("the prices changed the run: %v server-h %v%%, want %v %v%%", r.ServerHours, r.SLOViolationPct, def.ServerHours, def.SLOViolationPct)
			}
			if got := r.Objective - def.Objective; math.Abs(got-tc.want) > 0.01+1e-6*math.Abs(tc.want) {
				t.Errorf("objective %v - default %v = %v, want %v", r.Objective, def.Objective, got, tc.want)
			}
		})
	}
}
