package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Validate checks every field and the cross-field rules, and returns every
// problem joined (errors.Join), each as "FILE:LINE: path: problem", wrapping
// ErrInvalid. It returns nil for a valid configuration.
func (c *Config) Validate() error {
	v := validator{c: c}
	c.validateTop(&v)
	c.validateSources(&v)
	c.validateActuators(&v)
	c.validatePools(&v)
	c.validatePolicies(&v)
	v.fractions()
	if len(v.problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(v.problems...))
}

// validator collects problems with their line numbers.
type validator struct {
	c        *Config
	problems []error
}

// addf records a problem at the YAML node found by path (string keys and
// int indexes); the nearest existing ancestor gives the line.
func (v *validator) addf(path []any, format string, args ...any) {
	where := v.c.file
	if where == "" {
		where = "config"
	}
	if line := lineOf(v.c.root, path); line > 0 {
		where = fmt.Sprintf("%s:%d", where, line)
	}
	v.problems = append(v.problems, fmt.Errorf("%s: %s: %s", where, pathString(path), fmt.Sprintf(format, args...)))
}

func (c *Config) validateTop(v *validator) {
	if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
		v.addf(p("api", "listen"), "want host:port, got %q", c.API.Listen)
	}
	if c.Store.Path == "" {
		v.addf(p("store", "path"), "must be set")
	}
	v.dur(p("store", "retention"), c.Store.Retention)
	in := c.Intervals
	scrapeOK := v.dur(p("intervals", "scrape"), in.Scrape)
	if v.dur(p("intervals", "scrape_timeout"), in.ScrapeTimeout) && scrapeOK && in.ScrapeTimeout > in.Scrape {
		v.addf(p("intervals", "scrape_timeout"), "%s must not exceed the scrape interval %s", in.ScrapeTimeout, in.Scrape)
	}
	if scrapeOK && in.Decide < in.Scrape {
		v.addf(p("intervals", "decide"), "%s must be at least the scrape interval %s", in.Decide, in.Scrape)
	} else {
		v.dur(p("intervals", "decide"), in.Decide)
	}
	if !ValidMode(c.Mode) {
		v.addf(p("mode"), "unknown mode %q (want auto, shadow, manual or fallback-only)", c.Mode)
	}
	r := c.Reward
	v.num(p("reward", "latency"), r.Latency)
	v.num(p("reward", "errors"), r.Errors)
	v.num(p("reward", "server_cost"), r.ServerCost)
	if len(c.Pools) == 0 {
		v.addf(p("pools"), "at least one pool is needed")
	}
	l := c.Model.Learning
	epsOK := v.num(p("model", "learning", "epsilon"), l.Epsilon)
	v.num(p("model", "learning", "decay"), l.Decay)
	if v.num(p("model", "learning", "min_epsilon"), l.MinEpsilon) && epsOK && l.MinEpsilon > l.Epsilon {
		v.addf(p("model", "learning", "min_epsilon"), "want 0..epsilon (%v), got %v", l.Epsilon, l.MinEpsilon)
	}
	v.dur(p("model", "learning", "save_every"), l.SaveEvery)
	v.dur(p("model", "scale_in_window"), c.Model.ScaleInWindow)
	if l.Enabled && c.Model.Path == "" {
		v.addf(p("model", "learning", "enabled"), "online learning needs a trained model (model.path): an untrained agent never decides")
	}
	g := c.Guard
	v.dur(p("guard", "up_cooldown"), g.UpCooldown)
	v.dur(p("guard", "down_cooldown"), g.DownCooldown)
	v.dur(p("guard", "spike_hold"), g.SpikeHold)
	v.dur(p("guard", "min_lifetime"), g.MinLifetime)
	v.integer(p("guard", "max_step_up"), g.MaxStepUp)
	v.integer(p("guard", "max_step_down"), g.MaxStepDown)
}

