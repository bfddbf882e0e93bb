package agent

import (
	"math/rand/v2"

	"github.com/lbtune/lbtune/model"
)

// ModelStates adapts a trained model.Model to the agent's LoadStates.
type ModelStates struct{ Model *model.Model }

// K is the model's number of load states.
func (m ModelStates) K() int { return m.Model.K() }

// Posterior is the model's posterior of the observation's latest interval.
func (m ModelStates) Posterior(obs Observation, dst []float64) ([]float64, bool, error) {
	pr := obs.Latest
	post, ood := m.Model.Posterior(&pr, dst)
	return post, ood, nil
}

var _ LoadStates = ModelStates{}

// AgentSetup is what it takes to run the agent on one pool of a Scenario:
// the policy table, the load-state model (nil: one state), the switch and
// guard settings, and the exploration seed.
type AgentSetup struct {
	Table  *PolicyTable
	States LoadStates
	Switch SwitchConfig
	Guard  GuardConfig
	Seed   uint64
}

// ScenarioAgent builds the agent as it runs in eval for pool i of sc: the
// Agent (its forecast horizon set to the pool's boot delay plus one
// interval) behind the Switch to the default threshold fallback, every
// decision through its own Guard.
func ScenarioAgent(sc *Scenario, i int, setup AgentSetup) (*Guarded, *Agent) {
	cfg := RLConfig{}
	if setup.Table != nil {
		cfg = setup.Table.Config
	}
	boot := sc.Sim.WithDefaults().Pools[i].BootDelay
	cfg.Horizon = boot + sc.Interval
	a := NewAgent(setup.Table, setup.States, cfg, rand.NewPCG(setup.Seed, uint64(i)))
	sw := NewSwitch(a, NewThreshold(DefaultThresholdConfig()), setup.Switch)
	return &Guarded{Policy: sw, Guard: NewGuard(setup.Guard, nil)}, a
}
