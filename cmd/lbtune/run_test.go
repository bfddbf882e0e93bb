package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner"
	"github.com/lbtune/lbtune/tuner/config"
)

// runFreeAddr returns a free 127.0.0.1 port.
func runFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runDaemonProc is one `lbtune run` process under test.
type runDaemonProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
	done   chan error
}

// runStart starts `lbtune run` with cfg in dir and waits for /healthz.
func runStart(t *testing.T, bin, dir, addr string) *runDaemonProc {
	t.Helper()
	p := &runDaemonProc{addr: addr, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "run", "--config", filepath.Join(dir, "lbtune.yaml"), "--log-format", "json")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("lbtune run exited early: %v\n%s", err, p.stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("lbtune run did not answer /healthz within 20 s\n%s", p.stderr)
	return nil
}

// call sends a request to the daemon and decodes the JSON answer into out.
func (p *runDaemonProc) call(t *testing.T, method, path, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// runWriteConfig writes the --sim example, sped up, into dir with a token.
func runWriteConfig(t *testing.T, dir, addr string, speedup int) string {
	t.Helper()
	cfg := config.Example(true)
	cfg = strings.Replace(cfg, "listen: 127.0.0.1:9464", "listen: "+addr, 1)
	cfg = strings.Replace(cfg, "speedup: 10 ", fmt.Sprintf("speedup: %d ", speedup), 1)
	cfg = strings.Replace(cfg, "decide: 5s", "decide: 2s", 1)
	if err := os.WriteFile(filepath.Join(dir, "lbtune.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	token := "test-token-0123456789abcdef"
	if err := os.WriteFile(filepath.Join(dir, "lbtune.token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return token
}

// runDecisions reads every decision record of the store at path.
func runDecisions(t *testing.T, path string) []tuner.Record {
	t.Helper()
	st, err := datasets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatalf("store check: %v", err)
	}
	recs, err := tuner.ReadDecisions(st, "", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestRunKillRestart runs the daemon on a simulated pool, switches it to
// manual mode and scales it by +1 through the API, kills it with SIGKILL,
// restarts it and checks it resumed: same mode and policy, the same
// servers, the decision ids continuing without a duplicate, the operator's
// action applied exactly once, then a SIGTERM stops it cleanly with the
// store intact.
func TestRunKillRestart(t *testing.T) {
	bin := lbtuneBinary(t)
	dir := t.TempDir()
	addr := runFreeAddr(t)
	token := runWriteConfig(t, dir, addr, 30)

	// First life: run, go manual, +1, let a few decisions happen, kill -9.
	p := runStart(t, bin, dir, addr)
	if code := p.call(t, "POST", "/v1/mode", "", `{"mode":"manual"}`, nil); code != 401 {
		t.Fatalf("POST /v1/mode without token: %d, want 401", code)
	}
	if code := p.call(t, "POST", "/v1/mode", token, `{"mode":"manual"}`, nil); code != 200 {
		t.Fatalf("POST /v1/mode: %d", code)
	}
	var policyBefore json.RawMessage
	p.call(t, "GET", "/v1/policy", "", "", &policyBefore)
	// Wait for data so the controller can decide.
	runWaitFor(t, func() bool {
		var st struct {
			Pools []struct{ Latest *struct{ Servers int } }
		}
		p.call(t, "GET", "/v1/state", "", "", &st)
		return len(st.Pools) == 1 && st.Pools[0].Latest != nil
	})
	var dec struct {
		Servers int
		Outcome string
		Reason  string
	}
	if code := p.call(t, "POST", "/v1/scale", token, `{"pool":"web","delta":1}`, &dec); code != 200 {
		t.Fatalf("POST /v1/scale: %d", code)
	}
	if dec.Outcome != "applied" || dec.Servers != 3 {
		t.Fatalf("scale +1 from the example's 2 servers: %+v, want applied 3", dec)
	}
	// The third server boots for 60 simulated seconds (2 s here).
	var servers int
	runWaitFor(t, func() bool {
		var st struct {
			Pools []struct{ Latest *struct{ Servers int } }
		}
		p.call(t, "GET", "/v1/state", "", "", &st)
		servers = st.Pools[0].Latest.Servers
		return servers == 3
	})
	time.Sleep(time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	before := runDecisions(t, filepath.Join(dir, "lbtune.db"))
	if len(before) < 3 {
		t.Fatalf("%d decisions before the kill, want several", len(before))
	}

	// Second life: resumes.
	p = runStart(t, bin, dir, addr)
	var st struct {
		Pools []struct {
			Mode   string
			Latest *struct{ Servers int }
		}
	}
	p.call(t, "GET", "/v1/state", "", "", &st)
	if st.Pools[0].Mode != "manual" {
		t.Errorf("mode after restart %q, want manual (persisted)", st.Pools[0].Mode)
	}
	var policyAfter json.RawMessage
	p.call(t, "GET", "/v1/policy", "", "", &policyAfter)
	if !bytes.Equal(policyBefore, policyAfter) {
		t.Errorf("policy changed across the restart:\n%s\n%s", policyBefore, policyAfter)
	}
	runWaitFor(t, func() bool {
		p.call(t, "GET", "/v1/state", "", "", &st)
		return st.Pools[0].Latest != nil
	})
	if got := st.Pools[0].Latest.Servers; got != 3 {
		t.Errorf("servers after restart %d, want 3 (the state before the kill)", got)
	}
	time.Sleep(2 * time.Second) // a few more decisions
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("SIGTERM: exit %v, want 0\n%s", err, p.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15 s after SIGTERM\n%s", p.stderr)
	}
	if !strings.Contains(p.stderr.String(), `"msg":"lbtune stopped"`) || !strings.Contains(p.stderr.String(), `"msg":"resumed pool"`) {
		t.Errorf("log lacks the resume and clean stop lines:\n%s", p.stderr)
	}

	after := runDecisions(t, filepath.Join(dir, "lbtune.db"))
	if len(after) <= len(before) {
		t.Fatalf("%d decisions after the restart, want more than %d", len(after), len(before))
	}
	applied := 0
	for i, r := range after {
		if i > 0 && r.Seq <= after[i-1].Seq {
			t.Errorf("decision %d has id %d after id %d: ids must increase (no duplicates)", i, r.Seq, after[i-1].Seq)
		}
		if r.Outcome == "applied" {
			applied++
		}
		if i < len(before) && (r.Seq != before[i].Seq || !r.Time.Equal(before[i].Time)) {
			t.Errorf("decision %d changed across the restart: %+v -> %+v", i, before[i], r)
		}
	}
	if applied != 1 {
		t.Errorf("%d applied decisions, want exactly 1 (the operator's +1, not repeated after the restart)", applied)
	}
}

// runWaitFor polls cond for up to 20 s.
func runWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("condition not met within 20 s")
}

// TestRunCommands drives a running daemon with the operator commands (each
// exec'd as `lbtune CMD`), then stops it and plots its store.
func TestRunCommands(t *testing.T) {
	bin := lbtuneBinary(t)
	dir := t.TempDir()
	addr := runFreeAddr(t)
	runWriteConfig(t, dir, addr, 30)
	p := runStart(t, bin, dir, addr)
	runWaitFor(t, func() bool {
		var st struct {
			Pools []struct{ Latest *struct{ Servers int } }
		}
		p.call(t, "GET", "/v1/state", "", "", &st)
		return st.Pools[0].Latest != nil
	})
	batch := filepath.Join(dir, "batch.yaml")
	spec := "name: batch\nsim:\n  phases: [{duration: 5m, rps: 5}]\n  speedup: 30\ntemplate: {min: 1, max: 3, target_seconds: 1}\n"
	if err := os.WriteFile(batch, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\ntemplate: {min: 3, max: 1, target_seconds: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongTok := filepath.Join(dir, "wrong.token")
	if err := os.WriteFile(wrongTok, []byte("not-the-token-at-all"), 0o600); err != nil {
		t.Fatal(err)
	}
	client := []string{"--addr", addr, "--token-file", filepath.Join(dir, "lbtune.token")}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout (code 0) or stderr
	}{
		{"scale refused in auto", append(append([]string{"scale"}, client...), "web", "+1"), 1, "switch it to manual first"},
		{"wrong token", []string{"mode", "--addr", addr, "--token-file", wrongTok, "manual"}, 1, "401"},
		{"manual", append(append([]string{"mode"}, client...), "manual"), 0, "every pool: mode manual"},
		{"scale up", append(append([]string{"scale"}, client...), "web", "+1"), 0, "pool web: applied (operator asked +1: 2 -> 3 servers)"},
		{"scale by 2", append(append([]string{"scale"}, client...), "web", "+2"), 2, "want +1 or -1"},
		{"pause", append(append([]string{"pool"}, client...), "pause", "web"), 0, "pool web: paused"},
		{"scale paused", append(append([]string{"scale"}, client...), "web", "-1"), 1, "pool web is paused"},
		{"resume", append(append([]string{"pool"}, client...), "resume", "web"), 0, "pool web: resumed"},
		{"unknown pool", append(append([]string{"pool"}, client...), "pause", "nope"), 1, "unknown pool"},
		{"launch", append(append([]string{"node"}, client...), "launch", "web"), 0, "pool web: ordered"},
		{"add to sim", append(append([]string{"node"}, client...), "add", "web", "127.0.0.1:9"), 1, "cannot register servers"},
		{"template up", append(append([]string{"template"}, client...), "up", batch), 0, "pool batch up with 1 servers"},
		{"template up twice", append(append([]string{"template"}, client...), "up", batch), 1, "already runs"},
		{"template bad", append(append([]string{"template"}, client...), "up", bad), 1, "min 3 exceeds max 1"},
		{"template down", append(append([]string{"template"}, client...), "down", batch), 0, "pool batch drained and stopped"},
		{"auto", append(append([]string{"mode"}, client...), "--pool", "web", "auto"), 0, "pool web: mode auto"},
		{"bad mode", append(append([]string{"mode"}, client...), "turbo"), 2, "want one of"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if code != 0 {
				got = errb.String()
			}
			if code != tc.wantCode || !strings.Contains(got, tc.wantOut) {
				t.Errorf("lbtune %s: exit %d, output %q; want exit %d containing %q", strings.Join(tc.args, " "), code, got, tc.wantCode, tc.wantOut)
			}
		})
	}
	var st struct{ Pools []struct{ Name, Mode string } }
	p.call(t, "GET", "/v1/state", "", "", &st)
	if len(st.Pools) != 1 || st.Pools[0].Mode != "auto" {
		t.Errorf("state after the commands: %+v, want web alone in auto mode", st.Pools)
	}
	var metrics string
	resp, err := http.Get("http://" + addr + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
	}
	for _, want := range []string{`lbtune_decisions_total{outcome="applied",policy="manual",pool="web"} 1`, "lbtune_reward{pool=\"web\"}", "lbtune_actuation_latency_seconds", "lbtune_fallback_active{pool=\"web\"}"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.stderr)
	}

	// lbtune plot on the daemon's store.
	out, err := exec.Command(bin, "plot", "--db", filepath.Join(dir, "lbtune.db"), "--out", filepath.Join(dir, "plots"), "--pool", "web").CombinedOutput()
	if err != nil {
		t.Fatalf("lbtune plot: %v\n%s", err, out)
	}
	for _, f := range []string{"web-load.png", "web-latency.png", "web-servers.png", "web-decision-metric.png"} {
		if fi, err := os.Stat(filepath.Join(dir, "plots", f)); err != nil || fi.Size() < 5000 {
			t.Errorf("plot %s: %v (want a PNG of some size)", f, err)
		}
	}
}

// TestRunUsage checks the exit codes and one-line errors of run and
// config for bad invocations, and that config example output passes
// config check.
func TestRunUsage(t *testing.T) {
	bin := lbtuneBinary(t)
	dir := t.TempDir()
	example := filepath.Join(dir, "example.yaml")
	out, err := exec.Command(bin, "config", "example").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(example, out, 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	simCfg := filepath.Join(dir, "sim.yaml")
	runWriteConfig(t, dir, runFreeAddr(t), 10)
	if err := os.Rename(filepath.Join(dir, "lbtune.yaml"), simCfg); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // substring of stdout+stderr
	}{
		{"example passes check", []string{"config", "check", example}, 0, "ok (2 pools, 1 sources, 2 actuators)"},
		{"check bad file", []string{"config", "check", "../../tuner/config/testdata/min-over-max.bad.yaml"}, 1, "min-over-max.bad.yaml:24: pools[0].template.min: min 5 exceeds max 4"},
		{"check missing file", []string{"config", "check", filepath.Join(dir, "nope.yaml")}, 1, "no such file"},
		{"config without subcommand", []string{"config"}, 2, "usage error"},
		{"bad log format", []string{"run", "--config", simCfg, "--log-format", "xml"}, 2, "--log-format \"xml\": want text or json"},
		{"bad log level", []string{"run", "--config", simCfg, "--log-level", "loud"}, 2, "--log-level"},
		{"missing config", []string{"run", "--config", filepath.Join(dir, "nope.yaml")}, 1, "lbtune run: read config"},
		{"listen taken", []string{"run", "--config", simCfg, "--listen", busy.Addr().String()}, 1, "address already in use"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(string(out), tc.want) {
				t.Errorf("lbtune %s: exit %d, output %q; want exit %d containing %q", strings.Join(tc.args, " "), code, out, tc.wantCode, tc.want)
			}
		})
	}
}
