package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner/config"
)

// TestPlotTargetFromTemplate records 20 s of pool "web" (as the example
// --sim configuration names it) into a store and plots it: with --config
// the target comes from the pool's template and plot is quiet about it;
// without, plot says no target is known; a config alone finds the store.
func TestPlotTargetFromTemplate(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lbtune.db")
	cfg := writeWebStore(t, dir, db, 20)
	tests := []struct {
		name       string
		args       []string
		code       int
		stderrHas  string
		stderrNone string
	}{
		{"config and db", []string{"--db", db, "--config", cfg}, 0, "", "no response-time target"},
		{"config alone: its store", []string{"--config", cfg}, 0, "", "no response-time target"},
		{"db alone", []string{"--db", db}, 0, "pool web: no response-time target known", ""},
		{"--target", []string{"--db", db, "--target", "250ms"}, 0, "", "no response-time target"},
		{"neither", nil, 2, "want --db FILE or --config", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "plots")
			code, stdout, stderr := cliRun(t, append([]string{"plot", "--out", out}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			if tc.stderrHas != "" && !strings.Contains(stderr, tc.stderrHas) {
				t.Errorf("stderr %q lacks %q", stderr, tc.stderrHas)
			}
			if tc.stderrNone != "" && strings.Contains(stderr, tc.stderrNone) {
				t.Errorf("stderr %q has %q", stderr, tc.stderrNone)
			}
			if code == 0 && !strings.Contains(stdout, filepath.Join(out, "web-latency.png")) {
				t.Errorf("stdout %q: no web-latency.png", stdout)
			}
		})
	}
}

// writeWebStore writes n one-second snapshots of pool "web" (as the example
// --sim configuration names it: one server, 10 req/s at 30 ms, all 2xx)
// into a new store at db, and the --sim example configuration into dir; it
// returns the configuration's path.
func writeWebStore(t *testing.T, dir, db string, n int) string {
	t.Helper()
	st, err := datasets.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		k := uint64(i)
		s := collector.Snapshot{Time: t0.Add(time.Duration(i) * time.Second), Source: "sim:web",
			Pools: []collector.Pool{{Name: "web", Servers: []collector.Server{{Name: "a", Weight: 1, State: collector.StateUp,
				Counters: collector.Counters{Requests: 10 * k, LatencySumMs: 300 * k, Responses: [5]uint64{0, 10 * k}}}}}}}
		if err := st.Append(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "lbtune.yaml")
	if err := os.WriteFile(cfg, []byte(config.Example(true)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}
