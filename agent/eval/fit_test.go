package eval

import (
	"context"
	"github.com/lbtune/lbtune/agent"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent/sim"
)

// TestFit trains the agent end to end on two small synthetic traces: the
// model, the policy table, the state summaries and the decision samples
// must all come out usable, and the policy must drive an eval run.
func TestFit(t *testing.T) {
	day := sim.Synthetic("day", []sim.Phase{{Duration: 40 * time.Minute, RPS: 5}, {Duration: 40 * time.Minute, RPS: 20}, {Duration: 40 * time.Minute, RPS: 8}},
		[]sim.Spike{{At: 50 * time.Minute, Duration: 3 * time.Minute, RPS: 40}})
	ramp := sim.Synthetic("ramp", []sim.Phase{{Duration: 30 * time.Minute, RPS: 2}, {Duration: 30 * time.Minute, RPS: 6}, {Duration: 30 * time.Minute, RPS: 12}}, nil)
	res, err := Fit(context.Background(), FitConfig{Traces: []*sim.Trace{day, ramp}, Episodes: 6, ModelEpisodes: 3,
		EpisodeLength: time.Hour, RateMin: 2, RateMax: 20, KMin: 1, KMax: 3, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	tb := res.Table
	if err := tb.Validate(); err != nil {
		t.Fatal(err)
	}
	if !tb.Trained() || tb.Episodes != 6 || tb.K != res.Model.K() {
		t.Fatalf("table: trained %v, episodes %d, k %d (model k %d)", tb.Trained(), tb.Episodes, tb.K, res.Model.K())
	}
	if len(tb.States) != tb.K || len(res.Samples) == 0 {
		t.Fatalf("%d state summaries for %d states, %d samples", len(tb.States), tb.K, len(res.Samples))
	}
	var visits float64
	for k := range tb.K {
		for _, n := range tb.N[k] {
			visits += n
		}
	}
	if visits < 20 {
		t.Fatalf("only %.1f level updates' worth of experience", visits)
	}
	sc, err := DefaultScenario(day, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := ScenarioAgent(&sc, 0, AgentSetup{Table: tb, States: agent.ModelStates{Model: res.Model}, Switch: agent.DefaultSwitchConfig(), Guard: agent.DefaultGuardConfig()})
	r, err := Evaluate(context.Background(), sc, "agent", []agent.Policy{g}, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.ServerHours <= 0 || r.Requests == 0 || r.Failed > r.Requests/100 {
		t.Fatalf("eval of the trained agent: %+v", r)
	}
	if sw := g.Policy.(*agent.Switch); sw.Counts()[agent.SwitchAgent] == 0 {
		t.Errorf("the trained agent never decided: %v", sw.Counts())
	}

	// The samples are the trained policy's own decisions, and its rules
	// explain them: on the held-out ones, the trees agree with >= 90% of
	// its scale-outs and of its scale-ins, and overall more often than
	// always-keep does.
	tree, err := Explain(res.Samples, ExplainDepth)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agreement %.3f (baseline %.3f) on %d held out: %+v\n%s", tree.Agreement, tree.Baseline, tree.Test, tree.Classes, strings.Join(tree.Rules, "\n"))
	if tree.Agreement <= tree.Baseline {
		t.Errorf("agreement %.3f, not above always-keep's %.3f", tree.Agreement, tree.Baseline)
	}
	for _, mv := range []int{agent.MoveScaleOut, agent.MoveScaleIn} {
		if c := tree.Classes[mv]; c.Decisions < 3 || c.Agreement < 0.9 {
			t.Errorf("%s: %d of %d held-out decisions agreed, want >= 90%% of >= 3", c.Class, c.Agreed, c.Decisions)
		}
	}
}

// TestFitScaleInPrice: the scale-in hysteresis is selected for the
// objective among the calm candidates, so a dear server-hour selects a
// smaller scale-in margin or a shorter window (and not a larger or longer
// one) than a cheap one, on the same training; the choice is stored in the
// table, named among the candidates with its score, and runs in the agent
// eval builds.
func TestFitScaleInPrice(t *testing.T) {
	// Two days in 4 h: the rate follows a slow wave, 5 min phases.
	wave := func(name string, lo, hi float64, n int) *sim.Trace {
		var ph []sim.Phase
		for i := range n {
			ph = append(ph, sim.Phase{Duration: 5 * time.Minute, RPS: lo + (hi-lo)*(0.5-0.5*math.Cos(2*math.Pi*float64(i)/float64(n/2)))})
		}
		return sim.Synthetic(name, ph, nil)
	}
	day, wave2 := wave("day", 4, 20, 48), wave("wave", 3, 10, 36)
	choose := func(serverHour float64) *agent.ScaleInChoice {
		t.Helper()
		rl := agent.RLConfig{Reward: agent.DefaultRLConfig().Reward.WithPrices(serverHour, 0)}
		res, err := Fit(context.Background(), FitConfig{Traces: []*sim.Trace{day, wave2}, Episodes: 6, ModelEpisodes: 3, SampleEpisodes: 1,
			EpisodeLength: 2 * time.Hour, RateMin: 5, RateMax: 50, KMin: 1, KMax: 3, Seed: 5, RL: rl})
		if err != nil {
			t.Fatal(err)
		}
		si := res.Table.ScaleIn
		if si == nil {
			t.Fatalf("price %v: no scale-in selected", serverHour)
		}
		t.Logf("price %v: z %+.1f window %v objective %.2f (calm bar %d orders, %d reversals) of %+v", serverHour, si.Z, si.Window, si.Objective, si.MaxActions, si.MaxReversals, si.Candidates)
		if err := res.Table.Validate(); err != nil {
			t.Fatal(err)
		}
		if want := len(scaleInZs) + len(scaleInWindows) - 1; len(si.Candidates) != want || si.Episodes != 4 {
			t.Fatalf("price %v: %d candidates on %d episodes, want %d on 4", serverHour, len(si.Candidates), si.Episodes, want)
		}
		// The choice is the calm candidate of the lowest objective; every
		// candidate is calm exactly when within the bar.
		best, calm := math.Inf(1), 0
		for _, c := range si.Candidates {
			if c.Calm != (c.Actions <= si.MaxActions && c.Reversals <= si.MaxReversals) {
				t.Fatalf("price %v: candidate %+v calm %v against the bar %d orders, %d reversals", serverHour, c, c.Calm, si.MaxActions, si.MaxReversals)
			}
			if c.Calm {
				calm++
				best = math.Min(best, c.Objective)
			}
		}
		if calm == 0 || si.Objective != best || si.MaxActions <= 0 {
			t.Fatalf("price %v: chose z %v window %v (%.3f), not the best of %d calm candidates (%.3f)", serverHour, si.Z, si.Window, si.Objective, calm, best)
		}
		// eval's agent runs the selected hysteresis.
		sc, err := DefaultScenario(day, 20, 1)
		if err != nil {
			t.Fatal(err)
		}
		_, a := ScenarioAgent(&sc, 0, AgentSetup{Table: res.Table, States: agent.ModelStates{Model: res.Model}})
		if got := a.Config(); got.ScaleInZ != si.Z || got.ScaleInWindow != si.Window {
			t.Fatalf("price %v: eval's agent runs z %v window %v, selected %v %v", serverHour, got.ScaleInZ, got.ScaleInWindow, si.Z, si.Window)
		}
		return si
	}
	cheap, dear := choose(0.375), choose(96)
	if dear.Z > cheap.Z || dear.Window > cheap.Window || (dear.Z == cheap.Z && dear.Window == cheap.Window) {
		t.Errorf("dear server-hour chose z %+.1f window %v, cheap z %+.1f window %v: want a smaller margin or a shorter window, neither larger",
			dear.Z, dear.Window, cheap.Z, cheap.Window)
	}
}
