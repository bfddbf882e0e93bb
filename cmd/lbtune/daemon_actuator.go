package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// daemonTimed times every action of an applier into the actuation latency
// metric.
type daemonTimed struct {
	agent.Applier
	latency *prometheus.HistogramVec
}

// daemonTimedApplier wraps a for the controller. An applier that counts
// booting servers and knows capacities (the simulator, fleets) keeps those
// methods visible, so the controller still finds them.
func daemonTimedApplier(a agent.Applier, latency *prometheus.HistogramVec) agent.Applier {
	t := daemonTimed{Applier: a, latency: latency}
	if _, ok := a.(daemonBootCounter); ok {
		if _, ok := a.(daemonCapacities); ok {
			return &daemonTimedSized{daemonTimed: t}
		}
	}
	return &t
}

// SetWeights times the applier's SetWeights.
func (t *daemonTimed) SetWeights(ctx context.Context, pool string, w map[string]int) error {
	defer t.observe(pool, "weights", time.Now())
	return t.Applier.SetWeights(ctx, pool, w)
}

// Scale times the applier's Scale.
func (t *daemonTimed) Scale(ctx context.Context, pool string, n int) error {
	defer t.observe(pool, "scale", time.Now())
	return t.Applier.Scale(ctx, pool, n)
}

func (t *daemonTimed) observe(pool, action string, start time.Time) {
	t.latency.WithLabelValues(pool, action).Observe(time.Since(start).Seconds())
}

// daemonCapacities reports servers' relative capacities.
type daemonCapacities interface {
	Capacities(pool string) map[string]float64
}

// daemonTimedSized is daemonTimed for appliers that count booting servers
// and know capacities.
type daemonTimedSized struct {
	daemonTimed
}

// Booting forwards to the applier.
func (t *daemonTimedSized) Booting(pool string) int {
	return t.Applier.(daemonBootCounter).Booting(pool)
}

// Capacities forwards to the applier.
func (t *daemonTimedSized) Capacities(pool string) map[string]float64 {
	return t.Applier.(daemonCapacities).Capacities(pool)
}
