package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTestbedCommands drives backend, load, analyze and
// testbed through the binary, the way scripts/datasets.sh does.
func TestTestbedCommands(t *testing.T) {
	bin := lbtuneBinary(t)
	dir := t.TempDir()
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"load", "--target", "http://127.0.0.1:1/", "--rate", "10"},                              // no --duration
			{"load", "--duration", "1s", "--rate", "10"},                                             // no target
			{"load", "--target", "http://x/", "--rate", "1", "--trace", "t.csv", "--duration", "1s"}, // two schedules
			{"load", "--target", "http://x/", "--rate", "1", "--duration", "1s", "--dist", "pareto"},
			{"backend", "--work", "gpu"},
			{"analyze"},
			{"analyze", "a.csv", "b.csv"},
			{"testbed"},
			{"testbed", "sideways"},
		} {
			if code, _, stderr := recordExec(t, bin, args...); code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") > 0 && !strings.Contains(stderr, "Usage") {
				t.Errorf("%v: exit %d, stderr %q; want exit 2 with one line", args, code, stderr)
			}
		}
	})
	t.Run("analyze shared haproxy log", func(t *testing.T) {
		log := filepath.Join(recordCaptures, "haproxy", "haproxy.log")
		// The flag may come before or after the file.
		for _, args := range [][]string{{"analyze", "--json", log}, {"analyze", log, "--json"}} {
			code, out, stderr := recordExec(t, bin, args...)
			if code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, stderr)
			}
			var r struct {
				Total struct {
					Requests int `json:"requests"`
					Response struct {
						Mean, Variance, Min, Max, SCV float64
					} `json:"response_ms"`
				} `json:"total"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Total.Requests != 489 || r.Total.Response.SCV <= 0 {
				t.Fatalf("%v: report %+v, %v", args, r, err)
			}
		}
	})
	t.Run("testbed up, load through both balancers, down", func(t *testing.T) {
		state := filepath.Join(dir, "tb")
		cfg := filepath.Join(dir, "testbed.yaml")
		if err := os.WriteFile(cfg, []byte("state_dir: "+state+"\nbackend: {light_ms: 1, medium_ms: 2, heavy_ms: 4}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := recordExec(t, bin, "testbed", "up", "--config", cfg); code != 0 {
			t.Fatalf("up: exit %d: %s", code, stderr)
		}
		t.Cleanup(func() { recordExec(t, bin, "testbed", "down", "--config", cfg) })
		if code, _, stderr := recordExec(t, bin, "testbed", "up", "--config", cfg); code != 1 || !strings.Contains(stderr, "already running") {
			t.Fatalf("second up: exit %d: %s", code, stderr)
		}
		for _, b := range []string{"haproxy", "nginx"} {
			_, addr, _ := recordExec(t, bin, "testbed", "status", "--config", cfg, "--get", b+".addr")
			code, out, stderr := recordExec(t, bin, "load", "--mix", "/light=60,/medium=30,/heavy=10", "--base", "http://"+strings.TrimSpace(addr),
				"--rate", "200", "--duration", "2s", "--json")
			if code != 0 {
				t.Fatalf("load via %s: exit %d: %s", b, code, stderr)
			}
			var s map[string]any
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"requests", "rate_requested", "rate_achieved", "failures", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "scv", "series"} {
				if _, ok := s[k]; !ok {
					t.Errorf("summary lacks %q", k)
				}
			}
			if s["failures"].(float64) != 0 || s["requests"].(float64) < 300 {
				t.Errorf("via %s: %v requests, %v failures", b, s["requests"], s["failures"])
			}
		}
		code, out, _ := recordExec(t, bin, "testbed", "status", "--config", cfg, "--json")
		var st struct {
			Processes []struct {
				PID   int  `json:"pid"`
				Alive bool `json:"alive"`
			} `json:"processes"`
		}
		if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.Processes) != 10 {
			t.Fatalf("status: exit %d, %v, %d processes", code, err, len(st.Processes))
		}
		if code, _, stderr := recordExec(t, bin, "testbed", "down", "--config", cfg); code != 0 {
			t.Fatalf("down: exit %d: %s", code, stderr)
		}
		for _, p := range st.Processes {
			if testbedTestRunning(p.PID) {
				t.Errorf("pid %d still running after down", p.PID)
			}
		}
		if code, _, _ := recordExec(t, bin, "testbed", "status", "--config", cfg); code != 1 {
			t.Errorf("status after down: exit %d, want 1", code)
		}
	})
	t.Run("backend prints its address, load stops on SIGINT, backend stops on SIGINT", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "backend", "--work", "sleep")
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "127.0.0.1:") {
			t.Fatalf("first line %q, %v", line, err)
		}
		// lbtune load stops on SIGINT and still prints its summary.
		load := exec.CommandContext(ctx, bin, "load", "--target", "http://"+strings.TrimSpace(line)+"/light", "--rate", "100", "--duration", "60s", "--json")
		var lout strings.Builder
		load.Stdout = &lout
		if err := load.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		_ = load.Process.Signal(os.Interrupt)
		if err := load.Wait(); err != nil {
			t.Fatalf("load after SIGINT: %v", err)
		}
		var sum struct {
			Interrupted bool    `json:"interrupted"`
			Requests    int     `json:"requests"`
			DurationS   float64 `json:"duration_s"`
		}
		if err := json.Unmarshal([]byte(lout.String()), &sum); err != nil || !sum.Interrupted || sum.Requests < 50 || sum.DurationS > 10 {
			t.Fatalf("summary after SIGINT %+v, %v", sum, err)
		}

		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("backend exit: %v", err)
		}
	})
}

// testbedTestRunning reports whether pid is a live, non-zombie process.
func testbedTestRunning(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}
