package agent

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAgreementByClass(t *testing.T) {
	const k, o, i, w = MoveKeep, MoveScaleOut, MoveScaleIn, MoveWeights
	tests := []struct {
		name        string
		truth, pred []int
		// want per move (keep, scale-out, scale-in, weights): decisions,
		// agreed, predicted; agreement is agreed / decisions.
		want [numMoves][3]int
	}{
		{name: "all agree", truth: []int{k, k, o, i, w}, pred: []int{k, k, o, i, w},
			want: [numMoves][3]int{{2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
		{name: "always keep", truth: []int{k, k, k, o, i, w}, pred: []int{k, k, k, k, k, k},
			// keep is right on its 3 and predicted 6 times; every move is missed.
			want: [numMoves][3]int{{3, 3, 6}, {1, 0, 0}, {1, 0, 0}, {1, 0, 0}}},
		{name: "mixed", truth: []int{k, k, o, o, i, w}, pred: []int{k, o, o, k, i, k},
			// keep: 1 of 2 (a keep called scale-out), predicted for k, o, w;
			// scale-out: 1 of 2, predicted twice; scale-in 1 of 1; weights 0 of 1.
			want: [numMoves][3]int{{2, 1, 3}, {2, 1, 2}, {1, 1, 1}, {1, 0, 0}}},
		{name: "a move never made", truth: []int{k, o}, pred: []int{i, o},
			want: [numMoves][3]int{{1, 0, 0}, {1, 1, 1}, {0, 0, 1}, {0, 0, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rlAgreement(tc.truth, tc.pred, MoveNames)
			for c, ca := range got {
				w := tc.want[c]
				if ca.Class != MoveNames[c] || ca.Decisions != w[0] || ca.Agreed != w[1] || ca.Predicted != w[2] {
					t.Errorf("%s: %+v, want decisions %d agreed %d predicted %d", MoveNames[c], ca, w[0], w[1], w[2])
				}
				want := 0.0
				if w[0] > 0 {
					want = float64(w[1]) / float64(w[0])
				}
				if ca.Agreement != want {
					t.Errorf("%s: agreement %v, want %v", MoveNames[c], ca.Agreement, want)
				}
			}
		})
	}
}

// rlRuleSamples draws decisions of a policy that follows the agent's rules
// (AgentRules) over the full SampleFeatures: scale out when the plan needs
// more servers, scale in when the window's largest plan is below the pool,
// the p95 below 0.75 x target, the window seen and the rate not rising;
// shift or reset the weights when the action the values prefer would
// change them (here: when they are unbalanced) and 200 requests per server
// have passed. Replayed samples (every k-th when replayEvery > 0) carry a
// random server move: a recorded pool never carried out the agent's.
func rlRuleSamples(n int, seed uint64, replayEvery int) []Sample {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []Sample
	// Values on grids, as measured values are (few distinct values keep
	// golearn's CART, which tries each as a split, fast under -race).
	grid := func(n int, step float64) float64 { return float64(rng.IntN(n)) * step }
	for i := range n {
		servers := float64(1 + rng.IntN(20))
		planGap := float64(rng.IntN(30) - 27) // mostly below the pool: rare scale-outs
		inGap := planGap + float64(rng.IntN(3))
		p95x, seen, trend := grid(100, 0.01), min(grid(16, 0.1), 1), grid(41, 0.1)-2
		state, unb, pref, dwell := float64(rng.IntN(4)), float64(rng.IntN(2)), float64(rng.IntN(3)), min(grid(41, 10), 200)
		changes := float64(rlBool(unb == 1 && pref != WeightKeep))
		s := Sample{Features: []float64{grid(100, 1), p95x * 200, grid(100, 0.01), servers, grid(41, 0.1) - 2,
			planGap, inGap, p95x, seen, trend, state, unb, pref, dwell, changes}, Action: rlActionClass(0)}
		switch {
		case planGap > 0:
			s.Action = rlActionClass(int(planGap))
		case inGap < 0 && p95x < 0.75 && seen >= 1 && trend <= 0:
			s.Action = rlActionClass(max(int(inGap), -2))
		}
		if changes == 1 && dwell >= 200 {
			s.Weights = int(pref)
		}
		if replayEvery > 0 && i%replayEvery == 0 {
			s.Replayed, s.Action = true, rng.IntN(len(ActionClasses))
		}
		out = append(out, s)
	}
	return out
}

func TestDistilMoves(t *testing.T) {
	tests := []struct {
		name    string
		samples []Sample
		// rules the trees must state
		rules []string
		// moves that must be made and agreed on >= 90%
		moves []int
		// replayed samples: only the weights class counts them
		replayed int
	}{
		{
			name: "the agent's rules", samples: rlRuleSamples(4000, 7, 0),
			rules: []string{"scale-out when plan_gap >= 0.50", "scale-in when", "weights when weight_preferred_changes >= 0.50 and weight_dwell >= 195"}, // 195: between the grid's 190 and 200
			moves: []int{MoveScaleOut, MoveScaleIn, MoveWeights},
		},
		{
			// Every third decision replayed with a random server move: the
			// server trees and scores leave them out, the weights use them.
			name: "replayed decisions", samples: rlRuleSamples(4000, 8, 3),
			rules: []string{"scale-out when plan_gap >= 0.50", "scale-in when", "weights when weight_preferred_changes >= 0.50 and weight_dwell >= 195"},
			moves: []int{MoveScaleOut, MoveScaleIn, MoveWeights}, replayed: 1334,
		},
		{
			// A store saved before the plan features: five features, no
			// weight moves. +1 server above 850 rps when p95 > 180 ms, -1
			// below 200 rps, keep otherwise.
			name: "five features", samples: func() []Sample {
				rng := rand.New(rand.NewPCG(9, 9))
				var out []Sample
				for range 1500 {
					rate, p95 := rng.Float64()*1500, 50+rng.Float64()*300
					act := 2
					switch {
					case rate > 850 && p95 > 180:
						act = 3
					case rate < 200:
						act = 1
					}
					out = append(out, Sample{Features: []float64{rate, p95, rng.Float64(), float64(rng.IntN(20)), rng.NormFloat64()}, Action: act})
				}
				return out
			}(),
			rules: []string{"scale-out when", "rate_rps >= ", "p95_ms >= ", "scale-in when rate_rps < "},
			moves: []int{MoveScaleOut, MoveScaleIn},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := Distil(tc.samples, 3, 0.3, 3000, 1)
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(tree.Rules, "\n")
			t.Logf("agreement %.3f (baseline %.3f) %+v\n%s", tree.Agreement, tree.Baseline, tree.Classes, joined)
			for _, want := range tc.rules {
				if !strings.Contains(joined, want) {
					t.Errorf("rules lack %q:\n%s", want, joined)
				}
			}
			if tree.Agreement <= tree.Baseline {
				t.Errorf("agreement %.3f, not above always-keep's %.3f", tree.Agreement, tree.Baseline)
			}
			// The server moves count the held-out decisions not replayed,
			// the weights all of them; the moves' total is their sum.
			var server, moved, movedAgreed, weights int
			for _, s := range tc.samples {
				if s.Weights != WeightKeep {
					weights++
				}
			}
			for c, ca := range tree.Classes {
				if c != MoveWeights {
					server += ca.Decisions
				}
				if c != MoveKeep {
					moved += ca.Decisions
					movedAgreed += ca.Agreed
				}
			}
			// (30% of each kind of sample is held out, rounded kind by kind.)
			if tree.Replayed != tc.replayed || math.Abs(float64(tree.Test-server)-0.3*float64(tc.replayed)) > 3 {
				t.Errorf("%d replayed, %d of %d held out scored for their server move; want %d replayed, 30%% of them held out and not scored", tree.Replayed, server, tree.Test, tc.replayed)
			}
			if w := tree.Classes[MoveWeights].Decisions; math.Abs(float64(w)-0.3*float64(weights)) > 3 {
				t.Errorf("%d held-out weight moves of %d, want 30%%", w, weights)
			}
			if got := float64(movedAgreed) / float64(moved); got != tree.MoveAgreement {
				t.Errorf("move agreement %v, per-move counts say %v", tree.MoveAgreement, got)
			}
			for _, mv := range tc.moves {
				ca := tree.Classes[mv]
				if ca.Decisions < 10 || ca.Agreement < 0.9 {
					t.Errorf("%s: %d of %d held-out decisions agreed, want >= 90%% of >= 10", ca.Class, ca.Agreed, ca.Decisions)
				}
			}
		})
	}
	if _, err := Distil(rlRuleSamples(5, 1, 0), 3, 0.3, 0, 1); !errors.Is(err, ErrFewSamples) {
		t.Fatalf("5 samples: err = %v, want ErrFewSamples", err)
	}
}

// TestAgentReasonNamesRule drives the agent through a steady load on twice
// the servers it needs, a flash crowd and the calm after it: every
// decision's reason names one of AgentRules, the one that made it.
func TestAgentReasonNamesRule(t *testing.T) {
	ids := map[string]bool{}
	for _, r := range AgentRules {
		ids[r.ID] = true
	}
	for _, id := range []string{RuleOutBreach, RuleOutForecast, RuleHoldP95, RuleHoldWindow, RuleHoldRising, RuleInWindow,
		RuleKeepPlan, RuleKeepUnknown, RuleWeightShift, RuleWeightReset, RuleWeightDwell} {
		if !ids[id] {
			t.Errorf("rule %s is not in AgentRules", id)
		}
	}
	a := NewAgent(nil, nil, RLConfig{}, rand.NewPCG(1, 1))
	ctx := context.Background()
	rule := regexp.MustCompile(`\(rule ([a-z-]+)\)`)
	servers := 10 // 60 rps needs about 5: held until a window is seen
	seen := map[string]bool{}
	for i := range 60 {
		rate := 60.0
		if i >= 10 && i < 13 {
			rate = 300 // a flash crowd
		}
		d, err := a.Decide(ctx, poolObs(time.Duration(i)*time.Minute, rate, servers))
		if err != nil {
			t.Fatal(err)
		}
		m := rule.FindStringSubmatch(d.Reason)
		if m == nil || !ids[m[1]] {
			t.Fatalf("minute %d: reason %q names no rule of AgentRules", i, d.Reason)
		}
		want := []string{RuleKeepPlan, RuleHoldWindow, RuleHoldRising, RuleHoldP95}
		switch {
		case d.Servers > servers:
			want = []string{RuleOutForecast, RuleOutBreach}
		case d.Servers != 0 && d.Servers < servers:
			want = []string{RuleInWindow}
		}
		if !slices.Contains(want, m[1]) {
			t.Errorf("minute %d: %d -> %d servers by rule %s, want one of %v (%s)", i, servers, d.Servers, m[1], want, d.Reason)
		}
		seen[m[1]] = true
		if d.Servers != 0 {
			servers = d.Servers
		}
	}
	for _, id := range []string{RuleOutForecast, RuleInWindow, RuleHoldWindow} {
		if !seen[id] {
			t.Errorf("rule %s never decided: %v", id, seen)
		}
	}
}
