package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits on simulated pools that tie settings together; Validate enforces
// them, the table in docs/OPERATIONS.md states them (RangesMarkdown).
const (
	// MaxSimRPS is the most requests per second (simulated time) a
	// simulated pool may be offered: the peak phase rate, or the trace's
	// peak rate, times sim.scale. The simulator's work grows with it.
	MaxSimRPS = 1e5
	// MaxSimWallRPS is the most requests a simulated pool may simulate per
	// wall-clock second: MaxSimRPS-style peak rate x sim.speedup. It
	// bounds the CPU the simulator takes and how long one of its steps
	// (100 ms of wall time, not interruptible) runs: about 0.5 s at 1000
	// servers.
	MaxSimWallRPS = 1e6
	// MinSimPeriod is the shortest wall-clock decision period of a
	// simulated pool (intervals.decide / sim.speedup).
	MinSimPeriod = 10 * time.Millisecond
	// MaxSimPhases is the most entries sim.phases may hold.
	MaxSimPhases = 1000
)

// Setting is the documented range of one numeric setting of lbtune.yaml.
// Validate refuses a value outside it, and NaN and ±Inf, naming the
// setting; Ranges lists them all and RangesMarkdown renders the table of
// docs/OPERATIONS.md from the same values.
type Setting struct {
	// Key is the setting's path, with [] for any index
	// (pools[].sim.speedup).
	Key string
	// Min and Max bound the value, inclusive (Min excluded when MinOpen).
	// A duration's bounds are in seconds.
	Min, Max float64
	// MinOpen excludes Min itself.
	MinOpen bool
	// Duration marks a Go duration (15s), Int an integer.
	Duration, Int bool
	// Note states what the bounds do not: a default, a cross-field rule.
	Note string
}

const (
	day  = 24 * 3600.0
	year = 365 * day
)

