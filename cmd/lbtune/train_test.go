package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/model"
)

// trainRunMain runs lbtune in-process and returns exit code, stdout, stderr.
func trainRunMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return trainRunMainFor(t, time.Minute, args...)
}

// trainRunMainFor is trainRunMain with a time limit.
func trainRunMainFor(t *testing.T, limit time.Duration, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	code := runMain(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// trainWriteDataset replays the vts captures (../shared/captures/vts) into a
// gzip dataset file and returns its path.
func trainWriteDataset(t *testing.T, dir string) string {
	t.Helper()
	src, err := collector.Open("vts+file:../../../shared/captures/vts")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vts.jsonl.gz")
	w, err := datasets.CreateFile(path, datasets.Header{Source: src.String(), Description: "train test"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		sn, err := src.Scrape(context.Background())
		if errors.Is(err, collector.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteSnapshot(sn); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTrainCommand(t *testing.T) {
	dir := t.TempDir()
	data := trainWriteDataset(t, dir)
	out := filepath.Join(dir, "m.db")

	// --data followed by two files, as a shell glob gives them (the same
	// file twice: each file's intervals are taken on their own).
	code, stdout, stderr := trainRunMain(t, "train", "--data", data, data, "--out", out, "--kmax", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "fitting k=1..4") {
		t.Errorf("no progress bar on stderr: %q", stderr)
	}
	var rep struct {
		K             int                `json:"k"`
		BIC           map[string]float64 `json:"bic"`
		LogLikelihood *float64           `json:"log_likelihood"`
		Clusters      []struct {
			Share    float64            `json:"share"`
			Centroid map[string]float64 `json:"centroid"`
		} `json:"clusters"`
		Samples int    `json:"samples"`
		Key     string `json:"key"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	if rep.K < 1 || rep.K > 4 || len(rep.BIC) != 4 || rep.LogLikelihood == nil || len(rep.Clusters) != rep.K {
		t.Fatalf("report %+v", rep)
	}
	var share float64
	for _, c := range rep.Clusters {
		share += c.Share
		if len(c.Centroid) != model.NumFeatures || c.Centroid["rate_rps"] < 0 {
			t.Errorf("centroid %v", c.Centroid)
		}
	}
	if math.Abs(share-1) > 1e-9 {
		t.Errorf("cluster shares sum to %v", share)
	}

	// The model is in the store, under its key and as latest.
	st, err := datasets.OpenReadOnly(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{rep.Key, model.StoreKeyLatest} {
		m, err := model.Load(st, key)
		if err != nil {
			t.Fatalf("load %s: %v", key, err)
		}
		if m.Meta.K != rep.K || m.Meta.Samples != rep.Samples || len(m.Meta.Data) != 2 {
			t.Errorf("stored model meta %+v", m.Meta)
		}
	}
	st.Close()

	// Text output: the BIC curve and the clusters in real units.
	code, stdout, stderr = trainRunMain(t, "train", "--data", data, "--out", out, "--kmax", "3", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"BIC by number of clusters", "k=3", "<- chosen", "rate/s", "mean ms", "model saved in"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, stdout)
		}
	}
	if stderr != "" {
		t.Errorf("--quiet wrote to stderr: %q", stderr)
	}

	// A per-pool model goes under its own keys and keeps gmm/latest.
	code, stdout, stderr = trainRunMain(t, "train", "--data", data, "--out", out, "--kmax", "2", "--quiet", "--json", "--pool", "app")
	if code != 0 {
		t.Fatalf("--pool app: exit %d: %s", code, stderr)
	}
	var pr struct {
		Key       string   `json:"key"`
		LatestKey string   `json:"latest_key"`
		Pools     []string `json:"pools"`
	}
	if err := json.Unmarshal([]byte(stdout), &pr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pr.Key, "gmm/app/") || pr.LatestKey != "gmm/app/latest" || len(pr.Pools) != 1 || pr.Pools[0] != "app" {
		t.Errorf("--pool app report: %+v", pr)
	}
	code, _, stderr = trainRunMain(t, "train", "--data", data, "--out", out, "--quiet", "--pool", "nosuch")
	if code != 1 || !strings.Contains(stderr, `pool "nosuch": no training samples`) {
		t.Errorf("--pool nosuch: exit %d, %q", code, stderr)
	}
	st, err = datasets.OpenReadOnly(out)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for key, wantPool := range map[string]string{"gmm/app/latest": "app", model.StoreKeyLatest: ""} {
		m, err := model.Load(st, key)
		if err != nil {
			t.Fatalf("load %s: %v", key, err)
		}
		if m.Meta.Pool != wantPool {
			t.Errorf("%s: pool %q, want %q", key, m.Meta.Pool, wantPool)
		}
	}
}

func TestTrainCommandErrors(t *testing.T) {
	dir := t.TempDir()
	notData := filepath.Join(dir, "x.jsonl")
	if err := os.WriteFile(notData, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "no data", args: []string{"train", "--out", "m.db"}, wantCode: 2, wantErr: "--data and --out are required"},
		{name: "bad k range", args: []string{"train", "--data", notData, "--out", "m.db", "--kmin", "5", "--kmax", "2"}, wantCode: 2, wantErr: "kmin"},
		{name: "bad covariance", args: []string{"train", "--data", notData, "--out", "m.db", "--cov", "tied"}, wantCode: 2, wantErr: "tied"},
		{name: "not a dataset", args: []string{"train", "--data", notData, "--out", filepath.Join(dir, "m.db")}, wantCode: 1, wantErr: "x.jsonl"},
		{name: "missing file", args: []string{"train", "--data", filepath.Join(dir, "nope.jsonl.gz"), "--out", filepath.Join(dir, "m.db")}, wantCode: 1, wantErr: "nope.jsonl.gz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := trainRunMain(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("exit %d stderr %q, want %d mentioning %q", code, stderr, tc.wantCode, tc.wantErr)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("error is not one line: %q", stderr)
			}
		})
	}
}

func TestTrainExpandData(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "glob", in: "--data a b c --out m", want: "--data a --data b --data c --out m"},
		{name: "single", in: "--out m --data a", want: "--out m --data a"},
		{name: "equals form untouched", in: "--data=a b", want: "--data=a b"},
		{name: "repeated", in: "--data a --data b --json", want: "--data a --data b --json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(trainExpandData(strings.Fields(tc.in)), " ")
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGMMFitCommand(t *testing.T) {
	dir := t.TempDir()
	// Two well-separated 2-d Gaussian blobs: BIC must pick k=2.
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("x,y\n")
	for i := 0; i < 400; i++ {
		cx, cy := 0.0, 0.0
		if i%2 == 1 {
			cx, cy = 10, -5
		}
		fmt.Fprintf(&b, "%g,%g\n", cx+rng.NormFloat64(), cy+rng.NormFloat64())
	}
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(good, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("x,y\n1,2\n3,oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tiny := filepath.Join(dir, "tiny.csv")
	if err := os.WriteFile(tiny, []byte("x,y\n1,2\n3,4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := trainRunMain(t, "gmm", "fit", "--csv", good, "--kmin", "1", "--kmax", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"k", "log_likelihood", "bic", "iterations", "seconds"} {
		if _, ok := res[key]; !ok {
			t.Errorf("--json lacks %q: %s", key, stdout)
		}
	}
	if res["k"] != 2.0 {
		t.Errorf("k = %v, want 2", res["k"])
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "text", args: []string{"gmm", "fit", "--csv", good, "--k", "2", "--cov", "diag"}, wantCode: 0},
		{name: "bad csv names the line", args: []string{"gmm", "fit", "--csv", bad, "--k", "1"}, wantCode: 1, wantErr: "line 3 column 2 (y)"},
		{name: "missing csv flag", args: []string{"gmm", "fit"}, wantCode: 2, wantErr: "--csv is required"},
		{name: "no subcommand", args: []string{"gmm"}, wantCode: 2, wantErr: "gmm fit"},
		{name: "more clusters than rows", args: []string{"gmm", "fit", "--csv", tiny, "--k", "5"}, wantCode: 1, wantErr: "fewer samples than components"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := trainRunMain(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("exit %d stderr %q, want %d mentioning %q", code, stderr, tc.wantCode, tc.wantErr)
			}
			if code == 0 && !strings.Contains(stdout, "chosen k 2") {
				t.Errorf("text output: %s", stdout)
			}
		})
	}
}

// trainShipped trains on the shipped recording nginx-phases (3 pools, 21
// minutes; one file keeps the test short under -race) with a small budget
// and returns the model store's path and the output (--json when asJSON).
func trainShipped(t *testing.T, dir string, asJSON bool) (string, string) {
	t.Helper()
	out := filepath.Join(dir, "m.db")
	args := []string{"train", "--data", "../../datasets/nginx-phases.jsonl.gz", "--out", out,
		"--kmax", "3", "--episodes", "8", "--explore-episodes", "3", "--quiet"}
	if asJSON {
		args = append(args, "--json")
	}
	start := time.Now()
	code, stdout, stderr := trainRunMainFor(t, 5*time.Minute, args...)
	t.Logf("train: %v", time.Since(start).Round(time.Second))
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	return out, stdout
}

// TestTrainRecordedPolicy trains on a shipped recording: every pool is
// calibrated and reproduced, and the store holds a policy that policy
// show and eval accept.
func TestTrainRecordedPolicy(t *testing.T) {
	dir := t.TempDir()
	out, js := trainShipped(t, dir, true)
	var rep struct {
		Steps struct {
			Policy struct {
				Stored       bool `json:"stored"`
				Calibrations []struct {
					Pool        string  `json:"pool"`
					Servers     int     `json:"servers"`
					ServiceRate float64 `json:"service_rate_rps"`
					Balancer    string  `json:"balancer"`
					Recorded    struct {
						Rate float64 `json:"rate_rps"`
					} `json:"recorded"`
					Simulated *struct {
						Rate float64 `json:"rate_rps"`
					} `json:"simulated"`
				} `json:"calibrations"`
			} `json:"policy"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, js)
	}
	if p := rep.Steps.Policy; !p.Stored || len(p.Calibrations) != 3 {
		t.Fatalf("policy step %+v", p)
	}
	// Each pool reproduced within 10% of its recorded rate (the simulator
	// replays the recorded arrivals), behind NGINX's balancer.
	for _, c := range rep.Steps.Policy.Calibrations {
		if c.Servers < 2 || !(c.ServiceRate > 0) || c.Balancer != "swrr" || c.Simulated == nil || math.Abs(c.Simulated.Rate/c.Recorded.Rate-1) > 0.1 {
			t.Errorf("calibration of %s: %+v (simulated %+v)", c.Pool, c, c.Simulated)
		}
	}

	code, stdout, stderr := trainRunMain(t, "policy", "show", "--model", out)
	if code != 0 || !strings.Contains(stdout, "policy agent:") || !strings.Contains(stdout, "nginx-phases.jsonl.gz:light") {
		t.Fatalf("policy show: exit %d: %s\n%s", code, stderr, stdout)
	}
	trace := filepath.Join(dir, "t.csv")
	var b strings.Builder
	b.WriteString("t,rps\n")
	for i := range 40 {
		fmt.Fprintf(&b, "%d,%d\n", 60*i, 20+10*(i%8))
	}
	if err := os.WriteFile(trace, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = trainRunMain(t, "eval", "--model", out, "--trace", trace, "--policies", "threshold,agent", "--peak-servers", "5", "--json")
	if code != 0 || !strings.Contains(stdout, `"agent"`) {
		t.Fatalf("eval --model: exit %d: %s\n%s", code, stderr, stdout)
	}
}

// TestTrainTooLittleData: a recording too short to calibrate stores the
// GMM but no policy, says so and exits 0.
func TestTrainTooLittleData(t *testing.T) {
	dir := t.TempDir()
	data := trainWriteDataset(t, dir)
	out := filepath.Join(dir, "m.db")
	code, stdout, stderr := trainRunMain(t, "train", "--data", data, "--out", out, "--kmax", "2", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "no policy stored: too little data") || !strings.Contains(stdout, "skipped:") {
		t.Errorf("output:\n%s", stdout)
	}
	st, err := datasets.OpenReadOnly(out)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.LatestPolicy("agent"); !errors.Is(err, datasets.ErrNotFound) {
		t.Errorf("a policy was stored: %v", err)
	}
	st.Close()

	// The daemon with that model runs the fallback and says so, once per
	// pool, instead of failing with "key not found".
	bin := lbtuneBinary(t)
	addr := runFreeAddr(t)
	runWriteConfig(t, dir, addr, 30)
	cfgPath := filepath.Join(dir, "lbtune.yaml")
	y, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), `path: ""`) {
		t.Fatalf("example lacks the empty model path:\n%s", y)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(y), `path: ""`, "path: "+out, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := runStart(t, bin, dir, addr)
	time.Sleep(5 * time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-p.done; err != nil {
		t.Fatalf("lbtune run: %v\n%s", err, p.stderr)
	}
	log := p.stderr.String()
	if strings.Contains(log, "key not found") || strings.Count(log, "no trained policy for this pool") != 1 {
		t.Errorf("daemon log:\n%s", log)
	}
	recs := runDecisions(t, filepath.Join(dir, "lbtune.db"))
	if len(recs) == 0 {
		t.Fatal("no decisions")
	}
	for _, r := range recs {
		if r.Policy != "threshold" {
			t.Errorf("decision %d by %q, want threshold: %s %s %s", r.Seq, r.Policy, r.Outcome, r.Reason, r.Error)
		}
	}
}

// TestTrainThenRun is issue 16's done-when: train on the shipped
// recordings, then `lbtune run` with model.path set to the result against
// a real HAProxy testbed under load. The pool left on the global policy
// runs the agent; the others run the baselines their policy setting names.
func TestTrainThenRun(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatalf("haproxy not installed: %v", err)
	}
	bin := lbtuneBinary(t)
	dir := t.TempDir()
	m, stdout := trainShipped(t, dir, false)
	for _, want := range []string{"Simulator calibrated from the recordings", "service req/s/server", "swrr",
		"Recording vs calibrated simulator", "rate req/s rec / sim", "p95 ms rec / sim", "policy agent/v000001"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("train output lacks %q:\n%s", want, stdout)
		}
	}

	tbCfg := filepath.Join(dir, "testbed.yaml")
	tbYAML := "state_dir: " + filepath.Join(dir, "tb") + `
pools:
  - {name: light,  min: 1, max: 5, servers: 3, concurrency: 8, speeds: [2, 1, 1], weight: 10}
  - {name: medium, min: 1, max: 5, servers: 3, concurrency: 4, speeds: [2, 1, 0.5], weight: 10}
  - {name: heavy,  min: 1, max: 5, servers: 2, concurrency: 2, speeds: [1, 0.5], weight: 10}
  - {name: spare,  min: 1, max: 5, servers: 2, concurrency: 2, speeds: [1, 1], weight: 10}
`
	if err := os.WriteFile(tbCfg, []byte(tbYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := recordExec(t, bin, "testbed", "up", "--config", tbCfg); code != 0 {
		t.Fatalf("testbed up: exit %d: %s", code, stderr)
	}
	t.Cleanup(func() { recordExec(t, bin, "testbed", "down", "--config", tbCfg) })
	get := func(name string) string {
		code, out, stderr := recordExec(t, bin, "testbed", "status", "--config", tbCfg, "--get", name)
		if code != 0 {
			t.Fatalf("testbed status --get %s: exit %d: %s", name, code, stderr)
		}
		return strings.TrimSpace(out)
	}
	sock, haddr := get("haproxy.socket"), get("haproxy.addr")

	// Shadow mode: every pool decides and explains, nothing is changed.
	addr := runFreeAddr(t)
	// Each pool's target is the one train calibrated for it (4 x its mean
	// service time, printed as "p95 target ms"): the agent's load states
	// are in pool units (latency / target), so a target far from the
	// training one puts every state out of distribution and hands the
	// pool to the fallback, by design.
	targets := map[string]string{"light": "0.025", "medium": "0.09", "heavy": "0.33", "spare": "0.5"}
	pool := func(name, policy string) string {
		s := "  - name: " + name + "\n    source: haproxy\n    actuator: haproxy\n"
		if policy != "" {
			s += "    policy: " + policy + "\n"
		}
		return s + "    template: {min: 1, max: 5, target_seconds: " + targets[name] + "}\n"
	}
	cfg := "api: {listen: " + addr + ", token_file: \"\"}\n" +
		"store: {path: " + filepath.Join(dir, "lbtune.db") + "}\n" +
		"model: {path: " + m + "}\n" +
		"intervals: {scrape: 1s, scrape_timeout: 800ms, decide: 2s}\n" +
		"mode: shadow\n" +
		"sources: [{name: haproxy, uri: \"haproxy+unix://" + sock + "\"}]\n" +
		"actuators: [{name: haproxy, haproxy: {socket: " + sock + "}}]\n" +
		"pools:\n" + pool("light", "") + pool("medium", "hpa@0.5") + pool("heavy", "static") + pool("spare", "threshold")
	if err := os.WriteFile(filepath.Join(dir, "lbtune.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := recordExec(t, bin, "config", "check", filepath.Join(dir, "lbtune.yaml")); code != 0 {
		t.Fatalf("config check: exit %d: %s%s", code, out, stderr)
	}
	p := runStart(t, bin, dir, addr)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		recordExec(t, bin, "load", "--mix", "/light=60,/medium=30,/heavy=10", "--base", "http://"+haddr, "--rate", "60", "--duration", "20s")
	}()
	<-loadDone

	var pol struct {
		Pools []struct {
			Pool    string `json:"pool"`
			Policy  string `json:"policy"`
			Trained bool   `json:"trained"`
		} `json:"pools"`
	}
	if code := p.call(t, "GET", "/v1/policy", "", "", &pol); code != 200 {
		t.Fatalf("/v1/policy: %d", code)
	}
	wantPolicy := map[string]string{"light": "agent", "medium": "hpa@0.5", "heavy": "static", "spare": "threshold"}
	for _, pp := range pol.Pools {
		if pp.Policy != wantPolicy[pp.Pool] || pp.Trained != (pp.Pool == "light") {
			t.Errorf("/v1/policy %s: policy %q trained %v, want %q", pp.Pool, pp.Policy, pp.Trained, wantPolicy[pp.Pool])
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-p.done; err != nil {
		t.Fatalf("lbtune run: %v\n%s", err, p.stderr)
	}
	if strings.Contains(p.stderr.String(), "key not found") {
		t.Errorf("daemon log mentions key not found:\n%s", p.stderr)
	}
	got := map[string]map[string]int{}
	for _, r := range runDecisions(t, filepath.Join(dir, "lbtune.db")) {
		if got[r.Pool] == nil {
			got[r.Pool] = map[string]int{}
		}
		got[r.Pool][r.Policy]++
	}
	for pool, want := range wantPolicy {
		if got[pool][want] == 0 {
			t.Errorf("pool %s: no decision by %s; decisions by policy: %v", pool, want, got[pool])
		}
	}
	t.Logf("decisions by pool and policy: %v", got)
}
