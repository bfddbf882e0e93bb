package eval

import (
	"math/rand/v2"

	"github.com/lbtune/lbtune/agent"
)

// AgentSetup is what it takes to run the agent on one pool of a Scenario:
// the policy table, the load-state model (nil: one state), the switch and
// guard settings, and the exploration seed.
type AgentSetup struct {
	Table  *agent.PolicyTable
	States agent.LoadStates
	Switch agent.SwitchConfig
	Guard  agent.GuardConfig
	Seed   uint64
}

// ScenarioAgent builds the agent as it runs in eval for pool i of sc: the
// Agent (its forecast horizon set to the pool's boot delay plus one
// interval) behind the Switch to the default threshold fallback, every
// decision through its own Guard.
func ScenarioAgent(sc *Scenario, i int, setup AgentSetup) (*agent.Guarded, *agent.Agent) {
	cfg := agent.RLConfig{}
	if setup.Table != nil {
		cfg = setup.Table.Config
	}
	boot := sc.Sim.WithDefaults().Pools[i].BootDelay
	cfg.Horizon = boot + sc.Interval
	a := agent.NewAgent(setup.Table, setup.States, cfg, rand.NewPCG(setup.Seed, uint64(i)))
	sw := agent.NewSwitch(a, agent.DefaultThreshold(), setup.Switch)
	return &agent.Guarded{Policy: sw, Guard: agent.NewGuard(setup.Guard, nil)}, a
}
