package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/internal/testkit"
	"github.com/lbtune/lbtune/tuner"
)

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
	testkit.LearnConfig(t, dir, addr)
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
