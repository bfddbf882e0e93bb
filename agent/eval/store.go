package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/model"
)

// DefaultModelPath is the shipped model + policy store `--policies agent`
// uses when no --model is given (reproduced by `make model`).
const DefaultModelPath = "datasets/default-agent.db"

// SamplesKey is where training keeps the decision samples the policy tree
// is distilled from, in the policies bucket.
const SamplesKey = "agent-samples/latest"

// PolicyName is the name the trained agent's policy is saved under.
const PolicyName = "agent"

// TrainReport is the JSON summary of policy training (`lbtune policy train
// --json`, and the "policy" step of `lbtune train --json`).
type TrainReport struct {
	ModelKey  string   `json:"model_key"`
	PolicyKey string   `json:"policy_key"`
	K         int      `json:"k"`
	Steps     int      `json:"steps"`
	Episodes  int      `json:"episodes"`
	TrainedOn []string `json:"trained_on"`
	Seconds   float64  `json:"seconds"`
	// Offline counts the recorded transitions fitted (--data with --data-target).
	Offline int `json:"offline_transitions"`
}

// SaveFit saves the result of Fit in st: the load-state model, the policy
// (named PolicyName) and the decision samples under SamplesKey. It returns
// the report of the training that started at start.
func SaveFit(st *datasets.Store, res *FitResult, start time.Time) (TrainReport, error) {
	mkey, err := model.Save(st, res.Model)
	if err != nil {
		return TrainReport{}, err
	}
	res.Table.Name = PolicyName
	pb, err := agent.EncodePolicy(res.Table)
	if err != nil {
		return TrainReport{}, err
	}
	pkey, err := st.PutPolicy(res.Table.Name, pb)
	if err != nil {
		return TrainReport{}, err
	}
	sb, err := json.Marshal(res.Samples)
	if err != nil {
		return TrainReport{}, fmt.Errorf("encode samples: %w", err)
	}
	if err := st.Put(datasets.BucketPolicies, SamplesKey, sb); err != nil {
		return TrainReport{}, fmt.Errorf("save samples: %w", err)
	}
	return TrainReport{ModelKey: mkey, PolicyKey: pkey, K: res.Table.K, Steps: res.Table.Steps, Offline: res.Offline,
		Episodes: res.Table.Episodes, TrainedOn: res.Table.TrainedOn, Seconds: time.Since(start).Seconds()}, nil
}

// Bundle is a trained agent read back from a store.
type Bundle struct {
	// Model is the load-state model.
	Model *model.Model
	// Table is the policy.
	Table *agent.PolicyTable
	// Samples are the decision samples the policy tree is distilled from
	// (nil when the store has none).
	Samples []agent.Sample
}