func (c *Config) validateSources(v *validator) {
	seen := map[string]bool{}
	for i, s := range c.Sources {
		if s.Name == "" {
			v.addf(p("sources", i, "name"), "must be set")
		} else if seen[s.Name] {
			v.addf(p("sources", i, "name"), "duplicate source %q", s.Name)
		}
		seen[s.Name] = true
		if scheme, _, ok := strings.Cut(s.URI, ":"); !ok || scheme == "" {
			v.addf(p("sources", i, "uri"), "want SCHEME:ADDRESS (e.g. haproxy+unix:///run/haproxy/admin.sock), got %q", s.URI)
		}
		if ts := s.TimeScale; v.num(p("sources", i, "time_scale"), ts) && ts != 0 && ts < 1 {
			v.addf(p("sources", i, "time_scale"), "%v: want 0 (the wall clock) or 1..1000", ts)
		}
	}
}

func (c *Config) validateActuators(v *validator) {
	seen := map[string]bool{}
	for i := range c.Actuators {
		a := &c.Actuators[i]
		if a.Name == "" {
			v.addf(p("actuators", i, "name"), "must be set")
		} else if seen[a.Name] {
			v.addf(p("actuators", i, "name"), "duplicate actuator %q", a.Name)
		}
		seen[a.Name] = true
		n := 0
		for _, set := range []bool{a.HAProxy != nil, a.NGINX != nil, a.Fleet != nil, a.AWS != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			v.addf(p("actuators", i), "exactly one of haproxy, nginx, fleet, aws must be set, found %d", n)
			continue
		}
		switch {
		case a.HAProxy != nil && a.HAProxy.Socket == "":
			v.addf(p("actuators", i, "haproxy", "socket"), "must be set")
		case a.NGINX != nil && (a.NGINX.Conf == "" || a.NGINX.Include == "" || a.NGINX.PIDFile == ""):
			v.addf(p("actuators", i, "nginx"), "conf, include and pid_file must be set")
		case a.NGINX != nil:
			ups := map[string]bool{}
			for j, u := range a.NGINX.Upstreams {
				if u.Name == "" || ups[u.Name] {
					v.addf(p("actuators", i, "nginx", "upstreams", j, "name"), "upstreams need distinct names, got %q", u.Name)
				}
				ups[u.Name] = true
				if !slices.Contains(NGINXMethods, u.Method) {
					v.addf(p("actuators", i, "nginx", "upstreams", j, "method"), "want \"\" (round robin), least_conn, random, \"random two\" or auto, got %q", u.Method)
				}
				for k, addr := range u.Servers {
					if _, _, err := net.SplitHostPort(addr); err != nil {
						v.addf(p("actuators", i, "nginx", "upstreams", j, "servers", k), "want host:port, got %q", addr)
					}
				}
			}
		case a.Fleet != nil:
			c.checkBalancer(v, p("actuators", i, "fleet", "balancer"), a.Fleet.Balancer)
		case a.AWS != nil:
			if a.AWS.Region == "" {
				v.addf(p("actuators", i, "aws", "region"), "must be set")
			}
			if (a.AWS.ASG == "") == (a.AWS.LaunchTemplate == "") {
				v.addf(p("actuators", i, "aws"), "set exactly one of asg and launch_template")
			}
			v.integer(p("actuators", i, "aws", "port"), a.AWS.Port)
			c.checkBalancer(v, p("actuators", i, "aws", "balancer"), a.AWS.Balancer)
		}
	}
}

// checkBalancer checks that name refers to a haproxy or nginx actuator.
func (c *Config) checkBalancer(v *validator, path []any, name string) {
	b := c.Actuator(name)
	switch {
	case name == "":
		v.addf(path, "must name the haproxy or nginx actuator servers join")
	case b == nil:
		v.addf(path, "no actuator named %q", name)
	case b.HAProxy == nil && b.NGINX == nil:
		v.addf(path, "actuator %q is %s, want haproxy or nginx", name, b.Kind())
	}
}

func (c *Config) validatePools(v *validator) {
	seen := map[string]bool{}
	for i := range c.Pools {
		pl := &c.Pools[i]
		if pl.Name == "" {
			v.addf(p("pools", i, "name"), "must be set")
		} else if seen[pl.Name] {
			v.addf(p("pools", i, "name"), "duplicate pool %q", pl.Name)
		}
		seen[pl.Name] = true
		if pl.Mode != "" && !ValidMode(pl.Mode) {
			v.addf(p("pools", i, "mode"), "unknown mode %q (want auto, shadow, manual or fallback-only)", pl.Mode)
		}
		if pl.Sim != nil {
			c.validateSim(v, i, pl)
		} else {
			c.validateWiring(v, i, pl)
		}
		c.validateTemplate(v, i, pl)
	}
}

