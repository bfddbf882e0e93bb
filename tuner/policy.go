package tuner

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/eval"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/model"
	"github.com/lbtune/lbtune/tuner/config"
)

// policyFactory builds a pool's policies: auto (the agent behind its
// fallback switch) and fallback (the threshold policy alone).
// With online learning on, auto's agent learns into its own table, started
// from the pool's last saved one (learn.go).
type policyFactory func(pc config.Pool, t agent.Template) (auto, fallback agent.Policy, err error)

// trainedModel is the trained model and policy table the agent runs with.
type trainedModel struct {
	path  string
	model *model.Model
	table *agent.PolicyTable
	// samples are the policy's decision samples (nil in older stores);
	// explain distils them once, on the first /v1/policy.
	samples []agent.Sample
	explain func() (*agent.PolicyTree, error)
}

// loadPolicies loads the model + policy named in cfg (a store written by
// `lbtune train`) and returns the policy factory and a JSON description of
// the model for /v1/model (nil without a model). Without a model the agent
// is untrained, and its switch hands every decision to the threshold
// fallback, saying so in each decision's reason.
func loadPolicies(cfg *config.Config, store *datasets.Store, log *slog.Logger) (policyFactory, *trainedModel, json.RawMessage, error) {
	var dm *trainedModel
	var desc json.RawMessage
	if cfg.Model.Path == "" {
		log.Info("no model configured: the threshold fallback decides until a model is trained")
	} else {
		var err error
		dm, err = loadModel(cfg.Model.Path)
		switch {
		case errors.Is(err, errNoPolicy):
			// A model without a policy (train found too little data):
			// every pool set to run the agent runs the fallback instead.
			log.Warn("the model has no trained policy: the threshold fallback decides every pool set to run the agent (retrain with more data)",
				"path", cfg.Model.Path)
			dm = nil
		case err != nil:
			return nil, nil, nil, err
		default:
			if desc, err = dm.describe(); err != nil {
				return nil, nil, nil, err
			}
			log.Info("model loaded", "path", dm.path, "load_states", dm.model.K(), "policy_updates", dm.table.Steps)
		}
	}
	f := func(pc config.Pool, t agent.Template) (agent.Policy, agent.Policy, error) {
		fallback := func() (*agent.Threshold, error) {
			th, err := agent.NewThreshold(poolFallback(cfg, &pc, t))
			if err != nil {
				return nil, fmt.Errorf("pool %s: fallback: %w", pc.Name, err)
			}
			return th, nil
		}
		inSwitch, err := fallback()
		if err != nil {
			return nil, nil, err
		}
		alone, err := fallback()
		if err != nil {
			return nil, nil, err
		}
		if spec := cfg.PoolPolicy(&pc); spec != config.PolicyAgent {
			b, err := baselinePolicy(spec, poolFallback(cfg, &pc, t))
			if err != nil {
				return nil, nil, fmt.Errorf("policy: %w", err)
			}
			log.Info("pool runs a baseline policy", "pool", pc.Name, "policy", spec)
			return b, alone, nil
		}
		h := fnv.New64a()
		h.Write([]byte(pc.Name))
		src := rand.NewPCG(h.Sum64(), 1)
		var ag *agent.Agent
		if dm == nil && cfg.Model.Path != "" {
			// The model has no policy: the fallback runs in the agent's
			// place, so every decision (even a no-op) names it.
			log.Warn("no trained policy for this pool: the threshold fallback decides", "pool", pc.Name, "model", cfg.Model.Path)
			return inSwitch, alone, nil
		}
		if dm == nil {
			ag = agent.NewAgent(nil, nil, agent.RLConfig{}, src)
		} else {
			rc := dm.table.Config
			if pc.Sim != nil {
				// Forecast over the time a new server takes to serve.
				rc.Horizon = pc.Sim.BootDelay + cfg.Intervals.Decide
			}
			table := dm.table // shared read-only while not learning
			if lc := cfg.Model.Learning; lc.Enabled {
				tb, resumed, err := learnedTable(store, pc.Name, dm.table)
				if err != nil {
					return nil, nil, err
				}
				table = tb
				rc.Epsilon, rc.EpsilonDecay, rc.EpsilonMin = lc.Epsilon, lc.Decay, lc.MinEpsilon
				if resumed {
					rc.Epsilon = max(min(tb.Config.Epsilon, lc.Epsilon), lc.MinEpsilon)
				}
				log.Info("online learning", "pool", pc.Name, "resumed", resumed, "updates", tb.Steps, "epsilon", rc.Epsilon)
			}
			// The reward the agent learns from is the pool's objective, the
			// same the runtime stores and exports (Pool.Record).
			rc.Reward = cfg.PoolReward(&pc)
			ag = agent.NewAgent(table, agent.ModelStates{Model: dm.model}, rc, src)
			// The operator's window wins over the one training selected.
			if cfg.Model.ScaleInWindow > 0 {
				ag.SetScaleIn(ag.Config().ScaleInZ, cfg.Model.ScaleInWindow)
			}
		}
		return agent.NewSwitch(ag, inSwitch, agent.DefaultSwitchConfig()), alone, nil
	}
	return f, dm, desc, nil
}

