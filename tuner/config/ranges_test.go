package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestValidateValues: every value the adversarial report (issue 15) found
// accepted, and crashing or bloating the daemon later, is refused by
// Validate with the setting's path and line; NaN and Inf are named.
func TestValidateValues(t *testing.T) {
	tests := []struct {
		name string
		// old is replaced by new in Example(true).
		old, new string
		want     string
	}{
		{"speedup 1e10 (decide period 0)", "speedup: 10 ", "speedup: 1e10 ", "lbtune.yaml:73: pools[0].sim.speedup: want 0.01..1000, got 1e+10"},
		{"speedup NaN (NewTicker panic)", "speedup: 10 ", "speedup: .nan ", "pools[0].sim.speedup: NaN is not a number"},
		{"speedup 1e-9", "speedup: 10 ", "speedup: 1e-9 ", "pools[0].sim.speedup: want 0.01..1000, got 1e-09"},
		{"speedup -Inf", "speedup: 10 ", "speedup: -.inf ", "pools[0].sim.speedup: -Inf is not finite"},
		{"speedup 1000 with decide 5s: period 5ms", "speedup: 10 ", "speedup: 1000 ", "pools[0].sim.speedup: 1000 makes the decision period intervals.decide (5s) / speedup = 5ms: want at least 10ms"},
		{"target NaN (NewThreshold panic)", "target_seconds: 0.5", "target_seconds: .nan", "lbtune.yaml:82: pools[0].template.target_seconds: NaN is not a number"},
		{"target 1e-12", "target_seconds: 0.5", "target_seconds: 1e-12", "pools[0].template.target_seconds: want 0.001..60, got 1e-12"},
		{"target +Inf", "target_seconds: 0.5", "target_seconds: .inf", "pools[0].template.target_seconds: +Inf is not finite"},
		{"scale 1e300 (21 GB)", "scale: 1 ", "scale: 1e300 ", "pools[0].sim.scale: want (0, 100000], got 1e+300"},
		{"scale over the simulated load cap", "scale: 1 ", "scale: 1000 ", "pools[0].sim.scale: peak rps 120 x scale 1000 = 120000 req/s: want at most 100000"},
		{"simulated load too fast for the wall clock", "speedup: 10            # simulated seconds per wall-clock second\n      scale: 1 ", "speedup: 100\n      scale: 800 ", "pools[0].sim.speedup: peak rps 120 x scale 800 x speedup 100 = 9.6e+06 req/s of wall-clock time: want at most 1e+06"},
		{"scale NaN", "scale: 1 ", "scale: .nan ", "pools[0].sim.scale: NaN is not a number"},
		{"rps NaN", "rps: 15}", "rps: .nan}", "pools[0].sim.phases[0].rps: NaN is not a number"},
		{"rps 1e9", "rps: 15}", "rps: 1e9}", "pools[0].sim.phases[0].rps: want 0..100000, got 1e+09"},
		{"phase of 1ns", "duration: 10m, rps: 15", "duration: 1ns, rps: 15", "pools[0].sim.phases[0].duration: want 1s..720h, got 1ns"},
		{"reward NaN (json: unsupported value)", "latency: 1\n", "latency: .nan\n", "reward.latency: NaN is not a number"},
		{"reward Inf", "errors: 10\n", "errors: .inf\n", "reward.errors: +Inf is not finite"},
		{"server cost 1e300", "server_cost: 0.05", "server_cost: 1e300", "reward.server_cost: want 0..1000000"},
		{"service_ms NaN", "service_ms: 100 ", "service_ms: .nan ", "pools[0].sim.service_ms: NaN is not a number"},
		{"size speed NaN", "speed: 1, concurrency: 1}", "speed: .nan, concurrency: 1}", "pools[0].template.sizes[0].speed: NaN is not a number"},
		{"epsilon NaN", "epsilon: 0.1 ", "epsilon: .nan ", "model.learning.epsilon: NaN is not a number"},
		{"decay NaN", "decay: 0.99 ", "decay: .nan ", "model.learning.decay: NaN is not a number"},
		{"template max 1e6", "max: 20\n", "max: 1000000\n", "pools[0].template.max: want 1..1000, got 1000000"},
		{"max step 1e9", "max_step_up: 10 ", "max_step_up: 1000000000 ", "guard.max_step_up: want 0..1000"},
		{"scrape 1ns", "scrape: 1s ", "scrape: 1ns ", "intervals.scrape: want 100ms..1h, got 1ns"},
		{"fractional max (truncated by the decoder)", "max: 20\n", "max: 20.5\n", "lbtune.yaml:81: pools[0].template.max: want an integer, got 20.5"},
		{"fractional step", "max_step_up: 10 ", "max_step_up: 1.5 ", "guard.max_step_up: want an integer, got 1.5"},
		{"boot delay a year", "boot_delay: 60s ", "boot_delay: 8760h ", "pools[0].sim.boot_delay: want 0s..24h"},
		// A pool's own fallback and objective (issue 18): each key's range,
		// then the thresholds' cross-field rules.
		{"fallback window a year", "max_weight: 256\n", "max_weight: 256\n      fallback: {window: 8760h}\n", "lbtune.yaml:84: pools[0].template.fallback.window: want 0s..24h, got 8760h"},
		{"fallback grow ratio NaN", "max_weight: 256\n", "max_weight: 256\n      fallback: {grow_ratio: .nan}\n", "pools[0].template.fallback.grow_ratio: NaN is not a number"},
		{"fallback utilisation above 1", "max_weight: 256\n", "max_weight: 256\n      fallback: {util_high: 80}\n", "pools[0].template.fallback.util_high: want 0..1, got 80"},
		{"fallback fractional reserve", "max_weight: 256\n", "max_weight: 256\n      fallback: {reserve: 2.5}\n", "pools[0].template.fallback.reserve: want an integer, got 2.5"},
		{"fallback util_low above util_high", "max_weight: 256\n", "max_weight: 256\n      fallback: {util_high: 0.5, util_low: 0.6}\n", "lbtune.yaml:84: pools[0].template.fallback: threshold: util_low 0.6 must be below util_high 0.5"},
		{"fallback shrink ratio 1", "max_weight: 256\n", "max_weight: 256\n      fallback: {shrink_ratio: 1}\n", "pools[0].template.fallback: threshold: shrink_ratio 1 must be in (0, 1)"},
		{"fallback grow ratio 1 with the default util_high", "max_weight: 256\n", "max_weight: 256\n      fallback: {grow_ratio: 1}\n", "pools[0].template.fallback: threshold: grow_ratio 1 must exceed 1"},
		{"fallback queue_low above queue_high", "max_weight: 256\n", "max_weight: 256\n      fallback: {queue_high: 1, queue_low: 3}\n", "pools[0].template.fallback: threshold: queue_low 3 must be below queue_high 1"},
		{"objective negative price", "max_weight: 256\n", "max_weight: 256\n      objective: {server_hour: -1}\n", "lbtune.yaml:84: pools[0].template.objective.server_hour: want 0..1000000, got -1"},
		{"objective Inf violation cost", "max_weight: 256\n", "max_weight: 256\n      objective: {violation_minute: .inf}\n", "pools[0].template.objective.violation_minute: +Inf is not finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := Example(true)
			if !strings.Contains(y, tc.old) {
				t.Fatalf("example lacks %q", tc.old)
			}
			y = strings.Replace(y, tc.old, tc.new, 1)
			c, err := Parse([]byte(y))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			c.file = "lbtune.yaml"
			err = c.Validate()
			if err == nil {
				t.Fatalf("%s accepted", strings.TrimSpace(tc.new))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
			// The same check through ParsePool: the API's path.
			base, err := Parse([]byte(Example(true)))
			if err != nil {
				t.Fatal(err)
			}
			if _, perr := base.ParsePool([]byte(poolOf(t, y))); perr == nil && strings.Contains(tc.want, "pools[0]") {
				t.Errorf("ParsePool accepted %s", strings.TrimSpace(tc.new))
			}
		})
	}
}

