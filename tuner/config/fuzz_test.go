package config

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/sim"
)

// FuzzParse feeds arbitrary documents to the strict decoder and the
// validator: never a panic; a document that parses either validates or
// reports problems.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(Example(false)))
	f.Add([]byte(Example(true)))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		_ = c.Validate()
		_, _ = c.ParsePool(b)
	})
}

// numericNodes returns the numeric and duration scalars of a document
// (mapping values that are ints, floats or Go durations), with their paths.
func numericNodes(root *yaml.Node) (nodes []*yaml.Node, paths []string) {
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for k := 0; k+1 < len(n.Content); k += 2 {
				key := n.Content[k].Value
				if path != "" {
					key = path + "." + key
				}
				walk(n.Content[k+1], key)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.ScalarNode:
			_, derr := time.ParseDuration(n.Value)
			if n.Tag == "!!int" || n.Tag == "!!float" || (derr == nil && n.Value != "0") {
				nodes, paths = append(nodes, n), append(paths, path)
			}
		}
	}
	walk(root, "")
	return nodes, paths
}

// yamlNumber writes x as the scalar n holds: a duration of x seconds, an
// integer, or a float (.nan, .inf).
func yamlNumber(n *yaml.Node, x float64) string {
	switch {
	case math.IsNaN(x):
		return ".nan"
	case math.IsInf(x, 1):
		return ".inf"
	case math.IsInf(x, -1):
		return "-.inf"
	}
	if _, err := time.ParseDuration(n.Value); err == nil && n.Tag != "!!int" && n.Tag != "!!float" {
		if math.Abs(x) < 9e9 {
			return time.Duration(x * float64(time.Second)).String()
		}
		return strconv.FormatFloat(x, 'f', 0, 64) + "h" // too long: ParseDuration refuses it
	}
	if n.Tag == "!!int" && x == math.Trunc(x) && math.Abs(x) < 1e18 {
		return strconv.FormatInt(int64(x), 10)
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// FuzzConfigValues fuzzes values, not syntax: it writes a fuzzed number
// into one numeric setting (picked by field) of a valid example, then
// Parse + Validate must either refuse it with an error naming the setting
// (or, for a cross-field rule, its key), or every setting must be usable:
// the reward is finite and encodes as JSON, the guard and the threshold
// fallback build, the decision period is at least MinSimPeriod and a
// simulated pool's load is within MaxSimRPS and its simulator builds.
func FuzzConfigValues(f *testing.F) {
	for _, seed := range []struct {
		sim   bool
		field uint
		x     float64
	}{
		{true, 0, 1}, {true, 20, 1e10}, {true, 20, math.NaN()}, {true, 21, 1e300}, {true, 30, math.NaN()},
		{true, 30, 1e-12}, {true, 20, 1e-9}, {true, 12, math.Inf(1)}, {false, 35, 5000}, {false, 7, -1},
	} {
		f.Add(seed.sim, seed.field, seed.x)
	}
	f.Fuzz(func(t *testing.T, simPools bool, field uint, x float64) {
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(Example(simPools)), &root); err != nil {
			t.Fatal(err)
		}
		nodes, paths := numericNodes(&root)
		i := int(field % uint(len(nodes)))
		nodes[i].Value, nodes[i].Tag, nodes[i].Style = yamlNumber(nodes[i], x), "", 0
		b, err := yaml.Marshal(&root)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(b)
		if err != nil {
			return // a type error: refused
		}
		if err := c.Validate(); err != nil {
			key := paths[i][strings.LastIndexAny(paths[i], ".]")+1:]
			if !strings.Contains(err.Error(), paths[i]) && !strings.Contains(err.Error(), key) {
				t.Fatalf("%s = %s refused without naming it:\n%v", paths[i], nodes[i].Value, err)
			}
			return
		}
		usable(t, c, paths[i]+" = "+nodes[i].Value)
	})
}

// usable fails t unless every setting of a valid c can be built.
func usable(t *testing.T, c *Config, what string) {
	t.Helper()
	rw := c.Reward.Agent()
	if r := rw.Reward(0.5, 1e4, 1000, time.Millisecond); math.IsNaN(r) || math.IsInf(r, 0) {
		t.Errorf("%s: reward %v", what, r)
	}
	if _, err := json.Marshal(rw); err != nil {
		t.Errorf("%s: reward does not encode: %v", what, err)
	}
	if err := c.Guard.Agent().Validate(); err != nil {
		t.Errorf("%s: guard: %v", what, err)
	}
	for i := range c.Pools {
		pl := &c.Pools[i]
		tc := agent.DefaultThresholdConfig()
		tc.TargetP95 = pl.Template.Target()
		if _, err := agent.NewThreshold(tc); err != nil || tc.TargetP95 <= 0 {
			t.Errorf("%s: pool %s: threshold with target %s: %v", what, pl.Name, tc.TargetP95, err)
		}
		per := c.DecidePeriod(pl)
		if per <= 0 || (pl.Sim != nil && per < MinSimPeriod) {
			t.Errorf("%s: pool %s: decision period %s", what, pl.Name, per)
		}
		if pl.Sim == nil {
			continue
		}
		var phases []sim.Phase
		for _, ph := range pl.Sim.Phases {
			phases = append(phases, sim.Phase{Duration: ph.Duration, RPS: ph.RPS})
		}
		tr := sim.Synthetic(pl.Name, phases, nil).Scaled(pl.Sim.Scale)
		if peak := slices.Max(tr.Rates); !(peak <= MaxSimRPS) || !(peak*pl.Sim.Speedup <= MaxSimWallRPS) {
			t.Errorf("%s: pool %s: peak %v req/s at speedup %v", what, pl.Name, peak, pl.Sim.Speedup)
		}
		if _, err := sim.NewLive(sim.LiveConfig{
			Sim: sim.Config{Trace: tr, Pools: []sim.PoolConfig{{Name: pl.Name, Servers: max(pl.Template.Min, 1),
				Classes: []sim.Class{{Name: "r", Share: 1, Service: sim.Dist{Kind: "exp", Mean: pl.Sim.ServiceMs / 1000}}}}}},
			Speedup: pl.Sim.Speedup,
		}); err != nil {
			t.Errorf("%s: pool %s: simulator: %v", what, pl.Name, err)
		}
	}
}
