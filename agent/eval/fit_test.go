package eval

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/model"
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

// TestFitPeakServersDraw: with MinPeakServers each episode's scenario is
// sized for its own peak, log-uniform over [MinPeakServers, PeakServers]
// (both ends drawn, more small pools than large); without it every
// episode is sized for PeakServers, as before.
func TestFitPeakServersDraw(t *testing.T) {
	tr := sim.Synthetic("day", []sim.Phase{{Duration: 30 * time.Minute, RPS: 5}, {Duration: 30 * time.Minute, RPS: 20}}, nil)
	peaks := func(minPeak int) map[int]int {
		c := FitConfig{Traces: []*sim.Trace{tr}, EpisodeLength: time.Hour, PeakServers: 20, MinPeakServers: minPeak}.withDefaults()
		rng := rand.New(rand.NewPCG(1, 2))
		got := map[int]int{}
		for e := range 400 {
			sc, err := c.episode(rng, e)
			if err != nil {
				t.Fatal(err)
			}
			got[sc.Templates[0].Max/2]++ // DefaultScenario's max is 2 x peak
		}
		return got
	}
	if got := peaks(0); len(got) != 1 || got[20] != 400 {
		t.Fatalf("without MinPeakServers: peaks %v, want all 20", got)
	}
	got := peaks(2)
	small, large := 0, 0
	for p, n := range got {
		if p < 2 || p > 20 {
			t.Fatalf("peak %d outside [2, 20]: %v", p, got)
		}
		if p <= 6 {
			small += n
		} else {
			large += n
		}
	}
	if got[2] == 0 || got[20] == 0 {
		t.Errorf("ends not drawn: %v", got)
	}
	// log-uniform over [2, 21): P(peak <= 6) = ln(7/2)/ln(21/2) = 0.53
	if frac := float64(small) / 400; frac < 0.45 || frac > 0.62 {
		t.Errorf("share of peaks <= 6: %.2f, want about 0.53 (%v)", frac, got)
	}
}

// TestFitSmallPoolsInDistribution: a pool of 2 servers at half load (a
// largest share of at least 0.5) is out of distribution for most of its
// states when the agent trained on pools sized for 20 servers at peak,
// and in distribution when training drew small pools too.
func TestFitSmallPoolsInDistribution(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two agents")
	}
	wave := sim.Synthetic("wave", []sim.Phase{{Duration: 30 * time.Minute, RPS: 4}, {Duration: 30 * time.Minute, RPS: 12}, {Duration: 30 * time.Minute, RPS: 20}, {Duration: 30 * time.Minute, RPS: 8}}, nil)
	// The states of a static 2-server pool at about half load.
	flat := sim.Synthetic("flat", []sim.Phase{{Duration: time.Hour, RPS: 10}}, nil)
	sc, err := DefaultScenario(flat, 2, 7) // 2 servers at 70% at peak: mu = 10/1.4
	if err != nil {
		t.Fatal(err)
	}
	sc.Sim.Trace = flat.Scaled(0.75) // about 52% utilisation
	c := FitConfig{}.withDefaults()
	ep, _, err := c.run(sc)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := sc.Templates[0]
	var states []model.Features
	var units collector.PoolRates
	ep.OnDecision = func(obs agent.Observation, _ agent.Decision) {
		if units, err = agent.PoolUnits(&obs.Latest, tmpl.ServiceRate, tmpl.TargetP95, units); err != nil {
			t.Error(err)
			return
		}
		states = append(states, model.Extract(&units))
	}
	if err := ep.Run(context.Background(), agent.NewStatic(2)); err != nil {
		t.Fatal(err)
	}
	if len(states) < 50 {
		t.Fatalf("%d states of the 2-server pool", len(states))
	}
	oodShare := func(minPeak int) float64 {
		res, err := Fit(context.Background(), FitConfig{Traces: []*sim.Trace{wave}, Episodes: 2, ModelEpisodes: 8, SampleEpisodes: 1,
			EpisodeLength: 2 * time.Hour, RateMin: 1, RateMax: 60, PeakServers: 20, MinPeakServers: minPeak, KMin: 2, KMax: 4, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := range states {
			if res.Model.Assess(&states[i]).OOD {
				n++
			}
		}
		return float64(n) / float64(len(states))
	}
	large, small := oodShare(0), oodShare(2)
	t.Logf("2-server pool at half load: %.0f%% of %d states OOD trained on 20-server pools, %.0f%% with small pools", 100*large, len(states), 100*small)
	if small > 0.05 {
		t.Errorf("trained with small pools: %.0f%% of a 2-server pool's states out of distribution, want <= 5%%", 100*small)
	}
	if large < 0.5 {
		t.Errorf("trained on 20-server pools only: %.0f%% of a 2-server pool's states out of distribution; the test no longer shows the difference", 100*large)
	}
}