// LoadBundle reads the latest model, policy and samples from the store at
// path (DefaultModelPath when empty).
func LoadBundle(path string) (*Bundle, error) {
	if path == "" {
		path = DefaultModelPath
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no --model given and the default %s is missing (run 'make model'): %w", path, err)
		}
	}
	st, err := datasets.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	m, err := model.Load(st, "")
	if err != nil {
		return nil, err
	}
	var tb *agent.PolicyTable
	pb, _, err := st.LatestPolicy(PolicyName)
	if err == nil {
		tb, err = agent.DecodePolicy(pb)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if tb.K != m.K() {
		return nil, fmt.Errorf("%s: policy has %d load states, model %d: train them together", path, tb.K, m.K())
	}
	b := &Bundle{Model: m, Table: tb}
	if b.Samples, err = LoadSamples(st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// LoadSamples reads the decision samples saved under SamplesKey (nil when
// the store has none).
func LoadSamples(st *datasets.Store) ([]agent.Sample, error) {
	sb, err := st.Get(datasets.BucketPolicies, SamplesKey)
	if errors.Is(err, datasets.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []agent.Sample
	if err := json.Unmarshal(sb, &out); err != nil {
		return nil, fmt.Errorf("decode samples: %w", err)
	}
	return out, nil
}

// ExplainDepth is the default depth of the trees Explain fits.
const ExplainDepth = 3

// Explain distils the policy's decision samples into trees of the given
// depth (agent.Distil), holding out 30% of each move's decisions to score
// them on: what `lbtune policy show` and the daemon's /v1/policy show.
func Explain(samples []agent.Sample, depth int) (*agent.PolicyTree, error) {
	return agent.Distil(samples, depth, 0.3, 3000, 1)
}

// Agent builds the agent for pool p of scenario sc from the bundle, with
// the default switch and guard configurations.
func (b *Bundle) Agent(sc *Scenario, p int) agent.Policy {
	g, _ := ScenarioAgent(sc, p, AgentSetup{Table: b.Table, States: agent.ModelStates{Model: b.Model},
		Switch: agent.DefaultSwitchConfig(), Guard: agent.DefaultGuardConfig(), Seed: 1})
	return g
}

// ShowReport explains a trained agent (`lbtune policy show --json`).
type ShowReport struct {
	Policy    string        `json:"policy"`
	Created   time.Time     `json:"created"`
	TrainedOn []string      `json:"trained_on"`
	Episodes  int           `json:"episodes"`
	Steps     int           `json:"steps"`
	Levels    []agent.Level `json:"levels"`
	// PoolUnits says the centroids are in pool units (agent.RLConfig.PoolUnits).
	PoolUnits  bool                  `json:"pool_units"`
	States     []ShowState           `json:"states"`
	Switch     agent.SwitchConfig    `json:"switch"`
	Fallback   agent.ThresholdConfig `json:"fallback"`
	Guard      agent.GuardConfig     `json:"guard"`
	Tree       *agent.PolicyTree     `json:"tree,omitempty"`
	TreeReason string                `json:"tree_error,omitempty"`
	// Objective is the objective the policy was trained on (its table's
	// reward; lbtune policy train --server-hour, --violation-minute).
	Objective agent.RewardConfig `json:"objective"`
	// ScaleIn is the scale-in hysteresis the policy runs with and whether
	// training selected it for the objective (with every candidate's score).
	ScaleIn ShowScaleIn `json:"scale_in"`
	// AgentRules are the rules decision reasons name (agent.AgentRules).
	AgentRules []agent.AgentRule `json:"agent_rules"`
	// Pools are the configured pools' own fallback and objective, when
	// the caller knows them (lbtune policy show --config).
	Pools []ShowPool `json:"pools,omitempty"`
}

// ShowScaleIn is a policy's scale-in hysteresis (agent.PolicyTable.ScaleInSetting).
type ShowScaleIn struct {
	agent.ScaleInChoice
	// Selected is true when training selected the values by the objective
	// (Objective and Candidates are its scores); false for a policy trained
	// before the selection, which runs the configuration's.
	Selected bool `json:"selected"`
}

// ShowPool is one configured pool's threshold fallback and objective.
type ShowPool struct {
	Pool      string                `json:"pool"`
	Fallback  agent.ThresholdConfig `json:"fallback"`
	Objective agent.RewardConfig    `json:"objective"`
}

// ShowState is one load state in real units with its values.
type ShowState struct {
	State     int                `json:"state"`
	Share     float64            `json:"share"`
	Centroid  map[string]float64 `json:"centroid"`
	Seen      agent.StateSummary `json:"seen"`
	Values    []float64          `json:"values"`
	Visits    []float64          `json:"visits"`
	Preferred string             `json:"preferred"`
	Weights   []float64          `json:"weight_values"`
}

// Show builds the explanation of the bundle: its levels and load states
// with their values, the fallback and guard configurations, and the policy
// distilled into a decision tree of the given depth (or why it could not be).
func (b *Bundle) Show(depth int) ShowReport {
	tb := b.Table
	rep := ShowReport{Policy: PolicyName, Created: tb.Created, TrainedOn: tb.TrainedOn, Episodes: tb.Episodes, Steps: tb.Steps,
		Levels: tb.Levels, PoolUnits: tb.Config.PoolUnits, Switch: agent.DefaultSwitchConfig(), Fallback: agent.DefaultThresholdConfig(), Guard: agent.DefaultGuardConfig(),
		Objective: tb.Config.WithDefaults().Reward, AgentRules: agent.AgentRules}
	rep.ScaleIn.ScaleInChoice, rep.ScaleIn.Selected = tb.ScaleInSetting()
	clusters := b.Model.Clusters()
	for _, c := range clusters {
		k := c.Index
		s := ShowState{State: k, Share: c.Share, Centroid: tb.Config.Centroid(c.Centroid), Values: tb.Values(k), Visits: tb.N[k],
			Preferred: tb.Preferred(k), Weights: tb.WeightQ[2*k+1]}
		if k < len(tb.States) {
			s.Seen = tb.States[k]
		}
		rep.States = append(rep.States, s)
	}
	if tree, err := Explain(b.Samples, depth); err == nil {
		rep.Tree = tree
	} else {
		rep.TreeReason = err.Error()
	}
	return rep
}

// LoadRecordings reads the recorded datasets at paths (datasets.Load) for
// Fit: the feature samples of every file, for the load-state model, and,
// when targets (each pool's p95 target) is not empty, each file as a
// Recording whose logged weight changes start the weight values.
func LoadRecordings(paths []string, targets map[string]time.Duration) ([]model.Features, []Recording, error) {
	var samples []model.Features
	var recs []Recording
	for _, d := range paths {
		snaps, err := datasets.Load(d)
		if err != nil {
			return nil, nil, err
		}
		s, _ := model.Samples(snaps)
		samples = append(samples, s...)
		if len(targets) > 0 {
			recs = append(recs, Recording{Name: d, Snapshots: snaps, Targets: targets})
		}
	}
	return samples, recs, nil
}
