package agent

import (
	"math"
	"testing"
	"time"
)

// TestReward checks the one reward on the cases every caller meets: under
// and over the target, no latency known, nothing completed, no target.
func TestReward(t *testing.T) {
	c := RewardConfig{Latency: 1, Violation: 4, Errors: 10, ServerCost: 0.05}
	target := 200 * time.Millisecond
	tests := []struct {
		name     string
		err, p95 float64
		servers  int
		target   time.Duration
		want     float64
	}{
		{"met", 0, 150, 4, target, -0.2},
		{"at the target", 0, 200, 4, target, -0.2},
		{"missed by half", 0.01, 300, 4, target, -(0.5 + 4 + 0.1 + 0.2)},
		{"no latency known", 0, 0, 2, target, -0.1},
		{"nothing completed", 1, math.Inf(1), 2, target, -(4 + 10 + 0.1)},
		{"no target", 0.1, 900, 1, 0, -(1 + 0.05)},
	}
	for _, tc := range tests {
		if got := c.Reward(tc.err, tc.p95, tc.servers, tc.target); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: reward %v, want %v", tc.name, got, tc.want)
		}
	}
}
