package eval

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/lbtune/lbtune/agent"
	"os"
	"time"

	"github.com/lbtune/lbtune/agent/sim"
	"go.yaml.in/yaml/v3"
)

// ScenarioFile is the YAML form of a Scenario (`lbtune eval --config`):
// the simulated pools with their templates; the trace comes from --trace.
//
//	interval: 30s        # decision interval (default 30s)
//	window: 8            # intervals per observation (default 8)
//	c1: 1                # cost per request in the system (default 1)
//	c2: 1                # cost per powered server (default 1)
//	pools:
//	  - name: light
//	    share: 0.7         # fraction of the trace's arrivals
//	    speed: 1           # server speed factor
//	    slots: 1           # concurrency cap per server
//	    max_queue: 50      # per-server queue cap, 0 = none
//	    balancer: least_conn   # least_conn, swrr, p2c, haproxy_rr
//	    boot_delay: 60s
//	    min: 1
//	    max: 40
//	    target_p95: 200ms
//	    classes:
//	      - {name: light, share: 0.8, service: {kind: exp, mean: 0.02}}
//	      - {name: heavy, share: 0.2, service: {kind: lognormal, mean: 0.2, scv: 2}}
//	    failures: {at: [2h], per_server_hour: 0.01, replace: true}
//
// Every pool starts with the oracle's t = 0 servers.
type ScenarioFile struct {
	Interval time.Duration  `yaml:"interval"`
	Window   int            `yaml:"window"`
	C1       *float64       `yaml:"c1"`
	C2       *float64       `yaml:"c2"`
	Pools    []ScenarioPool `yaml:"pools"`
}

// ScenarioPool is one pool of a ScenarioFile: the simulator's PoolConfig
// plus the template fields.
type ScenarioPool struct {
	sim.PoolConfig `yaml:",inline"`
	Min            int           `yaml:"min"`
	Max            int           `yaml:"max"`
	TargetP95      time.Duration `yaml:"target_p95"`
}

// ReadScenarioFile decodes a scenario file strictly (unknown keys are
// errors), checks it and builds the Scenario for trace tr and seed.
func ReadScenarioFile(path string, tr *sim.Trace, seed uint64) (Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("read scenario: %w", err)
	}
	var f ScenarioFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", path, err)
	}
	sc, err := f.Scenario(tr, seed)
	if err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// Scenario checks f and builds the Scenario for trace tr and seed.
func (f ScenarioFile) Scenario(tr *sim.Trace, seed uint64) (Scenario, error) {
	sc := Scenario{Interval: f.Interval, Window: f.Window, C1: 1, C2: 1, Sim: sim.Config{Seed: seed, Trace: tr}}
	if sc.Interval == 0 {
		sc.Interval = DefaultEvalInterval
	}
	if sc.Window == 0 {
		sc.Window = 8
	}
	if f.C1 != nil {
		sc.C1 = *f.C1
	}
	if f.C2 != nil {
		sc.C2 = *f.C2
	}
	var errs []error
	if sc.Interval < time.Second {
		errs = append(errs, fmt.Errorf("interval %v must be at least 1s", sc.Interval))
	}
	if sc.Window < 1 {
		errs = append(errs, fmt.Errorf("window %d must be >= 1", sc.Window))
	}
	if sc.C1 < 0 || sc.C2 < 0 {
		errs = append(errs, fmt.Errorf("cost coefficients c1 %v, c2 %v must not be negative", sc.C1, sc.C2))
	}
	for _, p := range f.Pools {
		sc.Sim.Pools = append(sc.Sim.Pools, p.PoolConfig)
		if p.Max > 0 && p.Min > p.Max {
			errs = append(errs, fmt.Errorf("pool %s: min %d exceeds max %d", p.Name, p.Min, p.Max))
		}
		if p.TargetP95 <= 0 {
			errs = append(errs, fmt.Errorf("pool %s: target_p95 must be positive", p.Name))
		}
	}
	if err := sc.Sim.WithDefaults().Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Scenario{}, errors.Join(errs...)
	}
	sc.Sim = sc.Sim.WithDefaults()
	for i, p := range f.Pools {
		sc.Templates = append(sc.Templates, agent.Template{Min: p.Min, Max: p.Max, TargetP95: p.TargetP95, ServiceRate: 1 / sc.Sim.Pools[i].MeanService()})
	}
	sc.StartAtOracle()
	return sc, nil
}
