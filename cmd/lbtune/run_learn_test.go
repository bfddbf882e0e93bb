package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner"
	"github.com/lbtune/lbtune/tuner/config"
)

// runLearnConfig writes the --sim example into dir, sped up 30x, with the
// shipped model and online learning on (epsilon 1 decaying to 0.5, saved
// every simulated minute), and returns its path.
func runLearnConfig(t *testing.T, dir, addr string) string {
	t.Helper()
	model, err := filepath.Abs(filepath.Join("..", "..", "datasets", "default-agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(model); err != nil {
		t.Fatalf("shipped model missing: %v", err)
	}
	y := config.Example(true)
	for old, repl := range map[string]string{
		"listen: 127.0.0.1:9464":   "listen: " + addr,
		"token_file: lbtune.token": `token_file: ""`,
		"speedup: 10 ":             "speedup: 30 ",
		`path: ""`:                 "path: " + model,
		"enabled: false":           "enabled: true",
		"epsilon: 0.1 ":            "epsilon: 1 ",
		"min_epsilon: 0.02":        "min_epsilon: 0.5",
		"save_every: 10m":          "save_every: 1m",
	} {
		if !strings.Contains(y, old) {
			t.Fatalf("example lacks %q", old)
		}
		y = strings.Replace(y, old, repl, 1)
	}
	path := filepath.Join(dir, "lbtune.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runLatestLearned reads the latest learned policy of pool web from the
// store at path.
func runLatestLearned(t *testing.T, path string) *agent.PolicyTable {
	t.Helper()
	st, err := datasets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tb, err := tuner.LoadPolicy(st, tuner.LearnedPolicyName("web"))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// TestRunKillRestartLearning kills a learning daemon with SIGKILL after a
// few periodic saves, and checks the restart resumes from the latest saved
// version of the learned policy.
func TestRunKillRestartLearning(t *testing.T) {
	bin := lbtuneBinary(t)
	dir := t.TempDir()
	addr := runFreeAddr(t)
	runLearnConfig(t, dir, addr)
	p := runStart(t, bin, dir, addr)
	// 5 s at 30x: about two simulated minutes, two saves.
	time.Sleep(5 * time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	saved := runLatestLearned(t, filepath.Join(dir, "lbtune.db"))

	p = runStart(t, bin, dir, addr)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15 s after SIGTERM\n%s", p.stderr)
	}
	var resumed bool
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var rec struct {
			Msg     string
			Resumed bool
			Updates int
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "online learning" {
			resumed = rec.Resumed && rec.Updates == saved.Steps
			if !resumed {
				t.Errorf("restart: %s; want resumed from the saved version with %d updates", line, saved.Steps)
			}
		}
	}
	if !resumed {
		t.Errorf("no resumed online learning in the restart's log:\n%s", p.stderr)
	}
}
