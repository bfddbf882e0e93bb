package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
)

// Reader is what the API and the dashboard show.
type Reader interface {
	// State is the daemon's current state.
	State(ctx context.Context) (State, error)
	// Policy is each pool's policy in real units.
	Policy(ctx context.Context) (Policy, error)
	// Decisions are the decisions made at or after since, oldest first, at
	// most limit of the newest (pool "" = every pool).
	Decisions(ctx context.Context, pool string, since time.Time, limit int) ([]agent.Decision, error)
	// Model describes the trained model (JSON), or ErrNoModel.
	Model(ctx context.Context) (json.RawMessage, error)
	// Series is a pool's history since the given time, oldest first.
	Series(ctx context.Context, pool string, since time.Time) ([]collector.PoolPoint, error)
}

// Operator changes what the daemon does.
type Operator interface {
	// SetMode switches one pool ("" = every pool) to mode.
	SetMode(ctx context.Context, pool, mode string) error
	// Scale asks for delta (+1 or -1) serving servers in a pool in manual
	// mode, and returns the decision made (after the guard).
	Scale(ctx context.Context, pool string, delta int) (agent.Decision, error)
	// Pause stops (paused) or resumes deciding for a pool.
	Pause(ctx context.Context, pool string, paused bool) error
	// Node adds, removes or launches one node.
	Node(ctx context.Context, req NodeRequest) (string, error)
	// Template starts (up) or stops (down) the pool described by spec, a
	// YAML pool entry as in lbtune.yaml.
	Template(ctx context.Context, op string, spec []byte) (string, error)
}

// Sentinel errors an Operator or Reader returns; the API maps them to
// HTTP status codes.
var (
	// ErrUnknownPool is returned for a pool the daemon does not run (404).
	ErrUnknownPool = errors.New("unknown pool")
	// ErrBadRequest is returned for a malformed or out-of-range request (400).
	ErrBadRequest = errors.New("bad request")
	// ErrConflict is returned for a request the pool's mode or state refuses (409).
	ErrConflict = errors.New("refused in the current state")
	// ErrNoModel is returned by Model when no trained model is loaded (404).
	ErrNoModel = errors.New("no trained model loaded")
)

// State is the daemon's current state.
type State struct {
	Version string      `json:"version"`
	Started time.Time   `json:"started"`
	Now     time.Time   `json:"now"`
	Pools   []PoolState `json:"pools"`
}

// PoolState is one pool's current state.
type PoolState struct {
	Name string `json:"name"`
	// Mode is auto, shadow, manual or fallback-only.
	Mode   string `json:"mode"`
	Paused bool   `json:"paused"`
	// Simulated is true for a simulated cluster.
	Simulated bool `json:"simulated"`
	// Now is the pool's clock: a simulated cluster runs ahead of the wall
	// clock by its speed-up. Charts show the 30 minutes before it.
	Now time.Time `json:"now,omitzero"`
	// Min, Max and TargetMs come from the pool's template.
	Min      int     `json:"min"`
	Max      int     `json:"max"`
	TargetMs float64 `json:"target_ms"`
	// Latest is the most recent interval, when there is one.
	Latest *collector.PoolPoint `json:"latest,omitempty"`
	// Cluster is the GMM cluster of the latest state (-1 unknown).
	Cluster int `json:"cluster"`
	// FallbackActive is true when the last decision came from the fallback.
	FallbackActive bool `json:"fallback_active"`
	// LastDecision is the most recent decision.
	LastDecision *agent.Decision `json:"last_decision,omitempty"`
}

// Policy is every pool's policy.
type Policy struct {
	// Clusters are the loaded model's load states, which every pool
	// shares; absent without a model. GET /v1/policy?clusters=once serves
	// them only here, not again in every pool.
	Clusters []Cluster    `json:"clusters,omitempty"`
	Pools    []PoolPolicy `json:"pools"`
	// Explanation is the trained agent's policy distilled into rules, with
	// their agreement with the agent per move (scale-out, scale-in,
	// weights, keep) on held-out decisions; nil without a trained model or
	// its decision samples.
	Explanation *agent.PolicyTree `json:"explanation,omitempty"`
	// ExplanationError says why there is no explanation of a trained model.
	ExplanationError string `json:"explanation_error,omitempty"`
}

// PoolPolicy explains one pool's policy.
type PoolPolicy struct {
	Pool string `json:"pool"`
	// Policy names what decides now (e.g. "agent", "threshold").
	Policy string `json:"policy"`
	// Trained is false while only the fallback can decide.
	Trained bool `json:"trained"`
	// Clusters are the load states the model knows (the same as
	// Policy.Clusters; left out with ?clusters=once).
	Clusters []Cluster `json:"clusters"`
	// Fallback are the threshold fallback's settings, by name.
	Fallback map[string]float64 `json:"fallback"`
	// ScaleIn is the trained agent's scale-in hysteresis, by name: z (the
	// scale-in plans' headroom in forecast sigmas over the most cautious
	// level), window_s (its stabilisation window, the operator's
	// model.scale_in_window when set), selected (1 when training chose
	// them by the objective, 0 for a policy trained before that),
	// objective and episodes (the chosen candidate's mean objective per
	// selection episode, and their number); absent without a trained agent.
	ScaleIn map[string]float64 `json:"scale_in,omitempty"`
	// Objective is what the pool's agent minimises, by name: the price of
	// a server-hour, the cost of a minute over the p95 target, the target,
	// and the reward's weights per 30 s (agent.RewardConfig).
	Objective map[string]float64 `json:"objective"`
	// Balance is the pool's balancing algorithm and the agent's advice on
	// it; absent when the pool's balancer cannot tell (the simulator).
	Balance *PoolBalance `json:"balance,omitempty"`
}

// PoolBalance is a pool's balancing algorithm and the agent's advice
// (agent.AdviseBalance), as /v1/policy shows it.
type PoolBalance struct {
	// Algorithm is the balancer's name for what the pool runs
	// ("roundrobin", "leastconn"; NGINX's "" is weighted round robin).
	Algorithm string `json:"algorithm"`
	// Auto is true when lbtune follows the advice itself (NGINX method
	// auto); otherwise following it is the operator's.
	Auto bool `json:"auto"`
	// Advice is the algorithm the agent wants ("" = keep), from the last
	// decision; Reason says why.
	Advice string `json:"advice"`
	Reason string `json:"reason,omitempty"`
	// Error says why the algorithm could not be read now.
	Error string `json:"error,omitempty"`
}

// Cluster is one learned load state with the policy's values for it.
type Cluster struct {
	ID int `json:"id"`
	// Share is the fraction of training samples in the cluster.
	Share float64 `json:"share"`
	// Centroid is the cluster's mean in real units, by feature name.
	Centroid map[string]float64 `json:"centroid"`
	// Values are the action values in this state, by action name.
	Values map[string]float64 `json:"values,omitempty"`
	// Preferred is the action with the highest value.
	Preferred string `json:"preferred,omitempty"`
}

// NodeRequest asks for one node operation.
type NodeRequest struct {
	// Op is "add" (register an existing server), "rm" (drain and remove) or
	// "launch" (start a new server from the pool's template).
	Op   string `json:"op"`
	Pool string `json:"pool"`
	// Name is the server's name (rm, optional for add).
	Name string `json:"name,omitempty"`
	// Address is host:port (add).
	Address string `json:"address,omitempty"`
	// Size names a template size (launch, optional).
	Size string `json:"size,omitempty"`
}
