package agent

import (
	"math"
	"time"
)

// RewardInterval is the span of time the reward's weights are per: 30 s,
// the decision interval the agent is trained at (eval's default). The
// reward of an interval is the cost rate of the pool's state in it over
// RewardInterval, whatever the decision interval, so the same weights mean
// the same prices online (15 s decisions) and in training (30 s).
const RewardInterval = 30 * time.Second

// RewardConfig is the objective the agent optimises and eval scores: the
// cost rate of a pool, per RewardInterval,
//
//	cost = Latency x max(0, p95/target - 1) + Violation x [p95 > target]
//	       + Errors x error ratio + ServerCost x servers
//
// The reward of an interval is -cost (Reward); eval's objective is cost
// integrated over the run (Cost with the run's minutes). The operator sets
// it in prices (WithPrices): ServerCost is the price of a server-hour
// x RewardInterval / 1 h, Violation the cost of a minute over the target
// x RewardInterval / 1 min. The YAML keys let the runtime's configuration
// reuse the type.
type RewardConfig struct {
	// Latency weighs how far the p95 is above the target, per target.
	Latency float64 `json:"latency" yaml:"latency"`
	// Violation is the cost of an interval whose p95 missed the target.
	Violation float64 `json:"violation" yaml:"violation"`
	// Errors weighs the error ratio (0..1).
	Errors float64 `json:"errors" yaml:"errors"`
	// ServerCost is the cost of one server for one interval.
	ServerCost float64 `json:"server_cost" yaml:"server_cost"`
}

// Cost is the objective's cost of a pool over dt: errRatio is its error
// ratio in 0..1 (collector.PoolRates.ErrorRatio), p95Ms its p95 in ms
// (collector.PoolRates.P95Ms online, the simulator's exact p95 in training
// and eval), servers the mean number of servers paid for over dt and target
// the p95 target. It is the cost rate of the type's formula x dt /
// RewardInterval. A p95 of 0 means none is known (nothing was served) and
// costs no latency; +Inf means nothing completed although requests came
// (every one failed): the target was missed, costing Violation but no
// Latency term, whose size is unknown. A target of 0 prices no latency.
func (c RewardConfig) Cost(errRatio, p95Ms, servers float64, target, dt time.Duration) float64 {
	cost := c.Errors*errRatio + c.ServerCost*servers
	t := float64(target) / float64(time.Millisecond)
	switch {
	case t <= 0 || !(p95Ms > 0):
	case math.IsInf(p95Ms, 1):
		cost += c.Violation
	default:
		cost += c.Latency * math.Max(0, p95Ms/t-1)
		if p95Ms > t {
			cost += c.Violation
		}
	}
	return cost * (float64(dt) / float64(RewardInterval))
}

// Reward is the reward of one interval of a pool: minus its Cost over
// RewardInterval with servers the servers paid for in the interval. It is
// the one the agent learns from (online), offline training scores in the
// simulator, and the runtime stores, exports and shows.
func (c RewardConfig) Reward(errRatio, p95Ms float64, servers int, target time.Duration) float64 {
	return -c.Cost(errRatio, p95Ms, float64(servers), target, RewardInterval)
}

// ServerHour is the price of one server for one hour the weights set:
// ServerCost x 1 h / RewardInterval (6 at the agent's defaults).
func (c RewardConfig) ServerHour() float64 {
	return c.ServerCost * float64(time.Hour) / float64(RewardInterval)
}

// ViolationMinute is what one minute over the p95 target costs:
// Violation x 1 min / RewardInterval (8 at the agent's defaults).
func (c RewardConfig) ViolationMinute() float64 {
	return c.Violation * float64(time.Minute) / float64(RewardInterval)
}

// WithPrices returns c with ServerCost and Violation set from the price of
// a server-hour and the cost of a minute over the target (the inverse of
// ServerHour and ViolationMinute); a price that is not positive keeps c's.
func (c RewardConfig) WithPrices(serverHour, violationMinute float64) RewardConfig {
	if serverHour > 0 {
		c.ServerCost = serverHour * float64(RewardInterval) / float64(time.Hour)
	}
	if violationMinute > 0 {
		c.Violation = violationMinute * float64(RewardInterval) / float64(time.Minute)
	}
	return c
}
