package tuner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/internal/testkit"
	"github.com/lbtune/lbtune/tuner/config"
)

// metricsConfig writes the --sim example into dir, sped up 30x, with the
// shipped model (online learning off), and returns its path.
func metricsConfig(t *testing.T, dir, addr string) string {
	t.Helper()
	return testkit.ExampleConfig(t, dir, true, map[string]string{
		"listen: 127.0.0.1:9464":   "listen: " + addr,
		"token_file: lbtune.token": "token_file: " + filepath.Join(dir, "lbtune.token"),
		"speedup: 10 ":             "speedup: 30 ",
		`path: ""`:                 "path: " + testkit.ShippedModel(t),
	})
}

// scrapedMetrics are /metrics parsed, by family name.
type scrapedMetrics map[string]*dto.MetricFamily

// value returns the value of the series of name with exactly the given
// labels among its labels, and whether there is one.
func (s scrapedMetrics) value(name string, labels map[string]string) (float64, bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// series counts the series of name whose labels include labels.
func (s scrapedMetrics) series(name string, labels map[string]string) int {
	n := 0
	f, ok := s[name]
	if !ok {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		n++
	}
	return n
}

func getBody(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v: %s", url, resp.StatusCode, err, b)
	}
	return b
}

func parseMetrics(t *testing.T, body []byte) scrapedMetrics {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// promtool returns promtool's path; without it the test fails (CI
// installs the Debian package prometheus) unless -short.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if testing.Short() {
			t.Skip("promtool not installed (Debian package prometheus)")
		}
		t.Fatal("promtool not installed: apt-get install prometheus (or run with -short)")
	}
	return p
}

// TestMetrics runs the daemon in process on the --sim example, sped up,
// with the shipped model; once it has decided a few times it pauses the
// pool (freezing its decisions) and reads /metrics, /v1/state and
// /v1/decisions: every pool series must be there with the values the API
// shows, and promtool check metrics must find nothing to say.
func TestMetrics(t *testing.T) {
	tool := promtool(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg, err := config.Load(metricsConfig(t, dir, addr))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	d.Version = "test-1"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop within 20 s of cancel")
		}
	}()
	base := "http://" + addr

	// Wait (15 s at most) for a few decisions and a request rate.
	web := map[string]string{"pool": "web"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		time.Sleep(300 * time.Millisecond)
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := parseMetrics(t, b)
			n, _ := m.value("lbtune_decision_duration_seconds", web)
			rate, _ := m.value("lbtune_pool_requests_per_second", web)
			if n >= 3 && rate > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no 3 decisions and a request rate within 15 s")
		}
	}
	post := func(path, body string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+d.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s: %s", path, resp.Status, b)
		}
	}

	// 1. Auto mode, paused: when pause returns no tick runs, so the
	// decisions and what /metrics says of them stay put.
	post("/v1/pools/web/pause", "")
	body := getBody(t, base+"/metrics")
	checkMetrics(t, base, body, func(ps api.PoolState, last *agent.Decision) []metricCheck {
		wantReason := api.FallbackNone
		if last.Metrics["switch_fallback"] == 1 {
			// The fallback's reason is in its decision's words: "fallback
			// threshold (ood: ...".
			_, rest, _ := strings.Cut(last.Reason, "(")
			wantReason, _, _ = strings.Cut(rest, ":")
		}
		// The switch counts the agent's own decisions under "agent" (the
		// gauge of who is in charge says "none": no fallback).
		switchReason := wantReason
		if wantReason == api.FallbackNone {
			switchReason = agent.SwitchAgent
		}
		// The switch tells an OOD state when nothing before it (stale data,
		// an error, no training) took the decision from the agent.
		ood := between(0, 1)
		switch wantReason {
		case agent.SwitchOOD:
			ood = equal(1)
		case api.FallbackNone, agent.SwitchUnsure:
			ood = equal(0)
		}
		return []metricCheck{
			{"lbtune_pool_mode", map[string]string{"pool": "web", "mode": config.ModeAuto}, equal(1)},
			{"lbtune_pool_policy_in_charge", map[string]string{"pool": "web", "policy": last.Policy}, equal(1)},
			{"lbtune_pool_fallback_reason", map[string]string{"pool": "web", "reason": wantReason}, equal(1)},
			{"lbtune_pool_load_state_ood", web, ood},
			{"lbtune_pool_load_state_confidence", web, between(0, 1)},
			{"lbtune_switch_decisions_total", map[string]string{"pool": "web", "reason": switchReason}, between(1, math.Inf(1))},
		}
	})

	// 2. Manual mode, one server more (the operator's decision is applied
	// through the actuator), then paused again.
	post("/v1/mode", `{"pool":"web","mode":"manual"}`)
	post("/v1/pools/web/resume", "")
	post("/v1/scale", `{"pool":"web","delta":1}`)
	post("/v1/pools/web/pause", "")
	body = getBody(t, base+"/metrics")
	checkMetrics(t, base, body, func(ps api.PoolState, last *agent.Decision) []metricCheck {
		return []metricCheck{
			{"lbtune_pool_mode", map[string]string{"pool": "web", "mode": config.ModeManual}, equal(1)},
			{"lbtune_pool_policy_in_charge", map[string]string{"pool": "web", "policy": "manual"}, equal(1)},
			{"lbtune_pool_fallback_reason", map[string]string{"pool": "web", "reason": api.FallbackNone}, equal(1)},
			{"lbtune_actuation_duration_seconds", map[string]string{"pool": "web", "actuator": "sim", "action": "scale"}, between(1, math.Inf(1))},
			{"lbtune_actuation_latency_seconds", map[string]string{"pool": "web", "action": "scale"}, between(1, math.Inf(1))},
		}
	})

	// promtool's linter: no problems, exit 0.
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// metricCheck is one expected series: its name, labels it includes, and
// what is wrong with its value ("" when right).
type metricCheck struct {
	name   string
	labels map[string]string
	check  func(v float64) string
}

