package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/cmd/lbtune/config"
)

// daemonActuator builds the agent.Applier of one configured actuator.
func daemonActuator(cfg *config.Config, a config.Actuator, log *slog.Logger) (agent.Applier, error) {
	switch {
	case a.HAProxy != nil:
		return &daemonWeightsOnly{kind: "haproxy", name: a.Name, weights: &haproxy.Runtime{Socket: a.HAProxy.Socket, Log: log.With("actuator", a.Name)}}, nil
	}
	return nil, fmt.Errorf("actuator %s: %s actuators are not wired into lbtune run yet", a.Name, a.Kind())
}

// daemonWeighter sets weights in a balancer.
type daemonWeighter interface {
	SetWeights(ctx context.Context, pool string, weights map[string]int) error
}

// daemonWeightsOnly applies weights through a balancer that cannot start
// servers by itself; a scale decision fails with an error saying so.
type daemonWeightsOnly struct {
	kind, name string
	weights    daemonWeighter
}

// SetWeights forwards to the balancer.
func (w *daemonWeightsOnly) SetWeights(ctx context.Context, pool string, weights map[string]int) error {
	return w.weights.SetWeights(ctx, pool, weights)
}

// Scale refuses: a balancer alone has no servers to start.
func (w *daemonWeightsOnly) Scale(_ context.Context, pool string, n int) error {
	return fmt.Errorf("scale %s to %d: actuator %s (%s) only sets weights: use a fleet or aws actuator to start servers", pool, n, w.name, w.kind)
}
