package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadBad drives every testdata/*.bad.yaml: each holds exactly one
// mistake, reported once, at its line.
func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		want string // substring of the only problem reported
	}{
		{"unknown-key.bad.yaml", "line 26: field targt_seconds not found"},
		{"bad-type.bad.yaml", "line 24: cannot unmarshal !!str `one` into int"},
		{"min-over-max.bad.yaml", "min-over-max.bad.yaml:24: pools[0].template.min: min 5 exceeds max 4"},
		{"target-ms.bad.yaml", "target-ms.bad.yaml:26: pools[0].template.target_seconds: target 250s looks like milliseconds"},
		{"no-target.bad.yaml", "no-target.bad.yaml:23: pools[0].template.target_seconds: response-time target must be positive"},
		{"unknown-source.bad.yaml", "unknown-source.bad.yaml:21: pools[0].source: no source named \"nginx\""},
		{"unknown-actuator.bad.yaml", "unknown-actuator.bad.yaml:22: pools[0].actuator: no actuator named \"aws\""},
		{"fleet-no-command.bad.yaml", "fleet-no-command.bad.yaml:23: pools[0].template.command: fleet actuator \"local\" needs the command"},
		{"dup-pool.bad.yaml", "dup-pool.bad.yaml:24: pools[1].name: duplicate pool \"light\""},
		{"bad-mode.bad.yaml", "bad-mode.bad.yaml:1: mode: unknown mode \"turbo\""},
		{"timeout-over-interval.bad.yaml", "timeout-over-interval.bad.yaml:3: intervals.scrape_timeout: 2s must not exceed the scrape interval 1s"},
		{"decide-below-scrape.bad.yaml", "decide-below-scrape.bad.yaml:4: intervals.decide: 1s must be at least the scrape interval 2s"},
		{"no-pools.bad.yaml", "no-pools.bad.yaml:1: pools: at least one pool is needed"},
		{"sim-with-source.bad.yaml", "sim-with-source.bad.yaml:22: pools[0].sim: a simulated pool is its own source and actuator"},
		{"sim-no-load.bad.yaml", "sim-no-load.bad.yaml:3: pools[0].sim: set exactly one of trace"},
		{"two-kinds.bad.yaml", "two-kinds.bad.yaml:2: actuators[0]: exactly one of haproxy, nginx, fleet, aws must be set, found 2"},
		{"fleet-bad-balancer.bad.yaml", "fleet-bad-balancer.bad.yaml:3: actuators[0].fleet.balancer: actuator \"local\" is fleet, want haproxy or nginx"},
		{"bad-listen.bad.yaml", "bad-listen.bad.yaml:2: api.listen: want host:port, got \"localhost\""},
		{"bad-weight.bad.yaml", "bad-weight.bad.yaml:4: pools[0].template.max_weight: want 1..1000, got 5000"},
		{"negative-guard.bad.yaml", "negative-guard.bad.yaml:2: guard.down_cooldown: want 0s..24h, got -1m0s"},
		{"nginx-bad-method.bad.yaml", "nginx-bad-method.bad.yaml:8: actuators[0].nginx.upstreams[0].method: want \"\" (round robin), least_conn, random, \"random two\" or auto, got \"ip_hash\""},
		{"learning-epsilon.bad.yaml", "learning-epsilon.bad.yaml:4: model.learning.epsilon: want 0..1, got 1.5"},
	}
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("testdata has %d bad files, table has %d cases: one case per file", len(files), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", msg, tc.want)
			}
			if n := strings.Count(strings.TrimPrefix(msg, ErrInvalid.Error()+": "), "\n") + 1; n != 1 {
				t.Errorf("got %d problems, want exactly 1:\n%s", n, msg)
			}
		})
	}
}

func TestLoadGood(t *testing.T) {
	c, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pl := c.Pools[0]
	if pl.Template.Target() != 250*time.Millisecond || pl.Template.MaxWeight != 256 {
		t.Errorf("target %s, max weight %d; want 250ms, 256 (default)", pl.Template.Target(), pl.Template.MaxWeight)
	}
	if c.Intervals.ScrapeTimeout != 500*time.Millisecond || c.Mode != ModeAuto || c.Reward.Errors != 10 {
		t.Errorf("got %+v mode %q reward %+v; want file values over defaults", c.Intervals, c.Mode, c.Reward)
	}
	if l := c.Model.Learning; l.Enabled || l.Epsilon != 0.1 || l.SaveEvery != 10*time.Minute {
		t.Errorf("learning %+v, want off with the defaults (epsilon 0.1, save every 10m)", l)
	}
	if want := filepath.Join("testdata", "lbtune.db"); c.Store.Path != want {
		t.Errorf("store path %q, want %q (relative to the config file)", c.Store.Path, want)
	}
}

// TestValidateCollectsAll checks that every problem is reported, not only
// the first.
func TestValidateCollectsAll(t *testing.T) {
	c, err := Parse([]byte("mode: x\npools:\n  - name: a\n    template: {min: 3, max: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	for _, want := range []string{"config:1: mode", "pools[0].source", "pools[0].actuator", "min 3 exceeds max 1", "target_seconds"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// TestExampleValid checks both printed examples pass the same checks as
// `lbtune config check`.
func TestExampleValid(t *testing.T) {
	for _, sim := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "lbtune.yaml")
		if err := os.WriteFile(path, []byte(Example(sim)), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatalf("example(sim=%v): %v", sim, err)
		}
		if sim != (c.Pools[0].Sim != nil) {
			t.Errorf("example(sim=%v) pool sim = %v", sim, c.Pools[0].Sim)
		}
	}
}

// TestNGINXMethods: the upstream methods lbtune.yaml takes (NGINX's and
// auto) load; others are refused at their line.
func TestNGINXMethods(t *testing.T) {
	bad, err := os.ReadFile(filepath.Join("testdata", "nginx-bad-method.bad.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method string
		ok     bool
	}{
		{`""`, true}, {"least_conn", true}, {"random", true}, {`"random two"`, true}, {"auto", true},
		{"ip_hash", false}, {"Auto", false}, {"leastconn", false},
	} {
		t.Run(tc.method, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lbtune.yaml")
			y := strings.Replace(string(bad), "method: ip_hash", "method: "+tc.method, 1)
			if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if (err == nil) != tc.ok {
				t.Errorf("method %s: err %v, want ok %v", tc.method, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), ":8: actuators[0].nginx.upstreams[0].method") {
				t.Errorf("method %s: error %q does not name the method's line", tc.method, err)
			}
		})
	}
}