// checkMetrics checks body, /metrics of a daemon whose pool web is paused,
// against /v1/state and /v1/decisions: the checks every pool has, and
// those more returns for the pool's state.
func checkMetrics(t *testing.T, base string, body []byte, more func(api.PoolState, *agent.Decision) []metricCheck) {
	t.Helper()
	m := parseMetrics(t, body)
	var state api.State
	if err := json.Unmarshal(getBody(t, base+"/v1/state"), &state); err != nil {
		t.Fatal(err)
	}
	var decs []agent.Decision
	if err := json.Unmarshal(getBody(t, base+"/v1/decisions?pool=web&since=0&limit=10000"), &decs); err != nil {
		t.Fatal(err)
	}
	if len(state.Pools) != 1 || state.Pools[0].LastDecision == nil || len(decs) == 0 {
		t.Fatalf("state %+v, %d decisions: want pool web with decisions", state.Pools, len(decs))
	}
	ps := state.Pools[0]
	last := ps.LastDecision
	web := map[string]string{"pool": "web"}

	// The desired servers: what the last decision that asked for a size
	// asked for, else serving + booting.
	wantDesired := -1
	for _, dc := range decs {
		if dc.Servers > 0 && dc.Outcome != agent.OutcomeRefused {
			wantDesired = dc.Servers
		}
	}
	serving, _ := m.value("lbtune_pool_servers", map[string]string{"pool": "web", "state": "serving"})
	booting, _ := m.value("lbtune_pool_servers", map[string]string{"pool": "web", "state": "booting"})
	if wantDesired < 0 {
		wantDesired = int(serving + booting)
	}
	// The pool's rate, mean and p95 are one interval's: a point of
	// /v1/series (read after /metrics: the simulator goes on scraping).
	var series []collector.PoolPoint
	if err := json.Unmarshal(getBody(t, base+"/v1/series?pool=web&since=0"), &series); err != nil {
		t.Fatal(err)
	}
	rate, _ := m.value("lbtune_pool_requests_per_second", web)
	var pt *collector.PoolPoint
	for i := range series {
		if rate > 0 && math.Abs(series[i].Rate-rate) < 1e-9*rate {
			pt = &series[i]
		}
	}
	if pt == nil {
		t.Fatalf("lbtune_pool_requests_per_second %v is no interval's rate in /v1/series (%d points)", rate, len(series))
	}
	tests := []metricCheck{
		{"lbtune_build_info", map[string]string{"version": "test-1"}, equal(1)},
		{"lbtune_pool_error_ratio", web, equal(pt.ErrorRatio)},
		{"lbtune_pool_response_time_mean_seconds", web, equal(pt.MeanMs / 1000)},
		{"lbtune_pool_response_time_p95_seconds", web, equal(pt.P95Ms / 1000)},
		{"lbtune_pool_response_time_target_seconds", web, equal(ps.TargetMs / 1000)},
		{"lbtune_pool_min_servers", web, equal(float64(ps.Min))},
		{"lbtune_pool_max_servers", web, equal(float64(ps.Max))},
		{"lbtune_pool_servers", map[string]string{"pool": "web", "state": "serving"}, between(float64(ps.Min), float64(ps.Max))},
		{"lbtune_pool_servers", map[string]string{"pool": "web", "state": "booting"}, between(0, float64(ps.Max))},
		{"lbtune_pool_servers", map[string]string{"pool": "web", "state": "draining"}, equal(0)},
		{"lbtune_pool_desired_servers", web, equal(float64(wantDesired))},
		{"lbtune_pool_paused", web, equal(1)},
		{"lbtune_pool_policy_updates", web, between(1, math.Inf(1))},
		{"lbtune_pool_policy_info", map[string]string{"pool": "web", "name": "agent"}, equal(1)},
		{"lbtune_pool_last_scrape_success_timestamp_seconds", web, func(v float64) string {
			if age := time.Since(time.Unix(0, int64(v*1e9))); age < -time.Second || age > 5*time.Second {
				return fmt.Sprintf("last scrape %v ago, want within 5 s", age)
			}
			return ""
		}},
		{"lbtune_pool_scrape_errors_total", map[string]string{"pool": "web", "kind": "timeout"}, equal(0)},
		{"lbtune_decision_duration_seconds", web, between(3, math.Inf(1))},
		{"lbtune_actuation_errors_total", map[string]string{"pool": "web", "actuator": "sim", "action": "scale"}, equal(0)},
		{"lbtune_actuation_errors_total", map[string]string{"pool": "web", "actuator": "sim", "action": "weights"}, equal(0)},
		{"lbtune_switch_decisions_total", map[string]string{"pool": "web", "reason": agent.SwitchError}, equal(0)},
	}
	tests = append(tests, more(ps, last)...)
	for _, tc := range tests {
		v, ok := m.value(tc.name, tc.labels)
		if !ok {
			t.Errorf("%s%v: missing", tc.name, tc.labels)
		} else if msg := tc.check(v); msg != "" {
			t.Errorf("%s%v = %v: %s", tc.name, tc.labels, v, msg)
		}
	}
	// Enum-like gauges have exactly one label set per pool: a changed one
	// replaces the old.
	for _, name := range []string{"lbtune_pool_mode", "lbtune_pool_policy_in_charge", "lbtune_pool_fallback_reason", "lbtune_pool_policy_info"} {
		if n := m.series(name, web); n != 1 {
			t.Errorf("%s has %d series for pool web, want 1", name, n)
		}
	}
	mean := 0.0
	if f := m["lbtune_decision_duration_seconds"]; f != nil && len(f.GetMetric()) > 0 {
		h := f.GetMetric()[0].GetHistogram()
		mean = h.GetSampleSum() / float64(max(h.GetSampleCount(), 1))
	}
	t.Logf("mode %s, last decision %s %s (%s): desired %d, serving %v, booting %v; mean decision %.3f ms", ps.Mode, last.Policy, last.Outcome, last.Reason, wantDesired, serving, booting, mean*1000)
}

