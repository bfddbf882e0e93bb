package eval

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/sim"
)

// LoadTrace reads a t,rps trace file, keeps its slice [from, to) (0: from
// the start, to the end) and multiplies every rate by scale.
func LoadTrace(path string, from, to time.Duration, scale float64) (*sim.Trace, error) {
	tr, err := sim.ReadTraceFile(path)
	if err != nil {
		return nil, err
	}
	if from > 0 || to > 0 {
		if tr, err = tr.Slice(from, to); err != nil {
			return nil, err
		}
	}
	if scale != 1 {
		tr = tr.Scaled(scale)
	}
	return tr, nil
}

// ReadTraces reads every trace of a comma-separated list of files.
func ReadTraces(list string) ([]*sim.Trace, error) {
	var trs []*sim.Trace
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		tr, err := sim.ReadTraceFile(p)
		if err != nil {
			return nil, err
		}
		trs = append(trs, tr)
	}
	return trs, nil
}

// Specs splits a comma-separated list of policy specs, dropping blanks.
func Specs(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// TrainedAgent builds the trained agent for pool p of a scenario (the
// "agent" spec); the caller owns where the model and policy come from.
type TrainedAgent func(sc *Scenario, p int) (agent.Policy, error)

// Policy builds the policy named by spec for pool p of the scenario (one
// value per pool and run: policies keep state). Specs: static, threshold,
// hpa[@U] (target utilisation U in (0, 1], default 0.6), oracle[@H]
// (p95 headroom in (0, 1], default DefaultOracleHeadroom), agent (built by
// trained).
func (sc *Scenario) Policy(spec string, p int, trained TrainedAgent) (agent.Policy, error) {
	name, param, err := agent.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if !math.IsNaN(param) && name != "hpa" && name != "oracle" {
		return nil, fmt.Errorf("policy %q takes no parameter", spec)
	}
	switch name {
	case "static":
		return agent.NewStatic(sc.Sim.Pools[p].Servers), nil
	case "threshold":
		return agent.DefaultThreshold(), nil
	case "hpa":
		cfg := agent.DefaultHPAConfig()
		if !math.IsNaN(param) {
			if !(param > 0 && param <= 1) {
				return nil, fmt.Errorf("policy %q: target utilisation must be in (0, 1]", spec)
			}
			cfg.Target = param
		}
		return agent.NewHPA(spec, cfg), nil
	case "oracle":
		if math.IsNaN(param) {
			return sc.Oracle(p), nil
		}
		if !(param > 0 && param <= 1) {
			return nil, fmt.Errorf("policy %q: headroom must be in (0, 1] (fraction of the p95 target the oracle sizes for)", spec)
		}
		return sc.OracleAt(p, param), nil
	case "agent":
		if trained == nil {
			return nil, fmt.Errorf("policy %q: no trained agent", spec)
		}
		return trained(sc, p)
	}
	return nil, fmt.Errorf("unknown policy %q (want static, threshold, hpa[@U], oracle[@H] or agent)", spec)
}

// Policies builds every spec's policies, one per pool, so that a bad spec
// fails before any run.
func (sc *Scenario) Policies(specs []string, trained TrainedAgent) ([][]agent.Policy, error) {
	built := make([][]agent.Policy, len(specs))
	for i, spec := range specs {
		built[i] = make([]agent.Policy, len(sc.Sim.Pools))
		for p := range built[i] {
			var err error
			if built[i][p], err = sc.Policy(spec, p, trained); err != nil {
				return nil, err
			}
		}
	}
	return built, nil
}

// EvaluateAll evaluates every spec's policies (built by Policies)
// concurrently, each on its own simulator with the scenario's seed, so
// every policy sees the same arrivals. opts gives spec i's options; the
// baselines run unguarded, as they are defined. The error is the first
// run's, in spec order.
func EvaluateAll(ctx context.Context, sc Scenario, specs []string, built [][]agent.Policy, opts func(i int) EvalOptions) ([]Result, error) {
	results := make([]Result, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() {
			results[i], errs[i] = Evaluate(ctx, sc, spec, built[i], opts(i))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

// ParseTargets parses the p95 targets of recorded pools, POOL=DURATION,...
// (e.g. light=20ms,heavy=320ms), for Recording.Targets.
func ParseTargets(s string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		pool, ds, ok := strings.Cut(kv, "=")
		if !ok || pool == "" {
			return nil, fmt.Errorf("%q: want POOL=DURATION", kv)
		}
		d, err := time.ParseDuration(ds)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q: want a positive duration", kv)
		}
		out[pool] = d
	}
	return out, nil
}
