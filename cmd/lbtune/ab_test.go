package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestABCommand runs `lbtune ab --json` for two policies on a real HAProxy
// (about 40 s each) and checks the keys of its output, that the static
// policy never moved the pool, that every run's files are kept under
// --out, and that nothing it started is left running.
func TestABCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real HAProxy and fleet for about 90 s")
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
		t.Fatalf("haproxy missing (install the haproxy package; CI does): %v", err)
	}
	testABCommand(t, "haproxy", "haproxy.cfg")
}

// TestABCommandNGINX is TestABCommand on a real NGINX: the fleet's servers
// are rendered into the upstream (parked before the first one joins and
// after the last one leaves) and reloaded by the NGINX actuator, the daemon
// reads NGINX's access log over syslog UDP. No request fails (a scale-in
// marks the server down and waits for the old workers before it stops),
// and no NGINX process (master, workers, old workers) is left.
func TestABCommandNGINX(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real NGINX and fleet for about 90 s")
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatalf("nginx missing from PATH (install the nginx package; CI does): %v", err)
	}
	out := testABCommand(t, "nginx", "nginx/nginx.conf")
	for _, pol := range []string{"threshold", "static"} {
		pids := nginxPIDs(t, filepath.Join(out, pol, "nginx", "error.log"))
		if len(pids) < 2 {
			t.Errorf("%s: the NGINX error log names %d processes, want a master and workers", pol, len(pids))
		}
		for _, pid := range pids {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.HasPrefix(string(b), "nginx") {
				t.Errorf("%s: NGINX process %d left running: %q", pol, pid, b)
			}
		}
		inc, err := os.ReadFile(filepath.Join(out, pol, "nginx", "upstreams.conf"))
		if err != nil || !strings.Contains(string(inc), "lbtune-parked") || strings.Count(string(inc), "server ") != 1 {
			t.Errorf("%s: upstream after the pool went down: %v\n%s, want only the parked line", pol, err, inc)
		}
	}
}

// testABCommand runs two policies on balancer and checks the output, the
// files kept under --out (cfg is the balancer's config there) and that no
// backend is left; it returns the --out directory.
func testABCommand(t *testing.T, balancer, cfg string) string {
	bin := lbtuneBinary(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "ab", "--balancer", balancer, "--trace", "../../../shared/traces/nasa-1995-07-per-min.csv", "--from", "24h", "--to", "26h",
		"--speedup", "120", "--decide", "2s", "--duration", "40s", "--policies", "threshold,static", "--json", "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lbtune ab: %v\n%s", err, stderr.String())
	}
	if left := procsOf(bin); left != 0 {
		t.Errorf("%d processes of %s left running after ab", left, bin)
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.String())
	}
	if len(rows) != 2 || rows[0]["policy"] != "threshold" || rows[1]["policy"] != "static" {
		t.Fatalf("rows %v, want threshold then static", rows)
	}
	for _, r := range rows {
		for _, k := range []string{"policy", "slo_violation_pct", "p95_ms", "failed", "server_hours", "actions", "reversals", "sim"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%v: no key %q", r["policy"], k)
			}
		}
		sim, _ := r["sim"].(map[string]any)
		for _, k := range []string{"slo_violation_pct", "p95_ms", "server_hours"} {
			if _, ok := sim[k]; !ok {
				t.Errorf("%v: sim has no key %q", r["policy"], k)
			}
		}
		if req, _ := r["requests"].(float64); req < 500 {
			t.Errorf("%v: %v requests, want hundreds", r["policy"], r["requests"])
		}
		if f, ok := r["failed"].(float64); !ok || f != 0 {
			t.Errorf("%v: %v requests failed, want 0", r["policy"], r["failed"])
		}
		if sh, _ := r["server_hours"].(float64); !(sh > 0) {
			t.Errorf("%v: server_hours %v", r["policy"], r["server_hours"])
		}
		dir := filepath.Join(out, strings.ReplaceAll(r["policy"].(string), "@", "-"))
		for _, f := range []string{"lbtune.db", "load.jsonl", "lbtune.log", cfg, "minutes.csv"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("--out: %v", err)
			}
		}
		t.Logf("%s %v: viol %.1f%% p95 %.0f ms failed %v server-h %.2f actions %v | sim viol %.1f%% server-h %.2f", balancer,
			r["policy"], r["slo_violation_pct"], r["p95_ms"], r["failed"], r["server_hours"], r["actions"],
			sim["slo_violation_pct"], sim["server_hours"])
	}
	if a := rows[1]["actions"].(float64); a != 0 {
		t.Errorf("static moved the pool %v times", a)
	}
	if d, _ := rows[1]["decisions"].(map[string]any); len(d) == 0 {
		t.Errorf("static: no decisions recorded")
	} else {
		for k := range d {
			if !strings.HasPrefix(k, "static/") {
				t.Errorf("static run has a decision by %q", k)
			}
		}
	}
	return out
}

// nginxPIDs returns the pids an NGINX error log names (master, workers,
// old workers: "PID#TID:" on every line, at notice level every start).
func nginxPIDs(t *testing.T, errorLog string) []int {
	t.Helper()
	b, err := os.ReadFile(errorLog)
	if err != nil {
		t.Fatalf("nginx error log: %v", err)
	}
	seen := map[int]bool{}
	var pids []int
	for _, m := range regexp.MustCompile(`(?m)\] (\d+)#\d+: `).FindAllSubmatch(b, -1) {
		if pid, err := strconv.Atoi(string(m[1])); err == nil && !seen[pid] {
			seen[pid] = true
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestABSimOnly: --sim-only scores the plan in the simulator alone, in a
// second, with no real run: the real figures are zero, the static policy
// holds its starting servers for the 2 h slice in the simulator.
func TestABSimOnly(t *testing.T) {
	bin := lbtuneBinary(t)
	cmd := exec.Command(bin, "ab", "--trace", "../../../shared/traces/nasa-1995-07-per-min.csv", "--from", "24h", "--to", "26h",
		"--speedup", "30", "--decide", "1s", "--policies", "threshold,static", "--sim-only", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lbtune ab --sim-only: %v\n%s", err, stderr.String())
	}
	var rows []struct {
		Policy      string  `json:"policy"`
		Requests    int     `json:"requests"`
		ServerHours float64 `json:"server_hours"`
		Sim         struct {
			ServerHours float64 `json:"server_hours"`
			Actions     int     `json:"actions"`
		} `json:"sim"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.String())
	}
	if len(rows) != 2 || rows[0].Policy != "threshold" || rows[1].Policy != "static" {
		t.Fatalf("rows %+v, want threshold then static", rows)
	}
	for _, r := range rows {
		if r.Requests != 0 || r.ServerHours != 0 {
			t.Errorf("%s: real figures %d requests, %v server-h; want none", r.Policy, r.Requests, r.ServerHours)
		}
	}
	st := rows[1].Sim
	// Whole servers for exactly 2 h: an even number of server-hours.
	if st.Actions != 0 || !(st.ServerHours >= 2) || st.ServerHours != 2*float64(int(st.ServerHours/2)) {
		t.Errorf("static in the simulator: %d actions, %v server-h; want 0 and 2 h x its starting servers", st.Actions, st.ServerHours)
	}
}

// procsOf counts running processes whose executable is bin.
func procsOf(bin string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), bin+"\x00") {
			n++
		}
	}
	return n
}
