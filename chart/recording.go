package chart

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

// PoolSource is one pool as one source reports it.
type PoolSource struct {
	Pool, Source string
}

// Recording is what can be charted from a store or a dataset file: every
// pool's snapshots as each source reports them, the decisions and the
// events.
type Recording struct {
	snaps map[PoolSource][]collector.Snapshot
	// sources counts the sources reporting each pool.
	sources   map[string]int
	decisions []agent.Decision
	events    []datasets.Event
}

func (r *Recording) add(s collector.Snapshot) {
	for _, p := range s.Pools {
		k := PoolSource{p.Name, s.Source}
		if _, ok := r.snaps[k]; !ok {
			r.sources[p.Name]++
		}
		r.snaps[k] = append(r.snaps[k], s)
	}
}

// LoadRecording reads the snapshots, decisions and events of the store at
// path (lbtune run or record), or the snapshots and events of a dataset
// file (.jsonl, .jsonl.gz).
func LoadRecording(path string) (*Recording, error) {
	rec := &Recording{snaps: map[PoolSource][]collector.Snapshot{}, sources: map[string]int{}}
	if !datasets.IsStore(path) {
		r, err := datasets.OpenFile(path)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		for {
			e, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if e.Snapshot != nil {
				rec.add(*e.Snapshot)
			} else if e.Event != nil {
				rec.events = append(rec.events, *e.Event)
			}
		}
		return rec, nil
	}
	st, err := datasets.OpenReadOnly(path)
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	defer st.Close()
	if err := st.Range("", time.Time{}, time.Time{}, func(s collector.Snapshot) error { rec.add(s); return nil }); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	err = st.RangeRecords(datasets.BucketDecisions, time.Time{}, time.Time{}, func(_ time.Time, v []byte) error {
		var d agent.Decision
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode decision: %w", err)
		}
		rec.decisions = append(rec.decisions, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	err = st.RangeRecords(datasets.BucketEvents, time.Time{}, time.Time{}, func(_ time.Time, v []byte) error {
		var e datasets.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		rec.events = append(rec.events, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	return rec, nil
}

// Pools lists the recording's pools as each source reports them, sorted by
// pool then source; pool "" lists every pool, else only that one.
func (r *Recording) Pools(pool string) []PoolSource {
	var out []PoolSource
	for k := range r.snaps {
		if pool == "" || k.Pool == pool {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b PoolSource) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.Source, b.Source))
	})
	return out
}

// History is the chartable history of k: its points, the metric its
// decisions used, the load phases, and target, or when target is 0 the
// target its decisions recorded (metric target_ms). A pool reported by
// several sources is named POOL-SOURCE (made safe for a file name). Points
// is empty when k has fewer than two snapshots.
func (r *Recording) History(k PoolSource, target time.Duration) History {
	h := History{Pool: k.Pool, Points: collector.PoolPoints(nil, r.snaps[k], k.Pool),
		Metric: DecisionMetric(r.decisions, k.Pool, "p95_ms", "window_p95_ms", "util"),
		Target: target, Phases: LoadPhases(r.events)}
	for _, d := range r.decisions {
		if v, ok := d.Metrics["target_ms"]; ok && d.Pool == k.Pool && h.Target == 0 {
			h.Target = time.Duration(v * float64(time.Millisecond))
		}
	}
	if r.sources[k.Pool] > 1 {
		h.Pool = k.Pool + "-" + safeName(k.Source)
	}
	return h
}

// LoadPhases turns "load" events (the offered rate changing, see
// datasets.Event) into labelled phases, each lasting until the next.
func LoadPhases(events []datasets.Event) []Phase {
	var out []Phase
	for _, e := range events {
		if e.Kind != "load" {
			continue
		}
		if n := len(out); n > 0 {
			out[n-1].End = e.Time
		}
		label := fmt.Sprintf("%.0f rps", e.Value)
		if e.Detail != "" && len(e.Detail) < 16 {
			label = e.Detail
		}
		out = append(out, Phase{Start: e.Time, End: e.Time, Label: label})
	}
	return out
}

// safeName makes a source URI usable in a file name.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
