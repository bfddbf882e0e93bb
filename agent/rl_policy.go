package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// PolicyVersion is the version of the PolicyTable JSON layout; loading
// refuses any other.
const PolicyVersion = 1

// ErrPolicyVersion is returned when a stored policy has an unknown layout version.
var ErrPolicyVersion = errors.New("unsupported policy version")

// PolicyTable is what the agent learns and persists: Q-values of the
// server actions (Levels) per load state, Q-values of the weight actions
// per load state and balance, how much experience backs them, and where it
// came from. Q(s, level) = sum_k p(k | s) Q[k][level]: linear in the
// load-state posterior.
type PolicyTable struct {
	Version int       `json:"version"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// K is the number of load states of the model the table goes with.
	K int `json:"k"`
	// Levels are the server actions.
	Levels []Level `json:"levels"`
	// Q is K x len(Levels); N the posterior mass of updates per entry.
	Q [][]float64 `json:"q"`
	N [][]float64 `json:"n"`
	// WeightQ is 2K x 3: row 2k is state k with balanced servers, 2k+1
	// with unbalanced ones; columns are keep, shift, reset.
	WeightQ [][]float64 `json:"weight_q"`
	// Steps is the number of learning updates; Episodes the simulated
	// episodes; TrainedOn names the data (trace files, datasets).
	Steps     int      `json:"steps"`
	Episodes  int      `json:"episodes"`
	TrainedOn []string `json:"trained_on,omitempty"`
	// Config is the agent configuration the table was trained with.
	Config RLConfig `json:"config"`
	// States summarise each load state in real units, as met in training.
	States []StateSummary `json:"states,omitempty"`
	// ScaleIn is the scale-in hysteresis training selected for the
	// objective (eval.Fit); when set, its Z and Window win over the
	// RLConfig's ScaleInZ and ScaleInWindow, as Levels win over its
	// levels. Tables without it (trained before the selection) keep the
	// configuration's: 1 sigma over the most cautious level, 10 min.
	ScaleIn *ScaleInChoice `json:"scale_in,omitempty"`
}

// ScaleInChoice is a scale-in hysteresis selected by its objective: the
// chosen margin and window, and the objective of every candidate tried on
// the same held-in episodes.
type ScaleInChoice struct {
	// Z is the chosen RLConfig.ScaleInZ: the scale-in plans' headroom in
	// forecast sigmas over the most cautious level's (negative: less than
	// that level's, down to the bare forecast).
	Z float64 `json:"z"`
	// Window is the chosen RLConfig.ScaleInWindow.
	Window time.Duration `json:"window"`
	// Objective is the chosen candidate's mean objective per selection
	// episode (agent.RewardConfig.Cost summed over an episode, as eval
	// reports it); Episodes the number of episodes each candidate ran.
	Objective float64 `json:"objective"`
	Episodes  int     `json:"episodes"`
	// MaxActions and MaxReversals are the calm bar every candidate's scale
	// orders and reversals, summed over the episodes, had to meet (the
	// calm goals' HPA yardsticks run on the same episodes).
	MaxActions   int `json:"max_actions"`
	MaxReversals int `json:"max_reversals"`
	// Candidates are every candidate tried, in the order tried.
	Candidates []ScaleInCandidate `json:"candidates"`
}

// ScaleInCandidate is one scale-in hysteresis tried: its mean objective
// per selection episode, its scale orders and reversals summed over the
// episodes, and whether those met the calm bar.
type ScaleInCandidate struct {
	Z         float64       `json:"z"`
	Window    time.Duration `json:"window"`
	Objective float64       `json:"objective"`
	Actions   int           `json:"actions"`
	Reversals int           `json:"reversals"`
	Calm      bool          `json:"calm"`
}

// NewPolicyTable returns an untrained table for k load states. Its priors
// prefer the middle headroom level, keeping balanced weights and shifting
// unbalanced ones, by a margin any real experience overrides.
func NewPolicyTable(k int, cfg RLConfig) *PolicyTable {
	if k < 1 {
		panic("agent: policy table with no load state")
	}
	cfg = cfg.WithDefaults()
	t := &PolicyTable{Version: PolicyVersion, Name: "agent", K: k, Levels: cfg.Levels, Config: cfg}
	mid := len(cfg.Levels) / 2
	for range k {
		q := make([]float64, len(cfg.Levels))
		q[mid] = 1e-3
		t.Q = append(t.Q, q)
		t.N = append(t.N, make([]float64, len(cfg.Levels)))
		t.WeightQ = append(t.WeightQ, []float64{1e-3, 0, 0}, []float64{0, 1e-3, 0})
	}
	return t
}

// Clone returns a deep copy of t: an agent learning online updates its own
// copy, so tables shared between pools (and read by the API) never change
// under a reader.
func (t *PolicyTable) Clone() *PolicyTable {
	c := *t
	c.Levels = append([]Level(nil), t.Levels...)
	c.Config.Levels = append([]Level(nil), t.Config.Levels...)
	c.Q, c.N, c.WeightQ = rlCloneRows(t.Q), rlCloneRows(t.N), rlCloneRows(t.WeightQ)
	c.TrainedOn = append([]string(nil), t.TrainedOn...)
	c.States = append([]StateSummary(nil), t.States...)
	if t.ScaleIn != nil {
		si := *t.ScaleIn
		si.Candidates = append([]ScaleInCandidate(nil), t.ScaleIn.Candidates...)
		c.ScaleIn = &si
	}
	return &c
}

func rlCloneRows(rows [][]float64) [][]float64 {
	out := make([][]float64, len(rows))
	for i, r := range rows {
		out[i] = append([]float64(nil), r...)
	}
	return out
}

// Trained reports whether the table holds any experience.
func (t *PolicyTable) Trained() bool { return t != nil && t.Steps > 0 }

// minVisits is the posterior mass of experience below which a Q-value is
// not trusted: such a level is valued just below the worst tried level of
// its state (an untried level never wins on its zero initial value), and a
// state with no tried level keeps the prior.
const minVisits = 3

// levelValues returns Q(s, level) for every level given the posterior.
func (t *PolicyTable) levelValues(post []float64) []float64 {
	v := make([]float64, len(t.Levels))
	for k, p := range post {
		if p < 1e-9 {
			continue
		}
		row := t.trusted(k)
		for a := range v {
			v[a] += p * row[a]
		}
	}
	return v
}

// trusted returns state k's level values with untried levels pessimised.
func (t *PolicyTable) trusted(k int) []float64 {
	worst, tried := math.Inf(1), false
	for a, n := range t.N[k] {
		if n >= minVisits {
			worst, tried = math.Min(worst, t.Q[k][a]), true
		}
	}
	if !tried {
		return t.Q[k]
	}
	row := make([]float64, len(t.Q[k]))
	for a, n := range t.N[k] {
		row[a] = t.Q[k][a]
		if n < minVisits {
			row[a] = worst - 1
		}
	}
	return row
}

// updateLevel moves Q(post, level) towards the mean reward per interval r
// of a block that started in post: for each state k,
// Q[k][level] += step_k (r - Q[k][level]) with step_k = max(alpha,
// p_k / N[k][level]): the posterior-weighted sample average while
// experience is thin, then a constant rate that tracks drift online.
func (t *PolicyTable) updateLevel(post []float64, level int, r float64, cfg RLConfig) {
	for k, p := range post {
		if p < 1e-6 {
			continue
		}
		t.N[k][level] += p
		step := math.Max(cfg.Alpha*p, p/t.N[k][level])
		t.Q[k][level] += step * (r - t.Q[k][level])
	}
	t.Steps++
}

// updateWeight applies one Q-learning step to the weight action of prev,
// which earned r and led to weight row wstate.
func (t *PolicyTable) updateWeight(prev *rlStep, r float64, wstate int, cfg RLConfig) {
	wq := t.WeightQ[wstate]
	target := r + cfg.Gamma*wq[rlArgmax(wq)]
	t.WeightQ[prev.wstate][prev.waction] += cfg.Alpha * (target - t.WeightQ[prev.wstate][prev.waction])
}

// Validate checks the table's shape.
func (t *PolicyTable) Validate() error {
	if t.Version != PolicyVersion {
		return fmt.Errorf("policy %q version %d: %w", t.Name, t.Version, ErrPolicyVersion)
	}
	if t.K < 1 || len(t.Levels) == 0 {
		return fmt.Errorf("policy %q: %d states, %d levels", t.Name, t.K, len(t.Levels))
	}
	for i, l := range t.Levels {
		if math.IsNaN(l.Z) || math.IsInf(l.Z, 0) || l.Z < 0 || !(l.Tail > 0 && l.Tail < 1) {
			return fmt.Errorf("policy %q: level %d (z %v, tail %v) out of range", t.Name, i, l.Z, l.Tail)
		}
	}
	if si := t.ScaleIn; si != nil {
		// The scale-in plans' headroom, the most cautious level's plus Z,
		// is at least the bare forecast.
		top := t.Levels[len(t.Levels)-1].Z
		if math.IsNaN(si.Z) || math.IsInf(si.Z, 0) || top+si.Z < 0 || si.Window <= 0 {
			return fmt.Errorf("policy %q: scale-in z %v (most cautious level z %v), window %v out of range", t.Name, si.Z, top, si.Window)
		}
	}
	if len(t.Q) != t.K || len(t.N) != t.K || len(t.WeightQ) != 2*t.K {
		return fmt.Errorf("policy %q: tables do not match %d states", t.Name, t.K)
	}
	for k := range t.K {
		if len(t.Q[k]) != len(t.Levels) || len(t.N[k]) != len(t.Levels) {
			return fmt.Errorf("policy %q: state %d has %d values for %d levels", t.Name, k, len(t.Q[k]), len(t.Levels))
		}
		for _, v := range t.Q[k] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("policy %q: state %d has a non-finite value", t.Name, k)
			}
		}
	}
	for _, row := range t.WeightQ {
		if len(row) != numWeightActions {
			return fmt.Errorf("policy %q: weight row with %d actions", t.Name, len(row))
		}
	}
	return nil
}

// DecodePolicy parses and validates a policy table from JSON.
func DecodePolicy(b []byte) (*PolicyTable, error) {
	var t PolicyTable
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// ReadPolicyFile reads a policy table from a JSON file.
func ReadPolicyFile(path string) (*PolicyTable, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	t, err := DecodePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// EncodePolicy is the JSON of t as DecodePolicy reads it and the store
// keeps it (datasets.Store.PutPolicy).
func EncodePolicy(t *PolicyTable) ([]byte, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode policy %s: %w", t.Name, err)
	}
	return b, nil
}

// ScaleInSetting is the scale-in hysteresis the table runs with: its
// selected ScaleIn when training chose one (selected true), else its
// configuration's ScaleInZ and ScaleInWindow (defaults filled in).
func (t *PolicyTable) ScaleInSetting() (choice ScaleInChoice, selected bool) {
	if t.ScaleIn != nil {
		return *t.ScaleIn, true
	}
	c := t.Config.WithDefaults()
	return ScaleInChoice{Z: c.ScaleInZ, Window: c.ScaleInWindow}, false
}

// Values returns load state k's value of every level as the greedy policy
// sees it (untried levels pessimised).
func (t *PolicyTable) Values(k int) []float64 { return t.trusted(k) }

// Preferred says in words which level load state k prefers.
func (t *PolicyTable) Preferred(k int) string {
	l := rlArgmax(t.trusted(k))
	return fmt.Sprintf("L%d (%s)", l, rlDescribeLevel(t.Levels[l]))
}