// loadModel reads the model and the latest trainedPolicyName policy from the
// store at path (opened read-only and closed again).
func loadModel(path string) (*trainedModel, error) {
	st, err := datasets.OpenReadOnly(path)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	defer st.Close()
	m, err := model.Load(st, "")
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	tb, err := LoadPolicy(st, trainedPolicyName)
	if errors.Is(err, datasets.ErrNotFound) {
		return nil, fmt.Errorf("model %s: %w", path, errNoPolicy)
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if tb.K != m.K() {
		return nil, fmt.Errorf("model %s: the policy has %d load states, the model %d: train them together", path, tb.K, m.K())
	}
	samples, err := eval.LoadSamples(st)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	dm := &trainedModel{path: path, model: m, table: tb, samples: samples}
	dm.explain = sync.OnceValues(func() (*agent.PolicyTree, error) { return eval.Explain(dm.samples, eval.ExplainDepth) })
	return dm, nil
}

// errNoPolicy is loadModel's error for a model store without a trained
// policy (lbtune train stores none when it has too little data).
var errNoPolicy = errors.New("no trained policy in the model store")

// baselinePolicy builds the baseline a pool's policy setting names
// (config.ParsePolicy): threshold (with the pool's thresholds tc), hpa@U
// or static.
func baselinePolicy(spec string, tc agent.ThresholdConfig) (agent.Policy, error) {
	name, u, err := config.ParsePolicy(spec)
	if err != nil {
		return nil, err
	}
	switch name {
	case config.PolicyThreshold:
		return agent.NewThreshold(tc)
	case config.PolicyHPA:
		hc := agent.DefaultHPAConfig()
		hc.Target = u
		return agent.NewHPA(spec, hc), nil
	case config.PolicyStatic:
		return agent.NewStaticHold(), nil
	}
	return nil, fmt.Errorf("policy %q is not a baseline", spec)
}

// poolFallback is the threshold fallback of pool pc (config.PoolFallback)
// with the p95 target of its agent template t (the template's, in the
// pool's time).
func poolFallback(cfg *config.Config, pc *config.Pool, t agent.Template) agent.ThresholdConfig {
	tc := cfg.PoolFallback(pc)
	tc.TargetP95 = t.TargetP95
	return tc
}

// clusters are the load states in real units with the policy's value of
// each headroom level.
func (dm *trainedModel) clusters() []api.Cluster {
	var out []api.Cluster
	for _, c := range dm.model.Clusters() {
		ac := api.Cluster{ID: c.Index, Share: c.Share, Centroid: dm.table.Config.Centroid(c.Centroid), Values: map[string]float64{}}
		best := -1
		if c.Index < len(dm.table.Q) {
			for l, q := range dm.table.Q[c.Index] {
				if l >= len(dm.table.Levels) {
					break
				}
				name := levelName(l, dm.table.Levels[l])
				ac.Values[name] = q
				if best < 0 || q > dm.table.Q[c.Index][best] {
					best = l
				}
			}
		}
		if best >= 0 {
			ac.Preferred = levelName(best, dm.table.Levels[best])
		}
		out = append(out, ac)
	}
	return out
}

// levelName names a headroom level: plan for forecast + Z sigma with
// the queueing tail bound.
func levelName(i int, l agent.Level) string {
	return fmt.Sprintf("L%d z=%.1f tail=%.2f", i, l.Z, l.Tail)
}

// describe is /v1/model.
func (dm *trainedModel) describe() (json.RawMessage, error) {
	type policy struct {
		Name      string        `json:"name"`
		Created   time.Time     `json:"created"`
		Steps     int           `json:"updates"`
		Episodes  int           `json:"episodes"`
		TrainedOn []string      `json:"trained_on"`
		Levels    []agent.Level `json:"levels"`
	}
	return json.Marshal(struct {
		Path       string        `json:"path"`
		LoadStates int           `json:"load_states"`
		Clusters   []api.Cluster `json:"clusters"`
		Policy     policy        `json:"policy"`
	}{
		Path: dm.path, LoadStates: dm.model.K(), Clusters: dm.clusters(),
		Policy: policy{dm.table.Name, dm.table.Created, dm.table.Steps, dm.table.Episodes, dm.table.TrainedOn, dm.table.Levels},
	})
}
