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

// TestRewardPrices: the default weights are 6 per server-hour and 8 per
// violating minute, pricing them back gives the same weights exactly (the
// shipped model's reward is unchanged), and moving a price moves the
// reward of an interval and the cost of a span by what the price says.
func TestRewardPrices(t *testing.T) {
	d := DefaultRLConfig().Reward
	if d.ServerHour() != 6 || d.ViolationMinute() != 8 {
		t.Fatalf("default prices %v per server-hour, %v per violating minute, want 6 and 8", d.ServerHour(), d.ViolationMinute())
	}
	if got := d.WithPrices(6, 8); got != d {
		t.Errorf("WithPrices(6, 8) = %+v, want the defaults %+v", got, d)
	}
	if got := d.WithPrices(0, 0); got != d {
		t.Errorf("WithPrices(0, 0) = %+v, want the defaults kept", got)
	}
	target := 200 * time.Millisecond
	tests := []struct {
		name                   string
		serverHour, violMinute float64
		err, p95               float64
		servers                int
		// want is the reward of one interval; wantHour the cost of an
		// hour in that state.
		want, wantHour float64
	}{
		// 4 servers at 6/h for 30 s: 4 x 6 / 120 = 0.2.
		{"default, met", 6, 8, 0, 150, 4, -0.2, 24},
		// 4 servers at 24/h: 0.8 per 30 s, 96 an hour.
		{"servers 4x dearer", 24, 8, 0, 150, 4, -0.8, 96},
		{"servers 4x cheaper", 1.5, 8, 0, 150, 4, -0.05, 6},
		// Missed by half: latency 0.5 + violation 8/2 + servers 0.2.
		{"default, missed", 6, 8, 0, 300, 4, -(0.5 + 4 + 0.2), 120 * (0.5 + 4 + 0.2)},
		// A violating minute at 80: 40 per 30 s.
		{"violations 10x dearer", 6, 80, 0, 300, 4, -(0.5 + 40 + 0.2), 120 * (0.5 + 40 + 0.2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := d.WithPrices(tc.serverHour, tc.violMinute)
			if got := c.Reward(tc.err, tc.p95, tc.servers, target); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("reward %v, want %v", got, tc.want)
			}
			if got := c.Cost(tc.err, tc.p95, float64(tc.servers), target, time.Hour); math.Abs(got-tc.wantHour) > 1e-9 {
				t.Errorf("cost of an hour %v, want %v", got, tc.wantHour)
			}
			if c.ServerHour() != tc.serverHour || math.Abs(c.ViolationMinute()-tc.violMinute) > 1e-12 {
				t.Errorf("prices back %v, %v; want %v, %v", c.ServerHour(), c.ViolationMinute(), tc.serverHour, tc.violMinute)
			}
		})
	}
}
