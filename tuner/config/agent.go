package config

import (
	"time"

	"github.com/lbtune/lbtune/agent"
)

// Agent is the reward the agent's types carry: the configured weights,
// field by field. The violation penalty is not configurable and keeps the
// agent's default (agent.DefaultRLConfig). TestAgentConversion fails when
// a field is added to Reward or agent.RewardConfig alone.
func (r Reward) Agent() agent.RewardConfig {
	c := agent.DefaultRLConfig().Reward
	c.Latency, c.Errors, c.ServerCost = r.Latency, r.Errors, r.ServerCost
	return c
}

// Agent is the guard's limits: agent.DefaultGuardConfig with every
// non-zero configured limit in place of the default. StaleAfter is not
// configurable and keeps the default. TestAgentConversion fails when a
// field is added to Guard or agent.GuardConfig alone.
func (g Guard) Agent() agent.GuardConfig {
	c := agent.DefaultGuardConfig()
	set := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	set(&c.UpCooldown, g.UpCooldown)
	set(&c.DownCooldown, g.DownCooldown)
	set(&c.SpikeHold, g.SpikeHold)
	set(&c.MinLifetime, g.MinLifetime)
	if g.MaxStepUp > 0 {
		c.MaxStepUp = g.MaxStepUp
	}
	if g.MaxStepDown > 0 {
		c.MaxStepDown = g.MaxStepDown
	}
	return c
}
