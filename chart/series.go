package chart

import (
	"sort"
	"time"

	"github.com/lbtune/lbtune/agent"
)

// MetricPoint is the value of one decision metric at one decision.
type MetricPoint struct {
	Time  time.Time `json:"t"`
	Name  string    `json:"name"`
	Value float64   `json:"value"`
}

// DecisionMetric picks, for each decision of pool, the metric its policy
// based the decision on: the first of preferred present in Metrics, else the
// alphabetically first metric. Decisions without metrics are skipped.
func DecisionMetric(decisions []agent.Decision, pool string, preferred ...string) []MetricPoint {
	var out []MetricPoint
	for _, d := range decisions {
		if d.Pool != pool || len(d.Metrics) == 0 {
			continue
		}
		name := ""
		for _, p := range preferred {
			if _, ok := d.Metrics[p]; ok {
				name = p
				break
			}
		}
		if name == "" {
			keys := make([]string, 0, len(d.Metrics))
			for k := range d.Metrics {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			name = keys[0]
		}
		out = append(out, MetricPoint{Time: d.Time, Name: name, Value: d.Metrics[name]})
	}
	return out
}

// Phase is a labelled stretch of time (e.g. a load phase of the testbed).
type Phase struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Label string    `json:"label"`
}
