package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
)

var testNow = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// fakeDaemon is a Reader and Operator over fixed data: pool "web" with 30
// minutes of points (servers step 2 -> 4 -> 3) and one decision a minute.
type fakeDaemon struct {
	mu     sync.Mutex
	mode   map[string]string
	paused map[string]bool
	calls  []string
}

func newFake() *fakeDaemon {
	return &fakeDaemon{mode: map[string]string{"web": "auto"}, paused: map[string]bool{}}
}

func (f *fakeDaemon) points(since time.Time) []collector.PoolPoint {
	var pts []collector.PoolPoint
	for i := 0; i < 360; i++ { // every 5 s for 30 min
		t := testNow.Add(-30 * time.Minute).Add(time.Duration(i) * 5 * time.Second)
		if t.Before(since) {
			continue
		}
		servers := 2
		switch {
		case i >= 240:
			servers = 3
		case i >= 120:
			servers = 4
		}
		rate := 100 + 80*float64(i%60)/60
		w := map[string]int{}
		for s := range servers {
			w[fmt.Sprintf("s%d", s)] = 100 + 10*s
		}
		pts = append(pts, collector.PoolPoint{Time: t, Rate: rate, Active: rate / 20, MeanMs: 40 + float64(i%30), P95Ms: 120 + float64(i%50), Servers: servers, Weights: w})
	}
	return pts
}

func (f *fakeDaemon) decisions(pool string, since time.Time, limit int) []agent.Decision {
	var ds []agent.Decision
	for i := range 30 {
		t := testNow.Add(-30 * time.Minute).Add(time.Duration(i) * time.Minute)
		if t.Before(since) || (pool != "" && pool != "web") {
			continue
		}
		d := agent.Decision{Time: t, Pool: "web", Policy: "threshold", Servers: 2 + i%3, Reason: fmt.Sprintf("p95 %dms vs target 200ms", 120+i),
			Metrics: map[string]float64{"p95_ms": float64(120 + i), "cluster": float64(i % 3)}, Outcome: "applied"}
		if i%7 == 0 {
			d.Clamps = []agent.Clamp{{Rule: "max", From: 6, To: 4, Reason: "capped count from 6 to 4 to stay within max"}}
		}
		ds = append(ds, d)
	}
	if len(ds) > limit {
		ds = ds[len(ds)-limit:]
	}
	return ds
}

func (f *fakeDaemon) State(context.Context) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pts := f.points(testNow.Add(-time.Minute))
	ds := f.decisions("web", time.Time{}, 1)
	return State{Version: "test", Started: testNow.Add(-time.Hour), Now: testNow, Pools: []PoolState{{
		Name: "web", Mode: f.mode["web"], Paused: f.paused["web"], Min: 1, Max: 10, TargetMs: 200,
		Latest: &pts[len(pts)-1], Cluster: 2, LastDecision: &ds[0],
	}}}, nil
}

func (f *fakeDaemon) Policy(context.Context) (Policy, error) {
	clusters := []Cluster{{ID: 0, Share: 0.6, Centroid: map[string]float64{"rate_rps": 120}, Values: map[string]float64{"+1": -3, "0": -1}, Preferred: "0"}}
	return Policy{Clusters: clusters, Pools: []PoolPolicy{
		{Pool: "web", Policy: "agent", Trained: true, Clusters: clusters, Fallback: map[string]float64{"target_ms": 200}},
		{Pool: "api", Policy: "threshold", Clusters: clusters, Fallback: map[string]float64{"target_ms": 300}},
	}}, nil
}

func (f *fakeDaemon) Decisions(_ context.Context, pool string, since time.Time, limit int) ([]agent.Decision, error) {
	return f.decisions(pool, since, limit), nil
}

func (f *fakeDaemon) Model(context.Context) (json.RawMessage, error) { return nil, ErrNoModel }

func (f *fakeDaemon) Series(_ context.Context, pool string, since time.Time) ([]collector.PoolPoint, error) {
	if pool != "web" {
		return nil, fmt.Errorf("series %s: %w", pool, ErrUnknownPool)
	}
	return f.points(since), nil
}

func (f *fakeDaemon) SetMode(_ context.Context, pool, mode string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mode != "auto" && mode != "manual" && mode != "shadow" {
		return fmt.Errorf("mode %q: %w", mode, ErrBadRequest)
	}
	f.mode["web"] = mode
	f.calls = append(f.calls, "mode "+mode)
	return nil
}

