package main

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/cmd/lbtune/config"
	"github.com/lbtune/lbtune/datasets"
)

// daemonPolicyFactory builds a pool's policies: auto (the agent behind its
// fallback switch) and fallback (the threshold policy alone).
type daemonPolicyFactory func(pc config.Pool, t agent.Template) (auto, fallback agent.Policy, err error)

// daemonPolicies returns the policy factory for cfg and a JSON description
// of the loaded model (nil when there is none). Without a model the agent
// is untrained and its switch hands every decision to the fallback,
// saying so in each decision's reason.
func daemonPolicies(cfg *config.Config, _ *datasets.Store, log *slog.Logger) (daemonPolicyFactory, json.RawMessage, error) {
	if cfg.Model.Path != "" {
		return nil, nil, fmt.Errorf("model %s: loading a trained model is not wired yet: leave model.path empty to run the threshold fallback", cfg.Model.Path)
	}
	log.Info("no model configured: the threshold fallback decides until a model is trained")
	f := func(pc config.Pool, t agent.Template) (agent.Policy, agent.Policy, error) {
		fallback := func() agent.Policy {
			tc := agent.DefaultThresholdConfig()
			tc.TargetP95 = t.TargetP95
			return agent.NewThreshold(tc)
		}
		ag := agent.NewAgent(nil, nil, agent.RLConfig{}, nil)
		return agent.NewSwitch(ag, fallback(), agent.DefaultSwitchConfig()), fallback(), nil
	}
	return f, nil, nil
}