func equal(want float64) func(float64) string {
	return func(v float64) string {
		if math.Abs(v-want) > 1e-9*max(1, math.Abs(want)) {
			return fmt.Sprintf("want %v", want)
		}
		return ""
	}
}

func between(lo, hi float64) func(float64) string {
	return func(v float64) string {
		if v < lo || v > hi {
			return fmt.Sprintf("want within [%v, %v]", lo, hi)
		}
		return ""
	}
}

// TestMetricsFleet runs the daemon over a fleet pool behind a real
// HAProxy (one static server, min 2, max 3, manual mode), scales it +1,
// pauses it and checks the servers by state against the actuator's count,
// the actuation metrics of actuator "local" and promtool check metrics.
func TestMetricsFleet(t *testing.T) {
	tool := promtool(t)
	bin := testBackend(t)
	dir := t.TempDir()
	a1 := freeAddr(t)
	startProc(t, bin, a1)
	rt := startHAProxyFor(t, dir, haproxy.Config{Backends: []haproxy.Backend{{Name: "web", Bind: freeAddr(t),
		Servers: []haproxy.ConfigServer{{Name: "s1", Addr: a1, Weight: 100}}}}})
	d, stop := fleetDaemon(t, dir, rt.Socket, bin, "manual", 2, 3)
	defer stop()
	fa := d.actuators["local"].(*fleetApplier)
	ctx := context.Background()
	servers := func(n int) func() bool {
		return func() bool {
			st, _ := d.State(ctx)
			l := st.Pools[0].Latest
			return l != nil && l.Servers == n
		}
	}
	// Supervision launches one server to reach min 2.
	waitFor(t, servers(2))
	dec, err := d.Scale(ctx, "web", 1)
	if err != nil || dec.Outcome != agent.OutcomeApplied {
		t.Fatalf("scale +1: %+v, %v", dec, err)
	}
	waitFor(t, servers(3))
	if err := d.Pause(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	body := getBody(t, "http://"+d.cfg.API.Listen+"/metrics")
	m := parseMetrics(t, body)
	c, err := fa.Count(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	web := map[string]string{"pool": "web"}
	for _, tc := range []metricCheck{
		{"lbtune_pool_servers", map[string]string{"pool": "web", "state": "serving"}, equal(float64(c.Serving()))},
		{"lbtune_pool_servers", map[string]string{"pool": "web", "state": "serving"}, equal(3)},
		{"lbtune_pool_servers", map[string]string{"pool": "web", "state": "booting"}, equal(float64(c.Booting))},
		{"lbtune_pool_servers", map[string]string{"pool": "web", "state": "draining"}, equal(0)},
		{"lbtune_pool_desired_servers", web, equal(3)},
		{"lbtune_pool_mode", map[string]string{"pool": "web", "mode": "manual"}, equal(1)},
		{"lbtune_pool_paused", web, equal(1)},
		{"lbtune_pool_policy_in_charge", map[string]string{"pool": "web", "policy": "manual"}, equal(1)},
		{"lbtune_pool_requests_per_second", web, between(0, math.Inf(1))},
		{"lbtune_actuation_duration_seconds", map[string]string{"pool": "web", "actuator": "local", "action": "scale"}, between(1, math.Inf(1))},
		{"lbtune_actuation_errors_total", map[string]string{"pool": "web", "actuator": "local", "action": "scale"}, equal(0)},
		{"lbtune_pool_last_scrape_success_timestamp_seconds", web, func(v float64) string {
			if age := time.Since(time.Unix(0, int64(v*1e9))); age < 0 || age > 5*time.Second {
				return fmt.Sprintf("last scrape %v ago, want within 5 s", age)
			}
			return ""
		}},
		{"lbtune_pool_scrape_errors_total", map[string]string{"pool": "web", "kind": "connection"}, equal(0)},
	} {
		v, ok := m.value(tc.name, tc.labels)
		if !ok {
			t.Errorf("%s%v: missing", tc.name, tc.labels)
		} else if msg := tc.check(v); msg != "" {
			t.Errorf("%s%v = %v: %s", tc.name, tc.labels, v, msg)
		}
	}
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	stop()
}

// TestScrapeErrorKind classifies real failures: a refused connection, an
// HTTP timeout, a malformed body, anything else.
func TestScrapeErrorKind(t *testing.T) {
	closed := freeAddr(t) // nothing listens there any more
	_, refused := http.Get("http://" + closed + "/status")
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, timeout := (&http.Client{Timeout: 50 * time.Millisecond}).Get("http://" + ln.Addr().String() + "/status")
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"refused", fmt.Errorf("scrape vts: %w", refused), "connection"},
		{"http timeout", fmt.Errorf("scrape vts: %w", timeout), "timeout"},
		{"context deadline", fmt.Errorf("scrape haproxy: %w", ctx.Err()), "timeout"},
		{"malformed", fmt.Errorf("scrape vts: %w: no upstreamZones", collector.ErrMalformed), "malformed"},
		{"other", errors.New("append snapshot: disk full"), "other"},
		{"nil", nil, "other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil && tc.name != "nil" {
				t.Fatal("no error to classify")
			}
			if got := scrapeErrorKind(tc.err); got != tc.want {
				t.Errorf("scrapeErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
