package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbtune/lbtune/agent/eval"
)

// policyExec runs lbtune in-process and returns stdout, stderr and the exit code.
func policyExec(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestPolicyTrainShowEval trains the agent on a small trace, explains it
// and scores it with eval --policies agent --model.
func TestPolicyTrainShowEval(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.csv")
	var b strings.Builder
	b.WriteString("t,rps\n")
	for i := range 180 { // 3 h per minute: a morning ramp, a spike, an evening fall
		r := 4.0 + float64(i)/10
		if i > 120 {
			r = 22 - float64(i-120)/4
		}
		if i >= 90 && i < 93 {
			r *= 3
		}
		fmt.Fprintf(&b, "%d,%.4f\n", 60*i, r)
	}
	if err := os.WriteFile(trace, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "m.db")
	out, errs, code := policyExec(t, "policy", "train", "--traces", trace, "--out", store, "--episodes", "4",
		"--explore-episodes", "2", "--episode-length", "1h", "--rate-min", "2", "--rate-max", "20", "--quiet", "--json")
	if code != 0 {
		t.Fatalf("policy train: exit %d: %s", code, errs)
	}
	var rep eval.TrainReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.K < 1 || rep.Episodes != 4 || rep.PolicyKey != "agent/v000001" {
		t.Fatalf("policy train report %+v (%v): %s", rep, err, out)
	}

	out, errs, code = policyExec(t, "policy", "show", "--model", store)
	if code != 0 {
		t.Fatalf("policy show: exit %d: %s", code, errs)
	}
	// Trained in pool units (the default): load in servers, p95 against the target.
	// The explanation: rules per move, the agreement per move, the agent's rules.
	for _, want := range []string{"Load states", "preferred", "Fallback (threshold policy)", "Guard:", "pool units", "load srv", "p95/target",
		"scale-out when plan_gap >= 0.50", "Agreement per move", "scale-in ", "weights ", "The agent's rules", "out-forecast "} {
		if !strings.Contains(out, want) {
			t.Errorf("policy show lacks %q:\n%s", want, out)
		}
	}
	out, errs, code = policyExec(t, "policy", "show", "--model", store, "--json")
	var show eval.ShowReport
	if code != 0 || json.Unmarshal([]byte(out), &show) != nil || len(show.States) != rep.K {
		t.Fatalf("policy show --json: exit %d, %d states for k=%d: %s%s", code, len(show.States), rep.K, errs, out)
	}
	if _, ok := show.States[0].Centroid["load_servers"]; !show.PoolUnits || !ok {
		t.Errorf("policy show --json: pool_units %v, centroid %v: want pool units with load_servers", show.PoolUnits, show.States[0].Centroid)
	}
	if tr := show.Tree; tr == nil || len(tr.Classes) != 4 || tr.Classes[1].Class != "scale-out" || tr.Classes[1].Decisions == 0 || len(show.AgentRules) == 0 {
		t.Errorf("policy show --json: tree %+v, %d agent rules: want the agreement of 4 moves, scale-outs held out, and the rules", tr, len(show.AgentRules))
	}

	out, errs, code = policyExec(t, "eval", "--trace", trace, "--policies", "threshold,agent", "--model", store, "--json", "--progress=false")
	if code != 0 {
		t.Fatalf("eval agent: exit %d: %s", code, errs)
	}
	var rows []struct {
		Policy      string  `json:"policy"`
		ServerHours float64 `json:"server_hours"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 || rows[1].Policy != "agent" || rows[1].ServerHours <= 0 {
		t.Fatalf("eval rows %+v (%v)", rows, err)
	}

	// Errors: a missing store, an unknown subcommand.
	if _, errs, code := policyExec(t, "policy", "show", "--model", filepath.Join(dir, "none.db")); code != 1 || !strings.Contains(errs, "lbtune policy:") {
		t.Errorf("show of a missing store: exit %d, %q", code, errs)
	}
	if _, _, code := policyExec(t, "policy", "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
}

// TestPolicyTrainRecordings fits the weight values on a shipped recording
// of the real HAProxy testbed before the simulator episodes, and refuses
// malformed targets.
func TestPolicyTrainRecordings(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.csv")
	var b strings.Builder
	b.WriteString("t,rps\n")
	for i := range 120 {
		fmt.Fprintf(&b, "%d,%.4f\n", 60*i, 5+float64(i%40)/4)
	}
	if err := os.WriteFile(trace, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := "../../datasets/haproxy-phases.jsonl.gz"
	args := []string{"policy", "train", "--traces", trace, "--episodes", "2", "--explore-episodes", "2",
		"--episode-length", "1h", "--rate-min", "2", "--rate-max", "20", "--quiet", "--json", "--data", rec}
	out, errs, code := policyExec(t, append(args, "--out", filepath.Join(dir, "m.db"), "--data-target", "medium=80ms,heavy=320ms")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep eval.TrainReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Offline < 1000 {
		t.Fatalf("report %+v (%v): want >= 1000 offline transitions from two pools of a 1244-snapshot recording", rep, err)
	}
	// The trained policy is also replayed on the recording, for the
	// explanation of its weight moves.
	out, errs, code = policyExec(t, "policy", "show", "--model", filepath.Join(dir, "m.db"), "--json")
	var show eval.ShowReport
	if code != 0 || json.Unmarshal([]byte(out), &show) != nil || show.Tree == nil || show.Tree.Replayed < 2000 {
		t.Errorf("policy show --json: exit %d, tree %+v: want >= 2000 decisions replayed on two pools of the recording (%s)", code, show.Tree, errs)
	}
	for _, tc := range []struct{ flag, want string }{
		{"medium", "want POOL=DURATION"},
		{"medium=fast", "positive duration"},
		{"medium=-1s", "positive duration"},
	} {
		_, errs, code := policyExec(t, append(args, "--out", filepath.Join(dir, "bad.db"), "--data-target", tc.flag)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("--data-target %s: exit %d, %q; want 2 and %q", tc.flag, code, errs, tc.want)
		}
	}
}
