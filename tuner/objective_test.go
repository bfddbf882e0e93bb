package tuner

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/tuner/config"
)

// TestPoolFallbackAndObjective: a pool's template.fallback reaches its
// threshold fallback (fallback-only mode and inside the agent's switch)
// and template.objective its agent's reward; GET /v1/policy shows both,
// for a configured pool and for one started by POST /v1/templates/up.
func TestPoolFallbackAndObjective(t *testing.T) {
	dir := t.TempDir()
	cfg := simDaemonConfig(t, dir)
	cfg.Model.Path = "../datasets/default-agent.db"
	reserve, util, window := 0, 0.9, 2*time.Minute
	cfg.Pools[0].Template.Fallback = config.Fallback{Reserve: &reserve, UtilHigh: &util, Window: &window}
	cfg.Pools[0].Template.Objective = config.Objective{ServerHour: 24, ViolationMinute: 80}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	p := d.poolList()[0]
	th, ok := p.fallback.(*agent.Threshold)
	if !ok {
		t.Fatalf("fallback %T, want the threshold policy", p.fallback)
	}
	want := agent.DefaultThresholdConfig()
	want.TargetP95, want.Reserve, want.UtilHigh, want.Window = p.template.TargetP95, 0, 0.9, 2*time.Minute
	if got := th.Config(); got != want {
		t.Errorf("fallback %+v, want %+v", got, want)
	}
	sw, ok := p.auto.(*agent.Switch)
	if !ok {
		t.Fatalf("auto policy %T, want the agent switch", p.auto)
	}
	// 24 per server-hour is 0.2 per 30 s; 80 per violating minute 40.
	wantReward := agent.RewardConfig{Latency: 1, Violation: 40, Errors: 10, ServerCost: 0.2}
	if got := sw.Agent().Config().Reward; got != wantReward {
		t.Errorf("agent reward %+v, want %+v", got, wantReward)
	}

	token, err := config.ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	const spec = "name: t2\nsim: {phases: [{duration: 5m, rps: 5}], speedup: 30}\n" +
		"template: {min: 1, max: 3, target_seconds: 1, fallback: {grow_ratio: 3, queue_high: 4}, objective: {server_hour: 1.5}}\n"
	var pol api.Policy
	var upCode int
	var upBody string
	err = runFor(t, d, 100*time.Millisecond, func(base string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/templates/up", strings.NewReader(spec))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		upCode, upBody = resp.StatusCode, string(b)
		resp, err = http.Get(base + "/v1/policy")
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&pol); err != nil {
			t.Errorf("/v1/policy: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if upCode != http.StatusOK {
		t.Fatalf("template up: %d %s", upCode, upBody)
	}
	byPool := map[string]api.PoolPolicy{}
	for _, pp := range pol.Pools {
		byPool[pp.Pool] = pp
	}
	for _, tc := range []struct {
		pool      string
		fallback  map[string]float64
		objective map[string]float64
	}{
		{"web", map[string]float64{"reserve_servers": 0, "util_high": 0.9, "window_s": 120, "grow_ratio": 2, "queue_high": 2, "target_p95_ms": 500},
			map[string]float64{"server_hour": 24, "violation_minute": 80, "server_cost": 0.2, "violation": 40, "target_p95_ms": 500}},
		// Omitted keys keep the defaults; 1.5 per server-hour is 0.0125 per 30 s.
		{"t2", map[string]float64{"reserve_servers": 2, "util_high": 0.8, "window_s": 60, "grow_ratio": 3, "queue_high": 4, "target_p95_ms": 1000},
			map[string]float64{"server_hour": 1.5, "violation_minute": 8, "server_cost": 0.0125, "violation": 4, "target_p95_ms": 1000}},
	} {
		pp, ok := byPool[tc.pool]
		if !ok {
			t.Errorf("/v1/policy lacks pool %s", tc.pool)
			continue
		}
		for k, v := range tc.fallback {
			if got, ok := pp.Fallback[k]; !ok || got != v {
				t.Errorf("/v1/policy %s fallback %s = %v (present %v), want %v", tc.pool, k, got, ok, v)
			}
		}
		for k, v := range tc.objective {
			if got, ok := pp.Objective[k]; !ok || got != v {
				t.Errorf("/v1/policy %s objective %s = %v (present %v), want %v", tc.pool, k, got, ok, v)
			}
		}
	}
}
