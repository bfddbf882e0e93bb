package agent

import (
	"math"
	"time"
)

// RewardConfig sets the reward the agent maximises per interval:
//
//	r = -(Latency x max(0, p95/target - 1) + Violation x [p95 > target]
//	      + Errors x error ratio + ServerCost x servers)
//
// the negative of eval's cost with the SLO expressed per interval. The
// YAML keys let the runtime's configuration reuse the type.
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

// Reward is the reward of one interval of a pool: the one the agent learns
// from (online), offline training scores in the simulator, and the runtime
// stores, exports and shows.
//
// errRatio is the interval's error ratio in 0..1
// (collector.PoolRates.ErrorRatio), p95Ms the pool's p95 in ms
// (collector.PoolRates.P95Ms online, the simulator's exact p95 in
// training), servers the servers paid for in the interval and target the
// p95 target. A p95 of 0 means none is known (nothing was served) and
// costs no latency; +Inf means nothing completed although requests came
// (every one failed): the target was missed, costing Violation but no
// Latency term, whose size is unknown. A target of 0 prices no latency.
func (c RewardConfig) Reward(errRatio, p95Ms float64, servers int, target time.Duration) float64 {
	cost := c.Errors*errRatio + c.ServerCost*float64(servers)
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
	return -cost
}
