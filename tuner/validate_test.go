package tuner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/internal/testkit"
	"github.com/lbtune/lbtune/tuner/config"
)

// simDaemonConfig writes the --sim example into dir (one simulated pool,
// web, at 10x; API on a free port, a token file, no model) and loads it.
func simDaemonConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	cfg, err := config.Load(testkit.ExampleConfig(t, dir, true, map[string]string{"listen: 127.0.0.1:9464": "listen: 127.0.0.1:0"}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// storeStates writes pool states straight into a store, as an older
// version could have; a string value is written as it is (not JSON).
func storeStates(t *testing.T, path string, states map[string]any) {
	t.Helper()
	st, err := datasets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, v := range states {
		b, ok := v.(string)
		if !ok {
			jb, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			b = string(jb)
		}
		if err := st.Put(datasets.BucketMeta, poolStateKey(name), []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
}

// runFor runs d for span and returns what the API's /v1/state said and
// the run's error.
func runFor(t *testing.T, d *Daemon, span time.Duration, during func(base string)) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func(a net.Addr) { addr <- a }) }()
	select {
	case a := <-addr:
		time.Sleep(span)
		if during != nil {
			during("http://" + a.String())
		}
	case err := <-done:
		return fmt.Errorf("run ended before it was ready: %w", err)
	case <-time.After(20 * time.Second):
		t.Fatal("daemon not ready within 20s")
	}
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop within 20s")
	}
	return nil
}

// TestRestoreInvalidStored: stored template specs and pool states that do
// not validate (as an older version could have written: the values of
// issue 15, a spec that no longer parses, corrupt JSON) are each logged
// with the pool's name and the reason and skipped; the daemon starts,
// runs and serves the configured pool, and keeps the skipped states.
func TestRestoreInvalidStored(t *testing.T) {
	const simSpec = "name: %s\nsim:\n  phases: [{duration: 5m, rps: 5}]\n  speedup: %s\n  scale: %s\ntemplate: {min: 1, max: 3, target_seconds: %s}\n"
	spec := func(name, speedup, scale, target string) PoolState {
		return PoolState{Mode: config.ModeAuto, Template: fmt.Sprintf(simSpec, name, speedup, scale, target)}
	}
	tests := []struct {
		pool  string
		state any
		want  string // in the logged reason
	}{
		{"nan-target", spec("nan-target", "30", "1", ".nan"), "template.target_seconds: NaN is not a number"},
		{"huge-speedup", spec("huge-speedup", "1e10", "1", "1"), "sim.speedup: want 0.01..1000, got 1e+10"},
		{"nan-speedup", spec("nan-speedup", ".nan", "1", "1"), "sim.speedup: NaN is not a number"},
		{"huge-scale", spec("huge-scale", "30", "1e300", "1"), "sim.scale: want (0, 100000], got 1e+300"},
		{"tiny-target", spec("tiny-target", "30", "1", "1e-12"), "target_seconds: want 0.001..60, got 1e-12"},
		{"unknown-key", PoolState{Mode: config.ModeAuto, Template: "name: unknown-key\nsim: {phases: [{duration: 5m, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: 1, colour: red}\n"}, "field colour not found"},
		{"other-name", spec("someone-else", "30", "1", "1"), `stored spec names pool "someone-else"`},
		{"corrupt", `{"mode": "auto", "template": `, "decode state of pool corrupt"},
		{"web", PoolState{Mode: "turbo", Servers: -3}, `mode "turbo" is unknown`},
	}
	dir := t.TempDir()
	cfg := simDaemonConfig(t, dir)
	states := map[string]any{}
	for _, tc := range tests {
		states[tc.pool] = tc.state
	}
	storeStates(t, cfg.Store.Path, states)

	logs := &testkit.SyncBuffer{}
	d, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)), time.Now)
	if err != nil {
		t.Fatalf("New: %v (one bad stored pool must not stop the daemon)", err)
	}
	var state string
	err = runFor(t, d, 1500*time.Millisecond, func(base string) {
		resp, err := http.Get(base + "/v1/state")
		if err != nil {
			t.Errorf("GET /v1/state: %v", err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		state = string(b)
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	names := []string{}
	for _, p := range d.poolList() {
		names = append(names, p.name)
	}
	if len(names) != 1 || names[0] != "web" {
		t.Errorf("pools %v, want only the configured web", names)
	}
	if !strings.Contains(state, `"web"`) {
		t.Errorf("/v1/state does not serve pool web: %.300s", state)
	}
	out := logs.String()
	for _, tc := range tests {
		t.Run(tc.pool, func(t *testing.T) {
			found := false
			quoted := strings.Trim(strconv.Quote(tc.want), `"`) // as the text handler writes it
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "level=ERROR") && strings.Contains(line, "pool="+tc.pool+" ") && strings.Contains(line, quoted) {
					found = true
				}
			}
			if !found {
				t.Errorf("no ERROR line with pool=%s and %q in the log:\n%s", tc.pool, tc.want, out)
			}
		})
	}
	// web decided (a fresh state) and the skipped states are still there.
	st, err := datasets.Open(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range tests {
		if _, err := st.Get(datasets.BucketMeta, poolStateKey(tc.pool)); err != nil {
			t.Errorf("state of %s: %v, want it kept", tc.pool, err)
		}
	}
	web, ok, err := loadPoolState(st, "web")
	if err != nil || !ok || web.Mode != config.ModeAuto || web.SimStart.IsZero() {
		t.Errorf("web state %+v (%v, %v): want a fresh auto state of a running simulation", web, ok, err)
	}
}

// badTemplateSpecs are the template values of issue 15: each crashed or
// bloated the daemon, now each is refused.
var badTemplateSpecs = []struct {
	name, spec, want string
}{
	{"speedup 1e10", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}], speedup: 1e10}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n", "sim.speedup"},
	{"speedup NaN", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}], speedup: .nan}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n", "sim.speedup: NaN"},
	{"target NaN", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: .nan}\n", "target_seconds: NaN"},
	{"scale 1e300", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}], scale: 1e300}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n", "sim.scale"},
	{"target 1e-12", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: 1e-12}\n", "target_seconds"},
	{"speedup 1e-9", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}], speedup: 1e-9}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n", "sim.speedup"},
	{"rps NaN", "name: t1\nsim: {phases: [{duration: 5m, rps: .nan}]}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n", "rps: NaN"},
	{"rps over the load cap", "name: t1\nsim: {phases: [{duration: 5m, rps: 5e4}], scale: 3}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n", "sim.scale: peak rps"},
	{"phase of 1ns", "name: t1\nsim: {phases: [{duration: 1ns, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n", "phases[0].duration"},
	{"fallback util_low above util_high", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: 1, fallback: {util_high: 0.5, util_low: 0.6}}\n", "template.fallback: threshold: util_low 0.6 must be below util_high 0.5"},
	{"fallback grow ratio NaN", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: 1, fallback: {grow_ratio: .nan}}\n", "template.fallback.grow_ratio: NaN"},
	{"objective negative price", "name: t1\nsim: {phases: [{duration: 5m, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: 1, objective: {server_hour: -2}}\n", "template.objective.server_hour: want 0..1000000, got -2"},
}

