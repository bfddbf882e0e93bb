package datasets

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// killEnv names the store the re-executed test binary writes to.
const killEnv = "LBTUNE_TEST_KILL_WRITER_DB"

// TestKillWriterHelper is not a test on its own: TestKillWriter re-executes
// the test binary running only this function, with killEnv set. It appends
// batches of snapshots in a loop and prints "committed N" after each commit,
// until killed (or 20 s / 100000 batches, so it never runs away).
func TestKillWriterHelper(t *testing.T) {
	path := os.Getenv(killEnv)
	if path == "" {
		t.Skip("helper process for TestKillWriter")
	}
	s, err := Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
		// Batch i holds snapshots at seconds 3i, 3i+1, 3i+2 of two sources.
		var batch []collector.Snapshot
		for j := 0; j < 3; j++ {
			at := t0.Add(time.Duration(3*i+j) * time.Second)
			batch = append(batch, synth("a", at, 2, 40, uint64(3*i+j)), synth("b", at, 1, 5, uint64(3*i+j)))
		}
		if err := s.Append(batch...); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Printf("committed %d\n", i)
	}
	os.Exit(0)
}

// TestKillWriter SIGKILLs a writing process at several points and checks
// that every batch it reported committed is in the reopened store, intact,
// and that the file passes bbolt's consistency check and takes new writes.
func TestKillWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "killed.db")
	tests := []struct {
		name      string
		killAfter int // commits seen before SIGKILL
	}{
		{"early", 3},
		{"mid run", 25},
		{"later, store already grown", 60},
	}
	last := -1 // highest batch reported committed over all rounds
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillWriterHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), killEnv+"="+path)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			sc := bufio.NewScanner(out)
			seen := 0
			for sc.Scan() {
				line := sc.Text()
				n, ok := strings.CutPrefix(line, "committed ")
				if !ok {
					t.Fatalf("writer: %s", line)
				}
				i, err := strconv.Atoi(n)
				if err != nil {
					t.Fatalf("writer: %s", line)
				}
				last = max(last, i)
				if seen++; seen == tc.killAfter {
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
			}
			err = cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("writer was not killed by SIGKILL: %v", err)
			}
			if seen < tc.killAfter {
				t.Fatalf("writer reported %d commits before dying, want >= %d", seen, tc.killAfter)
			}
			// The writer restarts at batch 0 each round and replaces the
			// same keys, so the store holds every batch 0..last.
			s, err := Open(path)
			if err != nil {
				t.Fatalf("reopen after kill: %v", err)
			}
			defer s.Close()
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			err = s.Range("", time.Time{}, time.Time{}, func(sn collector.Snapshot) error {
				if err := sn.Validate(); err != nil {
					return err
				}
				if sn.Source == "c" {
					return nil // appended after an earlier kill
				}
				got[fmt.Sprintf("%s/%d", sn.Source, int(sn.Time.Sub(t0)/time.Second))] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i <= 3*last+2; i++ {
				for _, src := range []string{"a", "b"} {
					if !got[fmt.Sprintf("%s/%d", src, i)] {
						t.Fatalf("snapshot %s/%d reported committed (batch %d) is missing after kill", src, i, i/3)
					}
				}
			}
			// A killed writer may have committed one batch it had no time to report.
			if n, want := len(got), 2*3*(last+1); n != want && n != want+6 {
				t.Fatalf("store holds %d snapshots, want %d (or %d)", n, want, want+6)
			}
			if err := s.Append(synth("c", t0, 1, 1, 1)); err != nil {
				t.Fatalf("append after kill: %v", err)
			}
			t.Logf("killed after %d reported commits; store holds batches 0..%d", seen, last)
		})
	}
}