// validateWiring checks a real pool's source and actuator references.
func (c *Config) validateWiring(v *validator, i int, pl *Pool) {
	switch {
	case pl.Source == "":
		v.addf(p("pools", i, "source"), "must name a source (or set sim)")
	case c.Source(pl.Source) == nil:
		v.addf(p("pools", i, "source"), "no source named %q", pl.Source)
	}
	a := c.Actuator(pl.Actuator)
	switch {
	case pl.Actuator == "":
		v.addf(p("pools", i, "actuator"), "must name an actuator (or set sim)")
	case a == nil:
		v.addf(p("pools", i, "actuator"), "no actuator named %q", pl.Actuator)
	case a.Fleet != nil && pl.Template.Command == "":
		v.addf(p("pools", i, "template", "command"), "fleet actuator %q needs the command that starts one server", pl.Actuator)
	case a.AWS != nil && a.AWS.ASG == "" && pl.Template.Image == "":
		v.addf(p("pools", i, "template", "image"), "aws actuator %q without an asg needs the image to launch", pl.Actuator)
	}
}

// validateSim checks a simulated pool.
func (c *Config) validateSim(v *validator, i int, pl *Pool) {
	s := pl.Sim
	if pl.Source != "" || pl.Actuator != "" {
		v.addf(p("pools", i, "sim"), "a simulated pool is its own source and actuator: drop source and actuator")
	}
	if (s.Trace == "") == (len(s.Phases) == 0) {
		v.addf(p("pools", i, "sim"), "set exactly one of trace (a t,rps CSV) and phases")
	}
	if len(s.Phases) > MaxSimPhases {
		v.addf(p("pools", i, "sim", "phases"), "%d phases: at most %d", len(s.Phases), MaxSimPhases)
	}
	peak, ratesOK := 0.0, true
	for j, ph := range s.Phases {
		v.dur(p("pools", i, "sim", "phases", j, "duration"), ph.Duration)
		if v.num(p("pools", i, "sim", "phases", j, "rps"), ph.RPS) {
			peak = max(peak, ph.RPS)
		} else {
			ratesOK = false
		}
	}
	if v.num(p("pools", i, "sim", "speedup"), s.Speedup) {
		if per := c.DecidePeriod(pl); c.Intervals.Decide > 0 && per < MinSimPeriod {
			v.addf(p("pools", i, "sim", "speedup"), "%v makes the decision period intervals.decide (%s) / speedup = %s: want at least %s", s.Speedup, c.Intervals.Decide, per, MinSimPeriod)
		}
	}
	speedOK := !math.IsNaN(s.Speedup) && s.Speedup >= 0.01 && s.Speedup <= 1000
	if v.num(p("pools", i, "sim", "scale"), s.Scale) && ratesOK {
		if load := peak * s.Scale; load > MaxSimRPS {
			v.addf(p("pools", i, "sim", "scale"), "peak rps %v x scale %v = %v req/s: want at most %v simulated req/s per pool", peak, s.Scale, load, float64(MaxSimRPS))
		} else if wall := load * s.Speedup; speedOK && wall > MaxSimWallRPS {
			v.addf(p("pools", i, "sim", "speedup"), "peak rps %v x scale %v x speedup %v = %v req/s of wall-clock time: want at most %v", peak, s.Scale, s.Speedup, wall, float64(MaxSimWallRPS))
		}
	}
	v.num(p("pools", i, "sim", "service_ms"), s.ServiceMs)
	v.dur(p("pools", i, "sim", "boot_delay"), s.BootDelay)
	v.dur(p("pools", i, "sim", "from"), s.From)
	if v.integer(p("pools", i, "sim", "servers"), s.Servers) && s.Servers > 0 && (s.Servers < pl.Template.Min || s.Servers > pl.Template.Max) {
		v.addf(p("pools", i, "sim", "servers"), "%d is outside the template's min..max %d..%d", s.Servers, pl.Template.Min, pl.Template.Max)
	}
}

