package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummaryCommand summarises 20 s of pool "web" from a store: the
// target from --config, the client figures from --records when given,
// else the balancer's; a usage error without a store.
func TestSummaryCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lbtune.db")
	cfg := writeWebStore(t, dir, db, 21)
	records := filepath.Join(dir, "records.csv")
	if err := os.WriteFile(records, []byte("time,target,status,latency_ms,bytes,error,server,service_ms\n"+
		"2026-01-01T00:00:01Z,http://h/web,200,12.5,10,,a,1.0\n2026-01-01T00:00:02Z,http://h/web,503,40,0,,a,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		has  []string
	}{
		{"balancer side", []string{"--db", db}, 0, []string{"run: 0:19 from 2026-01-01 00:00:01 UTC", "the balancer's counts", "web       190       0      90          -           -         0.3     1..1"}},
		{"client side", []string{"--config", cfg, "--db", db, "--records", records}, 0, []string{"client side (lbtune load records, per path)", "web         2       1      40"}},
		{"missing records", []string{"--db", db, "--records", filepath.Join(dir, "none.csv")}, 1, nil},
		{"neither", nil, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cliRun(t, append([]string{"summary"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			for _, h := range tc.has {
				if !strings.Contains(stdout, h) {
					t.Errorf("stdout lacks %q:\n%s", h, stdout)
				}
			}
		})
	}
}
