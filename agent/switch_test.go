package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// fakeStates returns a fixed posterior and OOD flag.
type fakeStates struct {
	post []float64
	ood  bool
	err  error
}

func (f *fakeStates) K() int { return len(f.post) }
func (f *fakeStates) Posterior(_ Observation, dst []float64) ([]float64, bool, error) {
	if f.err != nil {
		return nil, false, f.err
	}
	return append(dst[:0], f.post...), f.ood, nil
}

// fakeFallback always asks for a fixed count.
type fakeFallback struct{ servers int }

func (f *fakeFallback) Name() string { return "threshold" }
func (f *fakeFallback) Decide(_ context.Context, obs Observation) (Decision, error) {
	return Decision{Time: obs.Time, Pool: obs.Pool, Policy: "threshold", Servers: f.servers,
		Reason: "p95 above target", Metrics: map[string]float64{"p95_ms": 400}}, nil
}

func poolObs(at time.Duration, rate float64, servers int) Observation {
	per := rate / float64(servers)
	p95 := 80.0
	ps := collector.PoolRates{Name: "web"}
	for i := range servers {
		ps.Servers = append(ps.Servers, collector.ServerRates{Name: string(rune('a' + i)), State: collector.StateUp,
			Weight: 10, Requests: per, MeanLatencyMs: 40, Gauges: collector.Gauges{P95Ms: &p95}})
	}
	return Observation{Time: t0.Add(at), Pool: "web", Latest: ps, Window: []collector.PoolRates{ps},
		Interval: time.Minute, Servers: servers,
		Template: Template{Min: 1, Max: 40, TargetP95: 200 * time.Millisecond, ServiceRate: 20, MaxWeight: 100}}
}

func TestSwitchReasons(t *testing.T) {
	trained := func() *PolicyTable {
		tb := NewPolicyTable(2, RLConfig{})
		tb.Steps = 100
		return tb
	}
	tests := []struct {
		name     string
		table    *PolicyTable
		states   *fakeStates
		age      time.Duration
		policy   string // who decided
		reason   string // switch reason in the decision's Reason
		fallback float64
		// unbalanced makes server a's p95 four times the others', so the
		// agent shifts weight from it; weights is whether the decision
		// then carries weights.
		unbalanced, weights bool
	}{
		{name: "trained and sure: agent", table: trained(), states: &fakeStates{post: []float64{0.9, 0.1}}, policy: "agent", reason: "agent:"},
		{name: "untrained", table: NewPolicyTable(2, RLConfig{}), states: &fakeStates{post: []float64{0.9, 0.1}}, policy: "threshold", reason: "(untrained:", fallback: 1},
		{name: "out of distribution", table: trained(), states: &fakeStates{post: []float64{0.99, 0.01}, ood: true}, policy: "threshold", reason: "(ood:", fallback: 1},
		{name: "unsure posterior", table: trained(), states: &fakeStates{post: []float64{0.55, 0.45}}, policy: "threshold", reason: "(unsure:", fallback: 1},
		{name: "stale data", table: trained(), states: &fakeStates{post: []float64{0.9, 0.1}}, age: 10 * time.Minute, policy: "threshold", reason: "(stale:", fallback: 1},
		{name: "sure, unbalanced: the agent shifts weight", table: trained(), states: &fakeStates{post: []float64{0.9, 0.1}}, unbalanced: true,
			policy: "agent", reason: "shift weight", weights: true},
		{name: "out of distribution, unbalanced: fallback sizes, agent's weights ride along", table: trained(), states: &fakeStates{post: []float64{0.99, 0.01}, ood: true},
			unbalanced: true, policy: "threshold", reason: "weights by the agent: shift weight", fallback: 1, weights: true},
		{name: "unsure, unbalanced: agent's weights ride along", table: trained(), states: &fakeStates{post: []float64{0.55, 0.45}},
			unbalanced: true, policy: "threshold", reason: "(unsure:", fallback: 1, weights: true},
		{name: "stale, unbalanced: no weights on old data", table: trained(), states: &fakeStates{post: []float64{0.9, 0.1}}, age: 10 * time.Minute,
			unbalanced: true, policy: "threshold", reason: "(stale:", fallback: 1},
		{name: "untrained, unbalanced: no weights", table: NewPolicyTable(2, RLConfig{}), states: &fakeStates{post: []float64{0.9, 0.1}},
			unbalanced: true, policy: "threshold", reason: "(untrained:", fallback: 1},
		{name: "model error", table: trained(), states: &fakeStates{post: []float64{0.9, 0.1}, err: errors.New("feature mismatch")}, policy: "threshold", reason: "(error:", fallback: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAgent(tc.table, tc.states, RLConfig{}, rand.NewPCG(1, 1))
			sw := NewSwitch(a, &fakeFallback{servers: 7}, DefaultSwitchConfig())
			obs := poolObs(0, 100, 5)
			obs.DataAge = tc.age
			if tc.unbalanced {
				slow := 320.0
				obs.Latest.Servers[0].Gauges.P95Ms = &slow
			}
			d, err := sw.Decide(context.Background(), obs)
			if err != nil {
				t.Fatal(err)
			}
			if d.Policy != tc.policy {
				t.Errorf("policy = %q, want %q (reason %q)", d.Policy, tc.policy, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tc.reason)
			}
			if d.Metrics["switch_fallback"] != tc.fallback {
				t.Errorf("switch_fallback = %v, want %v", d.Metrics["switch_fallback"], tc.fallback)
			}
			if got := d.Weights != nil; got != tc.weights {
				t.Errorf("weights %v, want weights: %v (reason %q)", d.Weights, tc.weights, d.Reason)
			}
			if tc.weights && d.Weights["a"] >= d.Weights["b"] {
				t.Errorf("weights %v: the slow server a must lose weight to a faster one", d.Weights)
			}
			if tc.policy == "threshold" && d.Servers != 7 {
				t.Errorf("fallback decision not used: servers %d", d.Servers)
			}
			if _, ok := d.Metrics["confidence"]; !ok && tc.reason != "(error:" {
				t.Errorf("decision lacks the confidence it used: %v", d.Metrics)
			}
		})
	}
}
