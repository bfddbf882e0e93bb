package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Policies a pool can run (the `policy` setting, globally or per pool):
// the trained agent, or a baseline in its place so the same runtime can be
// compared against itself.
const (
	// PolicyAgent is the trained agent behind its threshold fallback (the default).
	PolicyAgent = "agent"
	// PolicyThreshold is the threshold policy alone.
	PolicyThreshold = "threshold"
	// PolicyStatic holds the servers the pool has at its first decision,
	// with equal weights.
	PolicyStatic = "static"
	// PolicyHPA is HPA-style target tracking: "hpa@U" with a target
	// utilisation 0 < U < 1.
	PolicyHPA = "hpa"
)

// ParsePolicy checks a policy setting and returns its name (agent,
// threshold, static or hpa) and, for hpa@U, the target utilisation U.
func ParsePolicy(s string) (name string, target float64, err error) {
	name, arg, hasArg := strings.Cut(s, "@")
	switch name {
	case PolicyAgent, PolicyThreshold, PolicyStatic:
		if hasArg {
			return "", 0, fmt.Errorf("policy %q takes no parameter", s)
		}
		return name, 0, nil
	case PolicyHPA:
		u, perr := strconv.ParseFloat(arg, 64)
		if !hasArg || perr != nil || math.IsNaN(u) || !(u > 0 && u < 1) {
			return "", 0, fmt.Errorf("policy %q: want hpa@U with a target utilisation 0 < U < 1", s)
		}
		return name, u, nil
	}
	return "", 0, fmt.Errorf("unknown policy %q (want agent, threshold, hpa@U or static)", s)
}

// PoolPolicy is the policy setting of pool p: its own, else the global
// one, else PolicyAgent.
func (c *Config) PoolPolicy(p *Pool) string {
	switch {
	case p.Policy != "":
		return p.Policy
	case c.Policy != "":
		return c.Policy
	}
	return PolicyAgent
}

// validatePolicies checks the global and every pool's policy setting.
func (c *Config) validatePolicies(v *validator) {
	if c.Policy != "" {
		if _, _, err := ParsePolicy(c.Policy); err != nil {
			v.addf(p("policy"), "%v", err)
		}
	}
	for i := range c.Pools {
		if pl := c.Pools[i].Policy; pl != "" {
			if _, _, err := ParsePolicy(pl); err != nil {
				v.addf(p("pools", i, "policy"), "%v", err)
			}
		}
	}
}
