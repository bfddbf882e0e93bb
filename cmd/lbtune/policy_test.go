package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbtune/lbtune/agent/eval"
	"github.com/lbtune/lbtune/tuner/config"
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
	// Trained for servers at 24 an hour (4x the default price).
	out, errs, code := policyExec(t, "policy", "train", "--traces", trace, "--out", store, "--episodes", "4",
		"--explore-episodes", "2", "--episode-length", "1h", "--rate-min", "2", "--rate-max", "20", "--quiet", "--json",
		"--server-hour", "24")
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
		"scale-out when plan_gap >= 0.50", "Agreement per move", "scale-in ", "weights ", "The agent's rules", "out-forecast ",
		"Scale-in: shrink only to the largest plan of the last", "selected by the objective"} {
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
	// The scale-in hysteresis training selected, with every candidate's score.
	if si := show.ScaleIn; !si.Selected || si.Window <= 0 || si.Episodes == 0 || len(si.Candidates) < 2 || !(si.Objective > 0) {
		t.Errorf("policy show --json: scale-in %+v, want a selection with its scores", si)
	}
	// The objective it was trained for: 24 per server-hour is 0.2 per 30 s.
	if o := show.Objective; o.ServerCost != 0.2 || o.ServerHour() != 24 || o.ViolationMinute() != 8 {
		t.Errorf("policy show --json: objective %+v, want 24 per server-hour and the default 8 per violating minute", o)
	}

	// With --config: each pool's own fallback thresholds and objective.
	cfgPath := filepath.Join(dir, "lbtune.yaml")
	y := strings.Replace(config.Example(true), "      max_weight: 256\n",
		"      max_weight: 256\n      fallback: {util_high: 0.9, reserve: 0}\n      objective: {server_hour: 3, violation_minute: 60}\n", 1)
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code = policyExec(t, "policy", "show", "--model", store, "--config", cfgPath)
	for _, want := range []string{"Objective it was trained on: 24 per server-hour + 8 per minute", "Pool web: objective 3 per server-hour + 60 per minute over the p95 target",
		"utilisation > 0.90 grow x2.0", "0 reserve servers"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("policy show --config: exit %d, lacks %q:\n%s%s", code, want, out, errs)
		}
	}
	out, _, code = policyExec(t, "policy", "show", "--model", store, "--config", cfgPath, "--json")
	show = eval.ShowReport{}
	if code != 0 || json.Unmarshal([]byte(out), &show) != nil || len(show.Pools) != 1 {
		t.Fatalf("policy show --config --json: exit %d: %s", code, out)
	}
	if p := show.Pools[0]; p.Pool != "web" || p.Fallback.UtilHigh != 0.9 || p.Fallback.Reserve != 0 || p.Fallback.UtilLow != 0.3 ||
		p.Objective.ServerHour() != 3 || p.Objective.ViolationMinute() != 60 {
		t.Errorf("policy show --config --json: pool %+v", p)
	}

	out, errs, code = policyExec(t, "eval", "--trace", trace, "--policies", "threshold,agent", "--model", store, "--json", "--progress=false")
	if code != 0 {
		t.Fatalf("eval agent: exit %d: %s", code, errs)
	}
	var rows []struct {
		Policy           string  `json:"policy"`
		ServerHours      float64 `json:"server_hours"`
		Objective        float64 `json:"objective"`
		ObjectiveServers float64 `json:"objective_servers"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 || rows[1].Policy != "agent" || rows[1].ServerHours <= 0 {
		t.Fatalf("eval rows %+v (%v)", rows, err)
	}
	// eval prices the objective as told: the servers' part is the price x server-hours.
	out, errs, code = policyExec(t, "eval", "--trace", trace, "--policies", "threshold,agent", "--model", store, "--json", "--progress=false", "--server-hour", "24")
	var priced []struct {
		ServerHours      float64 `json:"server_hours"`
		Objective        float64 `json:"objective"`
		ObjectiveServers float64 `json:"objective_servers"`
	}
	if err := json.Unmarshal([]byte(out), &priced); code != 0 || err != nil || len(priced) != 2 {
		t.Fatalf("eval --server-hour 24: exit %d (%v): %s", code, err, errs)
	}
	for i, r := range priced {
		if r.ServerHours != rows[i].ServerHours || math.Abs(r.ObjectiveServers-24*r.ServerHours) > 0.01 ||
			math.Abs((r.Objective-rows[i].Objective)-18*r.ServerHours) > 0.01 {
			t.Errorf("%s at 24 per server-hour: %+v; at 6: %+v", rows[i].Policy, r, rows[i])
		}
	}
	if _, errs, code := policyExec(t, "eval", "--trace", trace, "--policies", "threshold", "--server-hour", "-1"); code != 2 || !strings.Contains(errs, "--server-hour -1") {
		t.Errorf("eval --server-hour -1: exit %d, %q", code, errs)
	}

	// Errors: a missing store, an unknown subcommand.
	if _, errs, code := policyExec(t, "policy", "show", "--model", filepath.Join(dir, "none.db")); code != 1 || !strings.Contains(errs, "lbtune policy:") {
		t.Errorf("show of a missing store: exit %d, %q", code, errs)
	}
	if _, _, code := policyExec(t, "policy", "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
	// A pool-size range upside down is a usage error, and no store is made.
	bad := filepath.Join(dir, "bad.db")
	if _, errs, code := policyExec(t, "policy", "train", "--traces", trace, "--out", bad, "--min-peak-servers", "30"); code != 2 || !strings.Contains(errs, "want 1 <= min <= peak") {
		t.Errorf("--min-peak-servers 30: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a refused training left %s: %v", bad, err)
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
