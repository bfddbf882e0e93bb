package agent

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestAgentOnlineLearning runs an agent with learning on over a few blocks
// of intervals, on its own copy of a trained table: the copy's values move
// (level and weight updates), the original does not, exploration decays
// to its floor, and every decision made at random says so.
func TestAgentOnlineLearning(t *testing.T) {
	tests := []struct {
		name        string
		eps, decay  float64
		min         float64
		wantExplore string // all, some or none of the decisions
	}{
		{name: "explore always", eps: 1, decay: 1, min: 1, wantExplore: "all"},
		{name: "decaying", eps: 1, decay: 0.5, min: 0.1, wantExplore: "some"},
		{name: "greedy learning", eps: 0, decay: 1, min: 0, wantExplore: "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shared := NewPolicyTable(1, RLConfig{})
			shared.Steps = 10
			before := shared.Clone()
			cfg := RLConfig{Block: 3, Epsilon: tc.eps, EpsilonDecay: tc.decay, EpsilonMin: tc.min}
			a := NewAgent(shared.Clone(), nil, cfg, rand.NewPCG(3, 4))
			a.SetLearning(true)
			explored := 0
			const n = 30
			for i := range n {
				d, err := a.Decide(context.Background(), poolObs(time.Duration(i)*time.Minute, 60, 4))
				if err != nil {
					t.Fatal(err)
				}
				isExplore := d.Metrics["explore"] == 1
				if isExplore != strings.HasPrefix(d.Reason, "explore (") {
					t.Fatalf("decision %d: explore metric %v but reason %q", i, d.Metrics["explore"], d.Reason)
				}
				if isExplore {
					explored++
				}
				if _, ok := d.Metrics["epsilon"]; !ok {
					t.Fatalf("decision %d: no epsilon metric while learning", i)
				}
			}
			if want := map[string]bool{"all": explored == n, "some": explored > 0 && explored < n, "none": explored == 0}; !want[tc.wantExplore] {
				t.Errorf("%d of %d decisions explored, want %s", explored, n, tc.wantExplore)
			}
			if got := a.Exploration(); got != tc.min && tc.eps > 0 {
				t.Errorf("epsilon after %d blocks %v, want decayed to the floor %v", n/3, got, tc.min)
			}
			lt := a.Table()
			if lt.Steps <= shared.Steps {
				t.Errorf("learning table has %d level updates, want more than %d", lt.Steps, shared.Steps)
			}
			if lt == shared || shared.Steps != before.Steps || shared.Q[0][1] != before.Q[0][1] || shared.WeightQ[0][0] != before.WeightQ[0][0] {
				t.Errorf("the shared table changed: online learning must update a copy")
			}
			moved := false
			for i := range lt.WeightQ {
				for j := range lt.WeightQ[i] {
					moved = moved || lt.WeightQ[i][j] != before.WeightQ[i][j]
				}
			}
			if !moved {
				t.Errorf("weight values did not move after %d rewarded intervals", n)
			}
		})
	}
}

// TestPolicyClone checks Clone copies deeply.
func TestPolicyClone(t *testing.T) {
	tb := NewPolicyTable(2, RLConfig{})
	c := tb.Clone()
	c.Q[0][0], c.N[1][1], c.WeightQ[3][2], c.Levels[0].Z = 5, 6, 7, 9
	if tb.Q[0][0] == 5 || tb.N[1][1] == 6 || tb.WeightQ[3][2] == 7 || tb.Levels[0].Z == 9 {
		t.Fatal("Clone shares rows with the original")
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