// ranges is the one table of numeric settings (see Setting).
var ranges = []Setting{
	{Key: "store.retention", Max: 10 * year, Duration: true, Note: "0 keeps everything"},
	{Key: "intervals.scrape", Min: 0.1, Max: 3600, Duration: true},
	{Key: "intervals.scrape_timeout", Min: 0.001, Max: 3600, Duration: true, Note: "at most intervals.scrape"},
	{Key: "intervals.decide", Min: 0.1, Max: day, Duration: true, Note: "at least intervals.scrape; a simulated pool's decide / speedup at least 10ms"},
	{Key: "reward.latency", Max: 1e6},
	{Key: "reward.errors", Max: 1e6},
	{Key: "reward.server_cost", Max: 1e6},
	{Key: "model.learning.epsilon", Max: 1},
	{Key: "model.learning.decay", Max: 1, MinOpen: true},
	{Key: "model.learning.min_epsilon", Max: 1, Note: "at most epsilon"},
	{Key: "model.learning.save_every", Min: 1, Max: 30 * day, Duration: true},
	{Key: "model.scale_in_window", Max: day, Duration: true, Note: "0 keeps the trained policy's (selected in training; 10m for policies trained before the selection)"},
	{Key: "guard.up_cooldown", Max: day, Duration: true, Note: "0 keeps the default"},
	{Key: "guard.down_cooldown", Max: day, Duration: true, Note: "0 keeps the default"},
	{Key: "guard.spike_hold", Max: day, Duration: true, Note: "0 keeps the default"},
	{Key: "guard.min_lifetime", Max: day, Duration: true, Note: "0 keeps the default"},
	{Key: "guard.max_step_up", Max: 1000, Int: true, Note: "0 keeps the default"},
	{Key: "guard.max_step_down", Max: 1000, Int: true, Note: "0 keeps the default"},
	{Key: "sources[].time_scale", Max: 1000, Note: "experiments only (lbtune ab); 0 or 1 is the wall clock, else at least 1"},
	{Key: "actuators[].aws.port", Min: 1, Max: 65535, Int: true},
	{Key: "pools[].template.min", Max: 1000, Int: true, Note: "at most max"},
	{Key: "pools[].template.max", Min: 1, Max: 1000, Int: true},
	{Key: "pools[].template.target_seconds", Min: 0.001, Max: 60, Note: "seconds, not milliseconds"},
	{Key: "pools[].template.service_rate", Max: 1e6, Note: "req/s; 0 learns it online"},
	{Key: "pools[].template.max_weight", Min: 1, Max: 1000, Int: true, Note: "0 means 256"},
	{Key: "pools[].template.sizes[].speed", Min: 0.01, Max: 1000},
	{Key: "pools[].template.sizes[].concurrency", Max: 1e5, Int: true, Note: "0 is unbounded"},
	{Key: "pools[].template.fallback.window", Max: day, Duration: true, Note: "omitted: 1m"},
	{Key: "pools[].template.fallback.min_breach", Max: day, Duration: true, Note: "omitted: 5s"},
	{Key: "pools[].template.fallback.min_requests", Max: 1e9, Note: "omitted: 50"},
	{Key: "pools[].template.fallback.util_high", Max: 1, Note: "omitted: 0.8; 0 switches growth on utilisation off"},
	{Key: "pools[].template.fallback.util_low", Max: 1, Note: "omitted: 0.3; below util_high; 0 switches the shrink off"},
	{Key: "pools[].template.fallback.grow_ratio", Max: 100, Note: "omitted: 2; above 1 when util_high is set"},
	{Key: "pools[].template.fallback.shrink_ratio", Max: 1, Note: "omitted: 0.5; in (0, 1) when util_low is set"},
	{Key: "pools[].template.fallback.shrink_below", Max: 10, Note: "omitted: 0.7 (x target); 0: no p95 condition"},
	{Key: "pools[].template.fallback.reserve", Max: 1000, Int: true, Note: "omitted: 2; 0 switches reserve servers off"},
	{Key: "pools[].template.fallback.queue_high", Max: 1e5, Note: "omitted: 2 (queued per server)"},
	{Key: "pools[].template.fallback.queue_low", Max: 1e5, Note: "omitted: 0.5; below queue_high when reserve is set"},
	{Key: "pools[].template.fallback.down_cooldown", Max: day, Duration: true, Note: "omitted: guard.down_cooldown, else 5m"},
	{Key: "pools[].template.fallback.breach_confidence", Max: 0.999, Note: "omitted: 0.9; 0: the point estimate decides"},
	{Key: "pools[].template.fallback.breach_memory", Max: day, Duration: true, Note: "omitted: 1h; 0: no memory"},
	{Key: "pools[].template.objective.server_hour", Max: 1e6, Note: "price of a server-hour; 0 keeps reward.server_cost x 120 (6)"},
	{Key: "pools[].template.objective.violation_minute", Max: 1e6, Note: "cost of a minute over the p95 target; 0 keeps 8"},
	{Key: "pools[].sim.speedup", Min: 0.01, Max: 1000, Note: "0 means 1; peak rate x scale x speedup at most 1000000 req/s"},
	{Key: "pools[].sim.scale", Max: MaxSimRPS, MinOpen: true, Note: "0 means 1; peak rate x scale at most 100000 req/s"},
	{Key: "pools[].sim.from", Max: 10 * year, Duration: true},
	{Key: "pools[].sim.service_ms", Min: 0.01, Max: 600e3, Note: "0 means 50"},
	{Key: "pools[].sim.boot_delay", Max: day, Duration: true, Note: "0 means 60s"},
	{Key: "pools[].sim.servers", Max: 1000, Int: true, Note: "0 is template.min; else within min..max"},
	{Key: "pools[].sim.phases[].duration", Min: 1, Max: 30 * day, Duration: true, Note: "at most 1000 phases"},
	{Key: "pools[].sim.phases[].rps", Max: MaxSimRPS, Note: "x scale at most 100000 req/s"},
}

