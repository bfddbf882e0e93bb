// Package agent decides, per pool and per interval, how many servers a pool
// should run and which weights its balancer should use. It holds the Policy
// seam, the learned RL policy, the threshold fallback, the baselines it is
// measured against, and the Guard every decision passes through. It consumes
// collector rates (and model posteriors) and emits Decisions; cmd/lbtune hands
// those to an actuator or to the simulator in agent/sim.
package agent

import (
	"context"
	"math"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// Observation is everything a policy sees of one pool at one decision instant.
// Policies must treat it as read-only.
type Observation struct {
	// Time is the decision instant (the end of the latest interval).
	Time time.Time
	// Pool is the pool's name.
	Pool string
	// Latest are the rates of the most recent interval.
	Latest collector.PoolRates
	// Window holds recent intervals, oldest first, Latest last. Policies
	// that smooth or ignore short spikes read it.
	Window []collector.PoolRates
	// Interval is the decision period: the time from one decision to the
	// next (the simulator's window intervals are this long too).
	Interval time.Duration
	// Step is the length of one Window interval: the scrape period in the
	// daemon (1 s against 5 s decisions by default), 0 when it equals
	// Interval. Read it through StepLen.
	Step time.Duration
	// DataAge is how old Latest is at Time; large values mean stale data.
	DataAge time.Duration
	// Servers is the number of servers serving (up, not draining).
	Servers int
	// Booting is the number of servers ordered but not yet serving.
	Booting int
	// Capacity maps a server name to its relative speed (1 = the pool's
	// reference size), where known; nil otherwise.
	Capacity map[string]float64
	// Template carries the pool's limits and targets.
	Template Template
}

// StepLen is the length of one Window interval: Step, or Interval when
// Step is unset.
func (o *Observation) StepLen() time.Duration {
	if o.Step > 0 {
		return o.Step
	}
	return o.Interval
}

// PeriodRate is the pool's request rate (requests/s) over the last decision
// period: the mean of the Window intervals that cover the last Interval
// (one interval when the window is as coarse as the decisions). A policy
// deciding every 5 s on 1 s scrapes thus sees every request of the period,
// not only the last second's.
func (o *Observation) PeriodRate() float64 {
	if len(o.Window) == 0 {
		return o.Latest.Requests()
	}
	k := 1
	if st := o.StepLen(); st > 0 && o.Interval > st {
		k = int(math.Round(float64(o.Interval) / float64(st)))
	}
	k = min(max(k, 1), len(o.Window))
	var sum float64
	for _, pr := range o.Window[len(o.Window)-k:] {
		sum += pr.Requests()
	}
	return sum / float64(k)
}

// Template is a pool's scaling template: its limits and its target.
type Template struct {
	// Min and Max bound the number of servers.
	Min, Max int
	// TargetP95 is the response-time target (p95).
	TargetP95 time.Duration
	// ServiceRate is the nominal requests per second one reference server
	// sustains, where known (0 = unknown).
	ServiceRate float64
	// MaxWeight is the largest weight the balancer accepts (NGINX 1000,
	// HAProxy 256); 0 means 256.
	MaxWeight int
}

// Decision is what a policy chose for one pool, with its provenance. The
// Guard may change it and records every change in Clamps.
type Decision struct {
	Time time.Time `json:"time"`
	Pool string    `json:"pool"`
	// Policy names the policy that made the decision (e.g. "agent",
	// "threshold", "hpa@0.5").
	Policy string `json:"policy"`
	// Servers is the desired number of serving servers; 0 means no change.
	Servers int `json:"servers,omitempty"`
	// Weights maps server name to its desired weight; nil means keep.
	Weights map[string]int `json:"weights,omitempty"`
	// Balance is the balancing algorithm the agent wants for the pool
	// (BalanceLeastConn, BalanceRoundRobin); "" means keep. The controller
	// sets it by AdviseBalance; only an Applier that follows the advice
	// (an NGINX upstream with method auto) changes the algorithm, on the
	// others it is advice to the operator.
	Balance string `json:"balance,omitempty"`
	// BalanceReason is AdviseBalance's words on the algorithm ("" when it
	// had nothing to say); Reason carries them too.
	BalanceReason string `json:"balance_reason,omitempty"`
	// Reason says in words why (e.g. "p95 412ms > target 250ms over 30s").
	Reason string `json:"reason"`
	// Metrics are the values the policy used, by name.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Clamps are the guard's changes, each with its reason.
	Clamps []Clamp `json:"clamps,omitempty"`
	// Outcome says what became of the decision (see the Outcome constants).
	Outcome Outcome `json:"outcome,omitempty"`
	// Error holds the actuator's error when Outcome is "failed".
	Error string `json:"error,omitempty"`
}

// Outcome says what became of a Decision. The values are the strings
// stored with decisions and shown by the API, so they never change.
type Outcome string

// The outcomes of a decision.
const (
	// OutcomeApplied: the decision's changes were made.
	OutcomeApplied Outcome = "applied"
	// OutcomeRefused: the guard refused the decision outright (stale data).
	OutcomeRefused Outcome = "refused"
	// OutcomeDryRun: shadow mode or no applier; nothing was changed.
	OutcomeDryRun Outcome = "dry-run"
	// OutcomeNoop: the decision asked for no change, or there was nothing
	// to decide on (too little or stale data).
	OutcomeNoop Outcome = "noop"
	// OutcomeFailed: reading data, the policy or the actuator failed; the
	// Decision's Error says how.
	OutcomeFailed Outcome = "failed"
)

// Clamp records one change the guard made to a decision.
type Clamp struct {
	Rule   string `json:"rule"`   // e.g. "max", "cooldown-up", "step"
	From   int    `json:"from"`   // value before the clamp
	To     int    `json:"to"`     // value after the clamp
	Reason string `json:"reason"` // e.g. "capped count from 12 to 10 to stay within max"
}

// Policy chooses a Decision for one pool from an Observation. Decide must
// not block on I/O; it may keep internal state across calls (sliding
// windows, cooldown memory), so one Policy value serves one pool.
type Policy interface {
	Name() string
	Decide(ctx context.Context, obs Observation) (Decision, error)
}

// Applier applies decisions to a pool: the real actuators (HAProxy runtime
// API, NGINX config, local fleet, AWS) and the simulator both satisfy it.
type Applier interface {
	// SetWeights sets the named servers' weights; servers not named keep theirs.
	SetWeights(ctx context.Context, pool string, weights map[string]int) error
	// Scale brings the pool to n serving servers: new servers boot and join,
	// surplus servers are drained (no new requests, in-flight ones finish)
	// and then removed.
	Scale(ctx context.Context, pool string, n int) error
}