func (f *fakeDaemon) Scale(_ context.Context, pool string, delta int) (agent.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pool != "web" {
		return agent.Decision{}, fmt.Errorf("scale %s: %w", pool, ErrUnknownPool)
	}
	if f.mode["web"] != "manual" {
		return agent.Decision{}, fmt.Errorf("pool web is in %s mode: %w", f.mode["web"], ErrConflict)
	}
	f.calls = append(f.calls, fmt.Sprintf("scale %+d", delta))
	return agent.Decision{Pool: pool, Policy: "manual", Servers: 3 + delta, Outcome: "applied"}, nil
}

func (f *fakeDaemon) Pause(_ context.Context, pool string, paused bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pool != "web" {
		return fmt.Errorf("pause %s: %w", pool, ErrUnknownPool)
	}
	f.paused[pool] = paused
	f.calls = append(f.calls, fmt.Sprintf("pause %v", paused))
	return nil
}

func (f *fakeDaemon) Node(_ context.Context, req NodeRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "node "+req.Op+" "+req.Pool)
	return "ok", nil
}

func (f *fakeDaemon) Template(_ context.Context, op string, spec []byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "template "+op+" "+strings.TrimSpace(string(spec)))
	return "ok", nil
}

func newTestServer(t *testing.T, f *fakeDaemon) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.ObserveDecision(agent.Decision{Pool: "web", Policy: "threshold", Outcome: "applied"})
	m.ScrapeErrors.WithLabelValues("haproxy+unix:///x").Inc()
	m.ActuationLatency.WithLabelValues("web", "scale").Observe(0.02)
	srv := httptest.NewServer(Handler(Options{Reader: f, Operator: f, Token: "s3cret", Gatherer: reg, Now: func() time.Time { return testNow }}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRoutes(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f)
	big := `{"pool":"web","delta":1,"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	tests := []struct {
		name     string
		method   string
		path     string
		token    string
		body     string
		wantCode int
		wantBody string // substring
		wantCall string // last Operator call, when it must have happened
	}{
		{name: "healthz", method: "GET", path: "/healthz", wantCode: 200, wantBody: "ok"},
		{name: "state", method: "GET", path: "/v1/state", wantCode: 200, wantBody: `"target_ms": 200`},
		{name: "policy", method: "GET", path: "/v1/policy", wantCode: 200, wantBody: `"rate_rps": 120`},
		{name: "model absent", method: "GET", path: "/v1/model", wantCode: 404, wantBody: "no trained model"},
		// 10 of the 30 decisions are in the last 10 minutes.
		{name: "decisions since duration", method: "GET", path: "/v1/decisions?since=10m", wantCode: 200, wantBody: `"reason": "p95 149ms vs target 200ms"`},
		{name: "decisions since rfc3339", method: "GET", path: "/v1/decisions?since=2026-11-28T09:59:00Z", wantCode: 200, wantBody: `"p95_ms": 149`},
		{name: "decisions bad since", method: "GET", path: "/v1/decisions?since=yesterday", wantCode: 400, wantBody: "since"},
		{name: "decisions bad limit", method: "GET", path: "/v1/decisions?limit=0", wantCode: 400, wantBody: "limit"},
		{name: "series", method: "GET", path: "/v1/series?pool=web&since=1m", wantCode: 200, wantBody: `"servers": 3`},
		{name: "series unknown pool", method: "GET", path: "/v1/series?pool=nope", wantCode: 404, wantBody: "unknown pool"},
		{name: "series without pool", method: "GET", path: "/v1/series", wantCode: 400, wantBody: "pool is required"},
		{name: "metrics", method: "GET", path: "/metrics", wantCode: 200, wantBody: `lbtune_decisions_total{outcome="applied",policy="threshold",pool="web"} 1`},
		{name: "dashboard", method: "GET", path: "/", wantCode: 200, wantBody: `<script src="app.js">`},
		{name: "dashboard script", method: "GET", path: "/app.js", wantCode: 200, wantBody: "lineChart"},
		{name: "mode without token", method: "POST", path: "/v1/mode", body: `{"mode":"manual"}`, wantCode: 401, wantBody: "bearer token"},
		{name: "mode wrong token", method: "POST", path: "/v1/mode", token: "guess", body: `{"mode":"manual"}`, wantCode: 401},
		{name: "scale without token", method: "POST", path: "/v1/scale", body: `{"pool":"web","delta":1}`, wantCode: 401},
		{name: "pause without token", method: "POST", path: "/v1/pools/web/pause", wantCode: 401},
		{name: "nodes without token", method: "POST", path: "/v1/nodes", body: `{"op":"launch","pool":"web"}`, wantCode: 401},
		{name: "template without token", method: "POST", path: "/v1/templates/up", body: "name: web", wantCode: 401},
		{name: "scale in auto refused", method: "POST", path: "/v1/scale", token: "s3cret", body: `{"pool":"web","delta":1}`, wantCode: 409, wantBody: "auto mode"},
		{name: "mode manual", method: "POST", path: "/v1/mode", token: "s3cret", body: `{"mode":"manual"}`, wantCode: 200, wantCall: "mode manual"},
		{name: "mode unknown", method: "POST", path: "/v1/mode", token: "s3cret", body: `{"mode":"turbo"}`, wantCode: 400},
		{name: "mode unknown field", method: "POST", path: "/v1/mode", token: "s3cret", body: `{"mood":"auto"}`, wantCode: 400, wantBody: "unknown field"},
		{name: "scale up", method: "POST", path: "/v1/scale", token: "s3cret", body: `{"pool":"web","delta":1}`, wantCode: 200, wantBody: `"servers": 4`, wantCall: "scale +1"},
		{name: "scale by two refused", method: "POST", path: "/v1/scale", token: "s3cret", body: `{"pool":"web","delta":2}`, wantCode: 400, wantBody: "+1 or -1"},
		{name: "scale unknown pool", method: "POST", path: "/v1/scale", token: "s3cret", body: `{"pool":"x","delta":-1}`, wantCode: 404},
		{name: "scale body too large", method: "POST", path: "/v1/scale", token: "s3cret", body: big, wantCode: 413},
		{name: "pause", method: "POST", path: "/v1/pools/web/pause", token: "s3cret", wantCode: 200, wantCall: "pause true"},
		{name: "resume", method: "POST", path: "/v1/pools/web/resume", token: "s3cret", wantCode: 200, wantCall: "pause false"},
		{name: "node launch", method: "POST", path: "/v1/nodes", token: "s3cret", body: `{"op":"launch","pool":"web"}`, wantCode: 200, wantCall: "node launch web"},
		{name: "node bad op", method: "POST", path: "/v1/nodes", token: "s3cret", body: `{"op":"reboot","pool":"web"}`, wantCode: 400},
		{name: "template up", method: "POST", path: "/v1/templates/up", token: "s3cret", body: "name: web", wantCode: 200, wantCall: "template up name: web"},
		{name: "template bad op", method: "POST", path: "/v1/templates/sideways", token: "s3cret", wantCode: 404},
		{name: "pprof index without token", method: "GET", path: "/debug/pprof/", wantCode: 401, wantBody: "bearer token"},
		{name: "pprof heap without token", method: "GET", path: "/debug/pprof/heap?debug=1", wantCode: 401},
		{name: "pprof heap wrong token", method: "GET", path: "/debug/pprof/heap?debug=1", token: "guess", wantCode: 401},
		{name: "pprof cpu without token", method: "GET", path: "/debug/pprof/profile?seconds=1", wantCode: 401},
		{name: "pprof index", method: "GET", path: "/debug/pprof/", token: "s3cret", wantCode: 200, wantBody: "goroutine"},
		{name: "pprof heap", method: "GET", path: "/debug/pprof/heap?debug=1", token: "s3cret", wantCode: 200, wantBody: "heap profile:"},
		{name: "pprof goroutines", method: "GET", path: "/debug/pprof/goroutine?debug=1", token: "s3cret", wantCode: 200, wantBody: "goroutine profile:"},
		{name: "pprof cmdline", method: "GET", path: "/debug/pprof/cmdline", token: "s3cret", wantCode: 200, wantBody: "api.test"},
		{name: "state is read-only", method: "POST", path: "/v1/state", token: "s3cret", wantCode: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantCode, b)
			}
			if !strings.Contains(string(b), tc.wantBody) {
				t.Errorf("body %.400s\nwant it to contain %q", b, tc.wantBody)
			}
			if tc.wantCall != "" {
				f.mu.Lock()
				last := f.calls[len(f.calls)-1]
				f.mu.Unlock()
				if last != tc.wantCall {
					t.Errorf("last operator call %q, want %q", last, tc.wantCall)
				}
			}
		})
	}
	// A refused request never reaches the operator: 6 mutations above succeed
	// (mode, scale, pause, resume, node, template); "mode unknown" is refused by it.
	if len(f.calls) != 6 {
		t.Errorf("operator saw %d calls %q, want 6", len(f.calls), f.calls)
	}
}

// TestPolicyClustersOnce: by default every pool carries the model's
// clusters (and the top level has them too); ?clusters=once serves them
// only at the top level and every other per-pool key unchanged.
func TestPolicyClustersOnce(t *testing.T) {
	srv := newTestServer(t, newFake())
	get := func(q string) (int, map[string]any) {
		resp, err := srv.Client().Get(srv.URL + "/v1/policy" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	// Every top-level key of the full answer is in the compact one too.
	_, full := get("")
	_, once := get("?clusters=once")
	for k := range full {
		if _, ok := once[k]; !ok {
			t.Errorf("?clusters=once lacks the top-level key %q", k)
		}
	}
	for _, tc := range []struct {
		q             string
		code          int
		poolsClusters bool
	}{
		{"", 200, true},
		{"?clusters=pool", 200, true},
		{"?clusters=once", 200, false},
		{"?clusters=twice", 400, false},
	} {
		code, out := get(tc.q)
		if code != tc.code {
			t.Fatalf("%q: status %d, want %d", tc.q, code, tc.code)
		}
		if code != 200 {
			continue
		}
		top, _ := out["clusters"].([]any)
		if len(top) != 1 {
			t.Errorf("%q: top-level clusters %v, want the model's one cluster", tc.q, out["clusters"])
		}
		pools, _ := out["pools"].([]any)
		if len(pools) != 2 {
			t.Fatalf("%q: %d pools, want 2", tc.q, len(pools))
		}
		for _, p := range pools {
			pp := p.(map[string]any)
			_, has := pp["clusters"]
			if has != tc.poolsClusters {
				t.Errorf("%q: pool %v has clusters %v, want %v", tc.q, pp["pool"], has, tc.poolsClusters)
			}
			for _, k := range []string{"pool", "policy", "trained", "fallback"} {
				if _, ok := pp[k]; !ok {
					t.Errorf("%q: pool %v lacks %q", tc.q, pp["pool"], k)
				}
			}
		}
		if fb := pools[1].(map[string]any)["fallback"].(map[string]any); fb["target_ms"] != 300.0 {
			t.Errorf("%q: second pool's fallback %v, want target_ms 300", tc.q, fb)
		}
	}
}

func TestNoTokenRefusesMutations(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(Handler(Options{Reader: f, Operator: f}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/mode", strings.NewReader(`{"mode":"manual"}`))
	req.Header.Set("Authorization", "Bearer ")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(f.calls) != 0 {
		t.Errorf("status %d, calls %v; want 401 and no call when no token is configured", resp.StatusCode, f.calls)
	}
}

// countingPolicy counts Policy calls and says how many it has served.
type countingPolicy struct {
	*fakeDaemon
	mu sync.Mutex
	n  int
}

func (c *countingPolicy) Policy(ctx context.Context) (Policy, error) {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	p, err := c.fakeDaemon.Policy(ctx)
	p.Pools[0].Policy = fmt.Sprint("call ", n)
	return p, err
}

// TestPolicyCached: /v1/policy is encoded once per policyTTL and variant
// however many clients ask; an authorised POST or the TTL passing
// encodes it again.
func TestPolicyCached(t *testing.T) {
	f := &countingPolicy{fakeDaemon: newFake()}
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := httptest.NewServer(Handler(Options{Reader: f, Operator: f.fakeDaemon, Token: "s3cret", Now: clock}))
	defer srv.Close()
	get := func(q string) string {
		t.Helper()
		code, body := do(t, srv, "GET", "/v1/policy"+q, "", "")
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		var p Policy
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		return p.Pools[0].Policy
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); get("") }()
	}
	wg.Wait()
	if got := get(""); got != "call 1" || f.n != 1 {
		t.Errorf("21 requests: %q after %d calls, want call 1 after 1", got, f.n)
	}
	if got := get("?clusters=once"); got != "call 2" {
		t.Errorf("the other variant: %q, want call 2", got)
	}
	if code, body := do(t, srv, "POST", "/v1/pools/web/pause", "Bearer s3cret", ""); code != 200 {
		t.Fatalf("pause: %d %s", code, body)
	}
	if got := get(""); got != "call 3" {
		t.Errorf("after a POST: %q, want call 3 (encoded again)", got)
	}
	mu.Lock()
	now = now.Add(policyTTL)
	mu.Unlock()
	if got := get(""); got != "call 4" {
		t.Errorf("after the TTL: %q, want call 4", got)
	}
	if got := get(""); got != "call 4" {
		t.Errorf("again: %q, want call 4 (cached)", got)
	}
}