// poolOf returns the first pool entry of a config document as a template
// spec (the body of `lbtune template up`).
func poolOf(t *testing.T, y string) string {
	t.Helper()
	_, after, ok := strings.Cut(y, "pools:\n  - ")
	if !ok {
		t.Fatal("no pools in document")
	}
	var b strings.Builder
	for i, line := range strings.Split(after, "\n") {
		if i > 0 {
			line = strings.TrimPrefix(line, "    ")
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// TestRangesCoverEveryNumber: every numeric field of Config has a row in
// the ranges table (so Validate checks it and the docs list it), and every
// row names a field.
func TestRangesCoverEveryNumber(t *testing.T) {
	var keys []string
	var walk func(tp reflect.Type, prefix string)
	walk = func(tp reflect.Type, prefix string) {
		for i := range tp.NumField() {
			f := tp.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || tag == "" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft == reflect.TypeOf(time.Duration(0)):
				keys = append(keys, key)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), key+"[]")
			case ft.Kind() == reflect.Struct:
				walk(ft, key)
			case ft.Kind() == reflect.Float64, ft.Kind() == reflect.Int:
				keys = append(keys, key)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
		if _, ok := rangeOf(k); !ok {
			t.Errorf("numeric setting %s has no row in config.ranges", k)
		}
	}
	for _, s := range ranges {
		if !seen[s.Key] {
			t.Errorf("ranges row %s names no numeric setting", s.Key)
		}
	}
}

// TestRangesDocumented: docs/OPERATIONS.md holds the table RangesMarkdown
// renders from the same values Validate uses.
func TestRangesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), RangesMarkdown()) {
		t.Errorf("docs/OPERATIONS.md lacks the current ranges table; paste this under \"Setting ranges\":\n%s", RangesMarkdown())
	}
}