// Ranges returns the documented range of every numeric setting, in the
// order of docs/OPERATIONS.md.
func Ranges() []Setting { return append([]Setting(nil), ranges...) }

// rangeOf returns the setting with key; a missing key is a bug of this
// package, caught by TestRangesCoverEveryNumber.
func rangeOf(key string) (Setting, bool) {
	for _, s := range ranges {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

// format renders x as the setting's unit: a duration or a number.
func (s Setting) format(x float64) string {
	if s.Duration {
		d := time.Duration(x * float64(time.Second))
		if d >= time.Hour && d%time.Hour == 0 {
			return fmt.Sprintf("%dh", d/time.Hour)
		}
		return d.String()
	}
	if x == math.Trunc(x) && math.Abs(x) < 1e7 {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// Bounds renders the range: "0.01..1000", "(0, 1]" when Min is excluded.
func (s Setting) Bounds() string {
	if s.MinOpen {
		return fmt.Sprintf("(%s, %s]", s.format(s.Min), s.format(s.Max))
	}
	return s.format(s.Min) + ".." + s.format(s.Max)
}

// check returns the problem with x ("" when x is in range): NaN and ±Inf
// are named as such.
func (s Setting) check(x float64) string {
	switch {
	case math.IsNaN(x):
		return fmt.Sprintf("NaN is not a number: want %s", s.Bounds())
	case math.IsInf(x, 0):
		return fmt.Sprintf("%v is not finite: want %s", x, s.Bounds())
	case x < s.Min || (s.MinOpen && x == s.Min) || x > s.Max:
		return fmt.Sprintf("want %s, got %s", s.Bounds(), s.format(x))
	}
	return ""
}

// num checks a float setting against its range at path; it reports
// whether the value is in range.
func (v *validator) num(path []any, x float64) bool {
	s, ok := rangeOf(keyOf(path))
	if !ok {
		v.addf(path, "no documented range (a bug: add it to config.ranges)")
		return false
	}
	if msg := s.check(x); msg != "" {
		v.addf(path, "%s", msg)
		return false
	}
	return true
}

// dur checks a duration setting.
func (v *validator) dur(path []any, d time.Duration) bool { return v.num(path, d.Seconds()) }

// integer checks an integer setting.
func (v *validator) integer(path []any, n int) bool { return v.num(path, float64(n)) }

// fractions reports every integer setting written with a fraction
// (max: 2.5): the YAML decoder truncates it silently.
func (v *validator) fractions() {
	var walk func(n *yaml.Node, path []any)
	walk = func(n *yaml.Node, path []any) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for k := 0; k+1 < len(n.Content); k += 2 {
				walk(n.Content[k+1], append(append([]any(nil), path...), n.Content[k].Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, append(append([]any(nil), path...), i))
			}
		case yaml.ScalarNode:
			if n.ShortTag() != "!!float" {
				return
			}
			if s, ok := rangeOf(keyOf(path)); ok && s.Int {
				if x, err := strconv.ParseFloat(n.Value, 64); err != nil || x != math.Trunc(x) {
					v.addf(path, "want an integer, got %s", n.Value)
				}
			}
		}
	}
	if v.c.root != nil {
		walk(v.c.root, nil)
	}
}

// keyOf is a path's table key: indexes become [].
func keyOf(path []any) string {
	var b strings.Builder
	for _, e := range path {
		switch e.(type) {
		case int:
			b.WriteString("[]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	return b.String()
}

// RangesMarkdown renders the ranges as the Markdown table of
// docs/OPERATIONS.md ("Setting ranges"); TestRangesDocumented keeps the two
// equal.
func RangesMarkdown() string {
	var b strings.Builder
	b.WriteString("| setting | range | note |\n|---|---|---|\n")
	for _, s := range ranges {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.Key, s.Bounds(), s.Note)
	}
	return b.String()
}
