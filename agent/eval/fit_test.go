package eval

import (
	"context"
	"github.com/lbtune/lbtune/agent"
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
