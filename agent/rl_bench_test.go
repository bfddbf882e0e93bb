package agent

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkAgentDecide is one agent decision (forecast, service rate,
// Erlang-C plan, weight action) on a 10-server pool.
func BenchmarkAgentDecide(b *testing.B) {
	a := NewAgent(NewPolicyTable(1, RLConfig{}), nil, RLConfig{}, rand.NewPCG(1, 1))
	ctx := context.Background()
	obs := poolObs(0, 150, 10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		obs.Time = t0.Add(time.Duration(i) * 30 * time.Second)
		if _, err := a.Decide(ctx, obs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuardCheck is one guard check of a scale and weight decision.
func BenchmarkGuardCheck(b *testing.B) {
	g := NewGuard(DefaultGuardConfig(), nil)
	obs := guardObs(0, 4)
	w := map[string]int{"a": 0, "b": 500, "c": 7}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		obs.Time = t0.Add(time.Duration(i) * time.Second)
		g.Check(obs, Decision{Servers: 3 + i%8, Weights: w})
	}
}