// validateTemplate checks a pool's scaling template.
func (c *Config) validateTemplate(v *validator, i int, pl *Pool) {
	t := &pl.Template
	minOK := v.integer(p("pools", i, "template", "min"), t.Min)
	if v.integer(p("pools", i, "template", "max"), t.Max) && minOK && t.Min > t.Max {
		v.addf(p("pools", i, "template", "min"), "min %d exceeds max %d", t.Min, t.Max)
	}
	switch ts := t.TargetSeconds; {
	case ts <= 0:
		v.addf(p("pools", i, "template", "target_seconds"), "response-time target must be positive seconds, got %v", ts)
	case ts > 60 && ts <= 60e3:
		v.addf(p("pools", i, "template", "target_seconds"), "target %vs looks like milliseconds: it is in seconds", ts)
	default:
		v.num(p("pools", i, "template", "target_seconds"), ts)
	}
	v.num(p("pools", i, "template", "service_rate"), t.ServiceRate)
	v.integer(p("pools", i, "template", "max_weight"), t.MaxWeight)
	if t.Image != "" && t.Command != "" {
		v.addf(p("pools", i, "template"), "set image or command, not both")
	}
	names := map[string]bool{}
	for j, s := range t.Sizes {
		if s.Name == "" || names[s.Name] {
			v.addf(p("pools", i, "template", "sizes", j, "name"), "sizes need distinct names, got %q", s.Name)
		}
		names[s.Name] = true
		v.num(p("pools", i, "template", "sizes", j, "speed"), s.Speed)
		v.integer(p("pools", i, "template", "sizes", j, "concurrency"), s.Concurrency)
	}
	c.validateFallback(v, i, pl)
	v.num(p("pools", i, "template", "objective", "server_hour"), t.Objective.ServerHour)
	v.num(p("pools", i, "template", "objective", "violation_minute"), t.Objective.ViolationMinute)
}

// validateFallback checks the set keys of a pool's template.fallback
// against their ranges, then the resulting thresholds' cross-field rules
// (agent.ThresholdConfig.Validate).
func (c *Config) validateFallback(v *validator, i int, pl *Pool) {
	f := pl.Template.Fallback
	at := func(key string) []any { return p("pools", i, "template", "fallback", key) }
	ok := true
	for _, d := range []struct {
		key string
		v   *time.Duration
	}{{"window", f.Window}, {"min_breach", f.MinBreach}, {"down_cooldown", f.DownCooldown}, {"breach_memory", f.BreachMemory}} {
		if d.v != nil && !v.dur(at(d.key), *d.v) {
			ok = false
		}
	}
	for _, x := range []struct {
		key string
		v   *float64
	}{
		{"min_requests", f.MinRequests}, {"util_high", f.UtilHigh}, {"util_low", f.UtilLow},
		{"grow_ratio", f.GrowRatio}, {"shrink_ratio", f.ShrinkRatio}, {"shrink_below", f.ShrinkBelow},
		{"queue_high", f.QueueHigh}, {"queue_low", f.QueueLow}, {"breach_confidence", f.BreachConfidence},
	} {
		if x.v != nil && !v.num(at(x.key), *x.v) {
			ok = false
		}
	}
	if f.Reserve != nil && !v.integer(at("reserve"), *f.Reserve) {
		ok = false
	}
	if !ok || f == (Fallback{}) {
		return
	}
	tc := c.PoolFallback(pl)
	tc.TargetP95 = 0 // checked as template.target_seconds
	if err := tc.Validate(); err != nil {
		var list interface{ Unwrap() []error }
		errs := []error{err}
		if errors.As(err, &list) {
			errs = list.Unwrap()
		}
		for _, e := range errs {
			v.addf(p("pools", i, "template", "fallback"), "%v", e)
		}
	}
}

// p builds a path of keys and indexes.
func p(elems ...any) []any { return elems }

// pathString renders a path as pools[0].template.min.
func pathString(path []any) string {
	var b strings.Builder
	for _, e := range path {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	return b.String()
}

// lineOf walks root along path and returns the line of the deepest node it
// reaches (0 when root is nil).
func lineOf(root *yaml.Node, path []any) int {
	if root == nil {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, e := range path {
		var next *yaml.Node
		switch e := e.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for k := 0; k+1 < len(n.Content); k += 2 {
					if n.Content[k].Value == e {
						next = n.Content[k+1]
						line = n.Content[k].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && e < len(n.Content) {
				next = n.Content[e]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}