// TestTemplateUpRefusesValues: POST /v1/templates/up with each value of
// issue 15 is refused with 400 naming the setting; nothing is saved to
// the store, so no restart can crash on it.
func TestTemplateUpRefusesValues(t *testing.T) {
	dir := t.TempDir()
	cfg := simDaemonConfig(t, dir)
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	token, err := config.ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		body string
	}
	got := map[string]result{}
	err = runFor(t, d, 200*time.Millisecond, func(base string) {
		for _, tc := range badTemplateSpecs {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/templates/up", strings.NewReader(tc.spec))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[tc.name] = result{resp.StatusCode, string(b)}
		}
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, tc := range badTemplateSpecs {
		t.Run(tc.name, func(t *testing.T) {
			r := got[tc.name]
			if r.code != http.StatusBadRequest || !strings.Contains(r.body, tc.want) {
				t.Errorf("got %d %s, want 400 naming %q", r.code, r.body, tc.want)
			}
		})
	}
	st, err := datasets.Open(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Get(datasets.BucketMeta, poolStateKey("t1")); !errors.Is(err, datasets.ErrNotFound) {
		t.Errorf("refused template t1 is in the store (%v)", err)
	}
}

// templateFuzzDaemon is a daemon (not running) on a temporary store with
// the simulated pool web configured.
func templateFuzzDaemon(f *testing.F) *Daemon {
	dir := f.TempDir()
	y := strings.Replace(config.Example(true), "listen: 127.0.0.1:9464", "listen: 127.0.0.1:0", 1)
	path := filepath.Join(dir, "lbtune.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		f.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		f.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = d.store.Close() })
	return d
}

// checkTemplateUp calls Template up with spec on d and checks: no panic;
// a refused spec leaves no state in the store; an accepted one is stored
// as given, restorable (it validates again, its state checks, it names
// its pool) with a positive decision period, and goes down again.
func checkTemplateUp(t *testing.T, d *Daemon, spec []byte) {
	var head struct {
		Name string `yaml:"name"`
	}
	_ = yaml.Unmarshal(spec, &head)
	_, upErr := d.Template(context.Background(), "up", spec)
	if upErr != nil {
		if head.Name != "" && head.Name != "web" {
			if _, err := d.store.Get(datasets.BucketMeta, poolStateKey(head.Name)); !errors.Is(err, datasets.ErrNotFound) {
				t.Fatalf("refused spec (%v) left a state for %q (%v)", upErr, head.Name, err)
			}
		}
		return
	}
	p, err := d.findPool(head.Name)
	if err != nil {
		t.Fatalf("accepted pool %q not found: %v", head.Name, err)
	}
	if p.period <= 0 || (p.sim != nil && p.period < config.MinSimPeriod) {
		t.Errorf("pool %s: decision period %s", p.name, p.period)
	}
	st, ok, err := loadPoolState(d.store, p.name)
	if err != nil || !ok || st.Template != string(spec) {
		t.Fatalf("stored state %+v, %v, %v: want the spec", st, ok, err)
	}
	pc, err := d.cfg.ParsePool([]byte(st.Template))
	if err != nil || pc.Name != p.name {
		t.Fatalf("stored spec not restorable: %v (name %q)", err, pc.Name)
	}
	if err := st.check(); err != nil {
		t.Fatalf("stored state not restorable: %v", err)
	}
	if _, err := d.Template(context.Background(), "down", spec); err != nil {
		t.Fatalf("template down: %v", err)
	}
}

// FuzzTemplate fuzzes the template endpoint's spec (syntax and values) on
// a daemon with a temporary store (see checkTemplateUp).
func FuzzTemplate(f *testing.F) {
	f.Add([]byte("name: t1\nsim: {phases: [{duration: 5m, rps: 5}], speedup: 30}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n"))
	for _, tc := range badTemplateSpecs {
		f.Add([]byte(tc.spec))
	}
	f.Add([]byte("name: web\nsim: {phases: [{duration: 5m, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n"))
	f.Add([]byte("name: t3\nsim: {phases: [{duration: 5m, rps: 5}]}\ntemplate: {min: 1, max: 3, target_seconds: 1, fallback: {util_low: 0, reserve: 0, window: 30s}, objective: {server_hour: 12}}\n"))
	d := templateFuzzDaemon(f)
	f.Fuzz(func(t *testing.T, spec []byte) { checkTemplateUp(t, d, spec) })
}

// templateFields are the numeric settings of the FuzzTemplateValues spec,
// with valid values.
var templateFields = []string{"5m", "5", "30", "1", "0", "50", "60s", "1", "1", "3", "1", "0", "256", "1", "2", "0.8", "2", "60s", "2", "6", "8"}

const templateValuesSpec = "name: tv\nsim:\n  phases: [{duration: %s, rps: %s}]\n  speedup: %s\n  scale: %s\n  from: %s\n  service_ms: %s\n  boot_delay: %s\n  servers: %s\n" +
	"template: {min: %s, max: %s, target_seconds: %s, service_rate: %s, max_weight: %s, sizes: [{name: s, speed: %s, concurrency: %s}],\n" +
	"  fallback: {util_high: %s, grow_ratio: %s, window: %s, reserve: %s}, objective: {server_hour: %s, violation_minute: %s}}\n"

// FuzzTemplateValues fuzzes values, not syntax: the fuzzer picks one
// numeric setting of a valid template spec and a float64 for it (as a
// duration in seconds for a duration), then checkTemplateUp.
func FuzzTemplateValues(f *testing.F) {
	for _, s := range []struct {
		field uint
		x     float64
	}{{2, 1e10}, {2, math.NaN()}, {10, math.NaN()}, {3, 1e300}, {10, 1e-12}, {2, 1e-9}, {1, math.NaN()}, {0, 1e-9}, {7, 1e9}, {9, 1e9},
		{15, 0.2}, {16, 1}, {16, math.Inf(1)}, {17, 1e7}, {18, 2.5}, {19, -1}, {20, math.NaN()}} {
		f.Add(s.field, s.x)
	}
	d := templateFuzzDaemon(f)
	f.Fuzz(func(t *testing.T, field uint, x float64) {
		vals := make([]any, len(templateFields))
		for i, v := range templateFields {
			vals[i] = v
		}
		i := int(field % uint(len(vals)))
		var s string
		switch {
		case math.IsNaN(x):
			s = ".nan"
		case math.IsInf(x, 0):
			s = map[bool]string{true: ".inf", false: "-.inf"}[x > 0]
		case strings.ContainsAny(templateFields[i], "ms") && math.Abs(x) < 9e9:
			s = time.Duration(x * float64(time.Second)).String()
		default:
			s = strconv.FormatFloat(x, 'g', -1, 64)
		}
		vals[i] = s
		checkTemplateUp(t, d, []byte(fmt.Sprintf(templateValuesSpec, vals...)))
	})
}

// TestNewSimBounds: a trace's rates are known only when the simulator is
// built, so newSim bounds them as Validate bounds phases: at most
// MaxSimRPS simulated and MaxSimWallRPS per wall-clock second; servers
// queue at most simMaxQueue requests (memory stays flat under overload).
func TestNewSimBounds(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "t.csv")
	if err := os.WriteFile(trace, []byte("t,rps\n0,10\n60,500\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		scale, speedup float64
		want           string
	}{
		{"within both caps", 100, 10, ""},
		{"over the simulated cap", 201, 1, "peak rate 100500 req/s (x scale 201): want at most 100000 simulated req/s"},
		{"over the wall-clock cap", 100, 21, "x speedup 21: want at most 1e+06 req/s of wall-clock time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc := config.Pool{Name: "web", Sim: &config.Sim{Trace: trace, Scale: tc.scale, Speedup: tc.speedup, ServiceMs: 50, BootDelay: time.Minute, Seed: 1},
				Template: config.Template{Min: 1, Max: 4, TargetSeconds: 1, MaxWeight: 256}}
			_, err := newSim(pc, PoolState{}, false, 0, time.Now, nil, nil)
			if tc.want == "" && err != nil {
				t.Fatalf("newSim: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("newSim: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Overload: one server of 20 req/s offered the cap; the queue stays
	// bounded, the excess is dropped.
	now := time.Unix(1e9, 0)
	pc := config.Pool{Name: "over", Sim: &config.Sim{Phases: []config.Phase{{Duration: time.Hour, RPS: config.MaxSimRPS}}, Scale: 1, Speedup: 1, ServiceMs: 50, BootDelay: time.Minute, Seed: 1, Servers: 1},
		Template: config.Template{Min: 1, Max: 4, TargetSeconds: 1, MaxWeight: 256}}
	l, err := newSim(pc, PoolState{}, false, 0, func() time.Time { return now }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(5 * time.Second)
	snap, err := l.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pl := snap.Pool("over")
	if pl == nil || len(pl.Servers) != 1 {
		t.Fatalf("snapshot %+v: want one server", snap)
	}
	t.Logf("after 5 s: queue %v, requests accepted %d", pl.Servers[0].Gauges.Queue, pl.Servers[0].Counters.Requests)
	if q := pl.Servers[0].Gauges.Queue; q > simMaxQueue {
		t.Errorf("queued %v, want at most %d", q, simMaxQueue)
	}
	if n := pl.Servers[0].Counters.Requests; n > 2*simMaxQueue {
		t.Errorf("%d requests accepted in 5 s by a 20 req/s server, want the excess dropped", n)
	}
}

// TestSkippedTemplateDownAndUp: a template pool skipped at start is
// dropped by template down (its stored state goes), or replaced by
// template up with a fixed spec (which then is stored).
func TestSkippedTemplateDownAndUp(t *testing.T) {
	dir := t.TempDir()
	cfg := simDaemonConfig(t, dir)
	const bad = "name: %s\nsim: {phases: [{duration: 5m, rps: 5}], speedup: 30}\ntemplate: {min: 1, max: 3, target_seconds: .nan}\n"
	const good = "name: %s\nsim: {phases: [{duration: 5m, rps: 5}], speedup: 30}\ntemplate: {min: 1, max: 3, target_seconds: 1}\n"
	storeStates(t, cfg.Store.Path, map[string]any{
		"drop": PoolState{Mode: config.ModeAuto, Seq: 7, Template: fmt.Sprintf(bad, "drop")},
		"fix":  PoolState{Mode: config.ModeAuto, Seq: 9, Template: fmt.Sprintf(bad, "fix")},
	})
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer d.store.Close()
	msg, err := d.Template(context.Background(), "down", []byte(fmt.Sprintf(good, "drop")))
	if err != nil || !strings.Contains(msg, "stored state is dropped") {
		t.Errorf("down of a skipped pool: %q, %v", msg, err)
	}
	if _, err := d.store.Get(datasets.BucketMeta, poolStateKey("drop")); !errors.Is(err, datasets.ErrNotFound) {
		t.Errorf("state of drop: %v, want it gone", err)
	}
	if _, err := d.Template(context.Background(), "up", []byte(fmt.Sprintf(good, "fix"))); err != nil {
		t.Fatalf("up of a fixed spec: %v", err)
	}
	st, ok, err := loadPoolState(d.store, "fix")
	if err != nil || !ok || st.Template != fmt.Sprintf(good, "fix") || st.Seq != 9 {
		t.Errorf("state of fix %+v (%v, %v): want the fixed spec, decision ids continued from 9", st, ok, err)
	}
}
