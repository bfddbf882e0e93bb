package api

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// exposition gathers reg (pedantic: inconsistent metrics are errors) in
// the text format.
func exposition(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var b bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// promtoolPath returns promtool's path; without it the test fails (CI
// installs the Debian package prometheus) unless -short.
func promtoolPath(t *testing.T) string {
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

var testTime = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

// TestPoolCollector renders two pools' states (one with everything known,
// one just started) and compares them with the golden exposition; a
// changed mode or policy replaces its label set instead of adding one.
func TestPoolCollector(t *testing.T) {
	full := PoolStatus{
		Pool: "web", Mode: "auto", Policy: "threshold", FallbackReason: "ood",
		Target: 250 * time.Millisecond, Min: 1, Max: 8,
		Latest:       &collector.PoolPoint{Rate: 42.5, MeanMs: 80, P95Ms: 310, ErrorRatio: 0.01, Servers: 3},
		ServersKnown: true, Serving: 3, Booting: 1, Draining: 1, Desired: 4,
		StateKnown: true, OOD: true, Confidence: 0.42,
		PolicyName: "agent", PolicyCreated: testTime.Add(-time.Hour), PolicyUpdates: 1200,
		LastScrape:   testTime,
		ScrapeErrors: map[string]uint64{"timeout": 2, "connection": 1},
	}
	fresh := PoolStatus{Pool: "api", Mode: "shadow", Paused: true, Target: time.Second, Min: 2, Max: 4}
	states := []PoolStatus{full, fresh}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&PoolCollector{Pools: func(context.Context) []PoolStatus { return states }, Version: func() string { return "v1.2.3" }})
	got := exposition(t, reg)

	golden := filepath.Join("testdata", "pool_metrics.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("pool metrics differ from %s (go test -run TestPoolCollector -update ./api/ rewrites it):\n%s", golden, got)
	}

	// The mode and the policy in charge change: one series each, the new.
	states[0].Mode, states[0].Policy, states[0].FallbackReason = "manual", "manual", ""
	got = exposition(t, reg)
	for _, tc := range []struct{ want, gone string }{
		{`lbtune_pool_mode{mode="manual",pool="web"} 1`, `lbtune_pool_mode{mode="auto",pool="web"}`},
		{`lbtune_pool_policy_in_charge{policy="manual",pool="web"} 1`, `lbtune_pool_policy_in_charge{policy="threshold",pool="web"}`},
		{`lbtune_pool_fallback_reason{pool="web",reason="none"} 1`, `lbtune_pool_fallback_reason{pool="web",reason="ood"}`},
	} {
		if !bytes.Contains(got, []byte(tc.want)) || bytes.Contains(got, []byte(tc.gone)) {
			t.Errorf("after the change want %s and no %s", tc.want, tc.gone)
		}
	}
}

// TestMetricsLint runs promtool check metrics on every metric the daemon
// exports, each with a sample.
func TestMetricsLint(t *testing.T) {
	tool := promtoolPath(t)
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	m.ObserveActuation("web", "fleet", "scale", 30*time.Millisecond, errors.New("boom"))
	m.DecisionDuration.WithLabelValues("web").Observe(0.0004)
	m.SwitchDecisions.WithLabelValues("web", "ood").Inc()
	m.Reward.WithLabelValues("web").Set(-1)
	m.ObserveBalance("web", agent.Decision{Balance: agent.BalanceLeastConn})
	reg.MustRegister(&PoolCollector{Pools: func(context.Context) []PoolStatus {
		return []PoolStatus{{Pool: "web", Mode: "auto", Policy: "agent", Target: time.Second, Max: 2,
			Latest: &collector.PoolPoint{Rate: 1, MeanMs: 1, P95Ms: 2}, ServersKnown: true, StateKnown: true, PolicyName: "agent"}}
	}})
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition(t, reg))
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

const rulesDir = "../docs/prometheus"

// TestPrometheusRules checks the shipped rules (promtool check rules),
// runs their unit tests (promtool test rules: each alert firing and not
// firing) and checks that every lbtune metric they use is one the daemon
// exports.
func TestPrometheusRules(t *testing.T) {
	tool := promtoolPath(t)
	for _, args := range [][]string{
		{"check", "rules", "lbtune-rules.yml"},
		{"test", "rules", "lbtune-rules_test.yml"},
	} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = rulesDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	rules, err := os.ReadFile(filepath.Join(rulesDir, "lbtune-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	exported := exportedNames(t)
	used := map[string]bool{}
	// Metric names, not recorded ones (level:metric:operations).
	for _, m := range regexp.MustCompile(`(?:^|[^:\w])(lbtune_\w+)(?:[^:\w]|$)`).FindAllStringSubmatch(string(rules), -1) {
		used[m[1]] = true
	}
	if len(used) < 5 {
		t.Fatalf("the rules use %d lbtune metrics: %v", len(used), used)
	}
	for name := range used {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && exported[b] {
				base = b
			}
		}
		if !exported[base] {
			t.Errorf("the rules use %s, which lbtune does not export", name)
		}
	}
}

// exportedNames are the names of every metric NewMetrics and the
// PoolCollector describe.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 100)
	go func() {
		defer close(ch)
		(&PoolCollector{}).Describe(ch)
		m := NewMetrics(prometheus.NewRegistry())
		for _, c := range []prometheus.Collector{m.Decisions, m.Reward, m.Cluster, m.FallbackActive, m.ScrapeErrors, m.ActuationLatency,
			m.Servers, m.DecisionDuration, m.ActuationDuration, m.ActuationErrors, m.SwitchDecisions} {
			c.Describe(ch)
		}
	}()
	names := map[string]bool{}
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	if len(names) < 25 {
		t.Fatalf("found %d metric names: %v", len(names), names)
	}
	return names
}

// TestObserveBalance: the advice gauge has one series while the agent
// advises an algorithm, follows a change, and has none once withdrawn.
func TestObserveBalance(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	for _, step := range []struct {
		advice string
		want   string // the exposition's lbtune_balance_advice lines
	}{
		{agent.BalanceLeastConn, `lbtune_balance_advice{algorithm="leastconn",pool="web"} 1`},
		{agent.BalanceRoundRobin, `lbtune_balance_advice{algorithm="roundrobin",pool="web"} 1`},
		{"", ""},
	} {
		m.ObserveBalance("web", agent.Decision{Balance: step.advice})
		m.ObserveBalance("api", agent.Decision{}) // another pool's decisions leave web's advice
		var got []string
		for _, line := range strings.Split(string(exposition(t, reg)), "\n") {
			if strings.HasPrefix(line, "lbtune_balance_advice{") {
				got = append(got, line)
			}
		}
		if strings.Join(got, "\n") != step.want {
			t.Errorf("advice %q: series %q, want %q", step.advice, got, step.want)
		}
	}
}
