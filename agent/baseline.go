package agent

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/lbtune/lbtune/collector"
)

// The baselines every learned policy is measured against (lbtune eval):
// Static, Threshold (also the agent's fallback), HPA and Oracle. This file
// holds Static and the pool metrics the baselines share.

// Static keeps a fixed number of servers with equal weights.
type Static struct {
	n int
}

// NewStatic returns the static policy holding n servers (n >= 1).
func NewStatic(n int) *Static { return &Static{n: max(n, 1)} }

// NewStaticHold returns the static policy holding the servers the pool
// has (serving + booting, at least 1) at its first decision.
func NewStaticHold() *Static { return &Static{} }

// Name is "static".
func (s *Static) Name() string { return "static" }

// Decide asks for the fixed count and, if any weight differs from the
// others, equal weights.
func (s *Static) Decide(_ context.Context, obs Observation) (Decision, error) {
	if s.n == 0 {
		s.n = max(obs.Servers+obs.Booting, 1)
	}
	d := Decision{Policy: s.Name(), Servers: s.n, Reason: fmt.Sprintf("static: hold %d servers", s.n),
		Metrics: map[string]float64{"servers": float64(obs.Servers)}}
	for _, sv := range obs.Latest.Servers {
		if sv.Weight != obs.Latest.Servers[0].Weight {
			d.Weights = blEqualWeights(obs.Latest)
			d.Reason += ", equal weights"
			break
		}
	}
	return d, nil
}

func blEqualWeights(pr collector.PoolRates) map[string]int {
	w := make(map[string]int, len(pr.Servers))
	for _, s := range pr.Servers {
		w[s.Name] = 1
	}
	return w
}

// blUtilisation is the pool's load relative to its serving capacity over
// the latest interval: request rate / (ServiceRate x summed capacity of the
// serving servers) when the template knows the service rate; otherwise the
// mean number of busy requests per serving server (Active gauges), which is
// the utilisation of single-slot servers. It may exceed 1 under overload.
func blUtilisation(obs *Observation) float64 {
	pr := &obs.Latest
	var capSum float64
	var active float64
	n := 0
	for _, s := range pr.Servers {
		if s.State != collector.StateUp || s.Backup {
			continue
		}
		n++
		c := 1.0
		if v, ok := obs.Capacity[s.Name]; ok && v > 0 {
			c = v
		}
		capSum += c
		active += s.Gauges.Active
	}
	if n == 0 {
		if pr.Requests() > 0 {
			return math.Inf(1)
		}
		return 0
	}
	if mu := obs.Template.ServiceRate; mu > 0 {
		return pr.Requests() / (mu * capSum)
	}
	return active / capSum
}

// blQueuePerServer is the mean number of requests waiting per serving server
// (server queues plus the pool queue) at the end of the latest interval.
func blQueuePerServer(pr *collector.PoolRates) float64 {
	q := pr.Queue
	for _, s := range pr.Servers {
		q += s.Gauges.Queue
	}
	return q / float64(max(pr.ServersUp(), 1))
}

// Clamp bounds n to the template's [max(Min,1), Max] (Max 0 = none).
func (t Template) Clamp(n int) int {
	n = max(n, t.Min, 1)
	if t.Max > 0 {
		n = min(n, t.Max)
	}
	return n
}

// ParseSpec splits a policy spec such as "hpa@0.5" into its name and
// parameter; param is NaN when the spec has none.
func ParseSpec(spec string) (name string, param float64, err error) {
	name, arg, ok := strings.Cut(spec, "@")
	if !ok {
		return name, math.NaN(), nil
	}
	param, err = strconv.ParseFloat(arg, 64)
	if err != nil || math.IsNaN(param) || math.IsInf(param, 0) {
		return name, 0, fmt.Errorf("policy %q: bad parameter %q", spec, arg)
	}
	return name, param, nil
}
