package queueing

import (
	"math"
	"testing"
)

// TestErlangC checks the waiting probability against standard Erlang-C
// tables.
func TestErlangC(t *testing.T) {
	tests := []struct {
		name string
		c    int
		a    float64
		want float64
	}{
		{"c=1 a=0.5", 1, 0.5, 0.5},
		{"c=2 a=1", 2, 1, 1.0 / 3},
		{"c=10 a=8", 10, 8, 0.409},
		{"c=20 a=14", 20, 14, 0.0936},
		{"overload", 3, 3, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErlangC(tc.c, tc.a); math.Abs(got-tc.want) > 0.0015 {
				t.Errorf("ErlangC(%d, %v) = %.4f, want %.4f", tc.c, tc.a, got, tc.want)
			}
		})
	}
}

// TestErlangB checks the blocking probability against its closed form for
// small c: B(1, a) = a/(1+a), B(2, a) = (a²/2)/(1+a+a²/2).
func TestErlangB(t *testing.T) {
	tests := []struct {
		c    int
		a    float64
		want float64
	}{
		{0, 3, 1},
		{1, 0.5, 0.5 / 1.5},
		{2, 2, 2.0 / 5},
		{1, 4, 4.0 / 5},
	}
	for _, tc := range tests {
		if got := ErlangB(tc.c, tc.a); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("ErlangB(%d, %v) = %v, want %v", tc.c, tc.a, got, tc.want)
		}
	}
}

// TestMMc checks the M/M/c response time: M/M/1 closed forms (mean
// 1/(μ-λ), tail e^{-(μ-λ)t}), overload, and that the quantile and the tail
// invert each other.
func TestMMc(t *testing.T) {
	tests := []struct {
		name      string
		lambda    float64
		mu        float64
		c         int
		wantMean  float64
		tailAt    float64
		wantTail  float64
		quantileQ float64
	}{
		{name: "M/M/1 half load", lambda: 5, mu: 10, c: 1, wantMean: 0.2, tailAt: 0.3, wantTail: math.Exp(-5 * 0.3), quantileQ: 0.95},
		{name: "M/M/1 busy", lambda: 9, mu: 10, c: 1, wantMean: 1, tailAt: 2, wantTail: math.Exp(-2), quantileQ: 0.99},
		{name: "overload", lambda: 30, mu: 10, c: 3, wantMean: math.Inf(1), tailAt: 1, wantTail: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MMcMeanResponse(tc.lambda, tc.mu, tc.c); math.Abs(got-tc.wantMean) > 1e-9 && !(math.IsInf(got, 1) && math.IsInf(tc.wantMean, 1)) {
				t.Errorf("mean response %v, want %v", got, tc.wantMean)
			}
			if got := MMcResponseTail(tc.lambda, tc.mu, tc.c, tc.tailAt); math.Abs(got-tc.wantTail) > 1e-9 {
				t.Errorf("tail at %v = %v, want %v", tc.tailAt, got, tc.wantTail)
			}
			if tc.quantileQ == 0 {
				return
			}
			q := MMcResponseQuantile(tc.lambda, tc.mu, tc.c, tc.quantileQ)
			if got := MMcResponseTail(tc.lambda, tc.mu, tc.c, q); math.Abs(got-(1-tc.quantileQ)) > 1e-6 {
				t.Errorf("tail at the %v-quantile %v = %v, want %v", tc.quantileQ, q, got, 1-tc.quantileQ)
			}
		})
	}
	// M/M/4 at 70%: the quantile is where the tail is 5%.
	q := MMcResponseQuantile(56, 20, 4, 0.95)
	if got := MMcResponseTail(56, 20, 4, q); math.Abs(got-0.05) > 1e-6 {
		t.Errorf("M/M/4 tail at the 0.95-quantile = %v, want 0.05", got)
	}
}

// TestMinServers checks that MinServers returns the least count meeting the
// quantile target (the count below misses it), and maxC when none does.
func TestMinServers(t *testing.T) {
	tests := []struct {
		name               string
		lambda, mu, target float64
		scv                float64
		maxC               int
		want               int // 0: check minimality instead
	}{
		{name: "idle", lambda: 0, mu: 10, target: 1, scv: 1, maxC: 10, want: 1},
		{name: "unreachable target", lambda: 50, mu: 10, target: 0.01, scv: 1, maxC: 8, want: 8},
		{name: "M/M/c", lambda: 80, mu: 10, target: 0.3, scv: 1, maxC: 100},
		{name: "low variability", lambda: 80, mu: 10, target: 0.3, scv: 0.25, maxC: 100},
		{name: "high variability", lambda: 80, mu: 10, target: 0.3, scv: 4, maxC: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := MinServersSCV(tc.lambda, tc.mu, tc.scv, tc.target, 0.95, tc.maxC)
			if tc.want != 0 {
				if got != tc.want {
					t.Errorf("MinServersSCV = %d, want %d", got, tc.want)
				}
				return
			}
			if p := GGcResponseTail(tc.lambda, tc.mu, got, tc.scv, tc.target); p > 0.05 {
				t.Errorf("%d servers: tail %v > 0.05", got, p)
			}
			if p := GGcResponseTail(tc.lambda, tc.mu, got-1, tc.scv, tc.target); p <= 0.05 && got-1 > int(tc.lambda/tc.mu) {
				t.Errorf("%d servers already meet the target (tail %v)", got-1, p)
			}
		})
	}
	if a, b := MinServers(80, 10, 0.3, 0.95, 100), MinServersSCV(80, 10, 1, 0.3, 0.95, 100); a != b {
		t.Errorf("MinServers %d != MinServersSCV(scv=1) %d", a, b)
	}
}

// TestErlangBPanics checks the programmer-error panic.
func TestErlangBPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("ErlangB(-1, 1) did not panic")
		}
	}()
	ErlangB(-1, 1)
}
