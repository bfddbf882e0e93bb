package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/chart"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

func init() {
	register(&command{
		name:    "plot",
		summary: "write PNG charts (load, response time vs target, servers, decision metric) from a store or dataset",
		run:     plotRun,
	})
}

func plotRun(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plot", stderr)
	db := fs.String("db", "", "bbolt store (lbtune run/record) or dataset file (.jsonl, .jsonl.gz)")
	out := fs.String("out", "plots", "directory for the PNG files")
	pool := fs.String("pool", "", "only this pool (default: every pool)")
	target := fs.Duration("target", 0, "response-time target to draw when the decisions do not record one (e.g. 250ms)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *db == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: want --db FILE [--out DIR]", errUsage)
	}
	rec, err := plotLoad(*db)
	if err != nil {
		return err
	}
	var pools []string
	for p := range rec.snaps {
		if *pool == "" || p.pool == *pool {
			pools = append(pools, p.pool+"\x00"+p.source)
		}
	}
	if len(pools) == 0 {
		return fmt.Errorf("%s: no snapshots of %s", *db, plotOr(*pool, "any pool"))
	}
	sort.Strings(pools)
	phases := plotPhases(rec.events)
	for _, key := range pools {
		k := rec.keyOf(key)
		h := chart.History{Pool: k.pool, Points: collector.PoolPoints(nil, rec.snaps[k], k.pool),
			Metric: chart.DecisionMetric(rec.decisions, k.pool, "p95_ms", "window_p95_ms", "util"),
			Target: *target, Phases: phases}
		for _, d := range rec.decisions {
			if v, ok := d.Metrics["target_ms"]; ok && d.Pool == k.pool && h.Target == 0 {
				h.Target = time.Duration(v * float64(time.Millisecond))
			}
		}
		if len(h.Points) == 0 {
			fmt.Fprintf(stderr, "pool %s (%s): fewer than two snapshots, skipped\n", k.pool, k.source)
			continue
		}
		if len(pools) > 1 && rec.sources[k.pool] > 1 {
			h.Pool = k.pool + "-" + plotSafe(k.source)
		}
		files, err := chart.WritePNGs(*out, h)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintln(stdout, f)
		}
	}
	return nil
}

// plotKey is one pool as one source reports it.
type plotKey struct{ pool, source string }

// plotRecording is what plot reads from a store or dataset file.
type plotRecording struct {
	snaps     map[plotKey][]collector.Snapshot
	sources   map[string]int // sources reporting each pool
	decisions []agent.Decision
	events    []datasets.Event
}

func (r *plotRecording) keyOf(s string) plotKey {
	for k := range r.snaps {
		if k.pool+"\x00"+k.source == s {
			return k
		}
	}
	panic("lbtune: plot key not found")
}

func (r *plotRecording) add(s collector.Snapshot) {
	for _, p := range s.Pools {
		k := plotKey{p.Name, s.Source}
		if _, ok := r.snaps[k]; !ok {
			r.sources[p.Name]++
		}
		r.snaps[k] = append(r.snaps[k], s)
	}
}

// plotLoad reads snapshots, decisions and events from a store or the
// snapshots and events of a dataset file.
func plotLoad(path string) (*plotRecording, error) {
	rec := &plotRecording{snaps: map[plotKey][]collector.Snapshot{}, sources: map[string]int{}}
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

// plotPhases turns "load" events (the offered rate changing) into labelled
// phases, each lasting until the next.
func plotPhases(events []datasets.Event) []chart.Phase {
	var out []chart.Phase
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
		out = append(out, chart.Phase{Start: e.Time, End: e.Time, Label: label})
	}
	return out
}

func plotOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// plotSafe makes a source URI usable in a file name.
func plotSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
