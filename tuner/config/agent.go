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

// Agent is the threshold fallback base with every set field of f in place
// of base's.
func (f Fallback) Agent(base agent.ThresholdConfig) agent.ThresholdConfig {
	c := base
	setD := func(dst *time.Duration, v *time.Duration) {
		if v != nil {
			*dst = *v
		}
	}
	setF := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	setD(&c.Window, f.Window)
	setD(&c.MinBreach, f.MinBreach)
	setF(&c.MinRequests, f.MinRequests)
	setF(&c.UtilHigh, f.UtilHigh)
	setF(&c.UtilLow, f.UtilLow)
	setF(&c.GrowRatio, f.GrowRatio)
	setF(&c.ShrinkRatio, f.ShrinkRatio)
	setF(&c.ShrinkBelow, f.ShrinkBelow)
	if f.Reserve != nil {
		c.Reserve = *f.Reserve
	}
	setF(&c.QueueHigh, f.QueueHigh)
	setF(&c.QueueLow, f.QueueLow)
	setD(&c.DownCooldown, f.DownCooldown)
	setF(&c.BreachConfidence, f.BreachConfidence)
	if f.Proportional != nil {
		c.Proportional = *f.Proportional
	}
	setD(&c.BreachMemory, f.BreachMemory)
	return c
}

// PoolFallback is pool p's threshold fallback: agent.DefaultThresholdConfig
// with the template's p95 target, guard.down_cooldown (when set) as the
// wait between a change and a shrink, and the pool's template.fallback
// settings over both.
func (c *Config) PoolFallback(p *Pool) agent.ThresholdConfig {
	tc := agent.DefaultThresholdConfig()
	tc.TargetP95 = p.Template.Target()
	if c.Guard.DownCooldown > 0 {
		tc.DownCooldown = c.Guard.DownCooldown
	}
	return p.Template.Fallback.Agent(tc)
}

// PoolReward is pool p's objective: the configured reward (Reward.Agent)
// with the template's prices of a server-hour and a violating minute,
// where set (agent.RewardConfig.WithPrices).
func (c *Config) PoolReward(p *Pool) agent.RewardConfig {
	o := p.Template.Objective
	return c.Reward.Agent().WithPrices(o.ServerHour, o.ViolationMinute)
}
