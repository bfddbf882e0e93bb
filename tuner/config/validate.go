package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

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
	if c.Store.Retention < 0 {
		v.addf(p("store", "retention"), "must not be negative")
	}
	in := c.Intervals
	if in.Scrape <= 0 {
		v.addf(p("intervals", "scrape"), "must be positive")
	}
	if in.ScrapeTimeout <= 0 {
		v.addf(p("intervals", "scrape_timeout"), "must be positive")
	} else if in.ScrapeTimeout > in.Scrape {
		v.addf(p("intervals", "scrape_timeout"), "%s must not exceed the scrape interval %s", in.ScrapeTimeout, in.Scrape)
	}
	if in.Decide < in.Scrape {
		v.addf(p("intervals", "decide"), "%s must be at least the scrape interval %s", in.Decide, in.Scrape)
	}
	if !ValidMode(c.Mode) {
		v.addf(p("mode"), "unknown mode %q (want auto, shadow, manual or fallback-only)", c.Mode)
	}
	r := c.Reward
	if r.Latency < 0 || r.Errors < 0 || r.ServerCost < 0 {
		v.addf(p("reward"), "weights must not be negative")
	}
	if len(c.Pools) == 0 {
		v.addf(p("pools"), "at least one pool is needed")
	}
	l := c.Model.Learning
	if !(l.Epsilon >= 0 && l.Epsilon <= 1) {
		v.addf(p("model", "learning", "epsilon"), "want 0..1, got %v", l.Epsilon)
	}
	if !(l.Decay > 0 && l.Decay <= 1) {
		v.addf(p("model", "learning", "decay"), "want a factor in (0, 1], got %v", l.Decay)
	}
	if !(l.MinEpsilon >= 0 && l.MinEpsilon <= l.Epsilon) {
		v.addf(p("model", "learning", "min_epsilon"), "want 0..epsilon (%v), got %v", l.Epsilon, l.MinEpsilon)
	}
	if l.SaveEvery <= 0 {
		v.addf(p("model", "learning", "save_every"), "must be positive")
	}
	if l.Enabled && c.Model.Path == "" {
		v.addf(p("model", "learning", "enabled"), "online learning needs a trained model (model.path): an untrained agent never decides")
	}
	g := c.Guard
	if g.UpCooldown < 0 || g.DownCooldown < 0 || g.SpikeHold < 0 || g.MinLifetime < 0 || g.MaxStepUp < 0 || g.MaxStepDown < 0 {
		v.addf(p("guard"), "limits must not be negative")
	}
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
		if ts := s.TimeScale; ts != 0 && !(ts >= 1 && ts <= 1000) {
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
			if a.AWS.Port <= 0 || a.AWS.Port > 65535 {
				v.addf(p("actuators", i, "aws", "port"), "want a port 1..65535, got %d", a.AWS.Port)
			}
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
	for j, ph := range s.Phases {
		if ph.Duration <= 0 || ph.RPS < 0 {
			v.addf(p("pools", i, "sim", "phases", j), "want a positive duration and a non-negative rps, got %s at %v rps", ph.Duration, ph.RPS)
		}
	}
	if s.Speedup <= 0 {
		v.addf(p("pools", i, "sim", "speedup"), "must be positive")
	}
	if s.Scale <= 0 {
		v.addf(p("pools", i, "sim", "scale"), "must be positive")
	}
	if s.ServiceMs <= 0 {
		v.addf(p("pools", i, "sim", "service_ms"), "must be positive")
	}
	if s.BootDelay < 0 || s.From < 0 {
		v.addf(p("pools", i, "sim"), "boot_delay and from must not be negative")
	}
	if s.Servers < 0 || (s.Servers > 0 && (s.Servers < pl.Template.Min || s.Servers > pl.Template.Max)) {
		v.addf(p("pools", i, "sim", "servers"), "%d is outside the template's %d..%d", s.Servers, pl.Template.Min, pl.Template.Max)
	}
}

// validateTemplate checks a pool's scaling template.
func (c *Config) validateTemplate(v *validator, i int, pl *Pool) {
	t := &pl.Template
	if t.Min < 0 {
		v.addf(p("pools", i, "template", "min"), "must not be negative, got %d", t.Min)
	}
	if t.Max < 1 {
		v.addf(p("pools", i, "template", "max"), "must be at least 1, got %d", t.Max)
	} else if t.Min > t.Max {
		v.addf(p("pools", i, "template", "min"), "min %d exceeds max %d", t.Min, t.Max)
	}
	if t.TargetSeconds <= 0 {
		v.addf(p("pools", i, "template", "target_seconds"), "response-time target must be positive seconds, got %v", t.TargetSeconds)
	} else if t.TargetSeconds > 60 {
		v.addf(p("pools", i, "template", "target_seconds"), "target %vs looks like milliseconds: it is in seconds", t.TargetSeconds)
	}
	if t.ServiceRate < 0 {
		v.addf(p("pools", i, "template", "service_rate"), "must not be negative")
	}
	if t.MaxWeight < 1 || t.MaxWeight > 1000 {
		v.addf(p("pools", i, "template", "max_weight"), "want 1..1000, got %d", t.MaxWeight)
	}
	if t.Image != "" && t.Command != "" {
		v.addf(p("pools", i, "template"), "set image or command, not both")
	}
	names := map[string]bool{}
	for j, s := range t.Sizes {
		if s.Name == "" || names[s.Name] {
			v.addf(p("pools", i, "template", "sizes", j, "name"), "sizes need distinct names, got %q", s.Name)
		}
		names[s.Name] = true
		if s.Speed <= 0 {
			v.addf(p("pools", i, "template", "sizes", j, "speed"), "must be positive, got %v", s.Speed)
		}
		if s.Concurrency < 0 {
			v.addf(p("pools", i, "template", "sizes", j, "concurrency"), "must not be negative")
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
