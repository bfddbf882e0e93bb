package agent

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/model"
)

func ptr(v float64) *float64 { return &v }

// unitsPool is a two-server pool at rate (req/s, split 3:1) with the given
// mean latency and p95 (ms), and pool-level percentiles.
func unitsPool(rate, meanMs, p95Ms float64) collector.PoolRates {
	srv := func(name string, share float64) collector.ServerRates {
		r := rate * share
		return collector.ServerRates{Name: name, State: collector.StateUp, Weight: 10,
			Requests: r, BytesIn: 200 * r, BytesOut: 5000 * r, Errors: 0.01 * r,
			Responses: [5]float64{0, 0.98 * r, 0, 0.01 * r, 0.01 * r}, MeanLatencyMs: meanMs,
			Gauges: collector.Gauges{Active: 3 * share, Queue: share, AvgResponseMs: meanMs, P95Ms: ptr(p95Ms)}}
	}
	return collector.PoolRates{Name: "web", Queue: 1, SourceP95Ms: ptr(p95Ms), Servers: []collector.ServerRates{srv("a", 0.75), srv("b", 0.25)}}
}

func TestPoolUnits(t *testing.T) {
	in := unitsPool(40, 50, 150)
	// mu 10/s, target 200 ms: rates / 10, latencies x 5 (target reads 1000).
	got, err := PoolUnits(&in, 10, 200*time.Millisecond, collector.PoolRates{})
	if err != nil {
		t.Fatal(err)
	}
	a := got.Servers[0]
	for name, c := range map[string][2]float64{
		"requests":  {a.Requests, 3},
		"bytes in":  {a.BytesIn, 0}, // not a load signal, absent in the simulator
		"bytes out": {a.BytesOut, 0},
		"errors":    {a.Errors, 0.03},
		"2xx":       {a.Responses[1], 0.98 * 3},
		"mean ms":   {a.MeanLatencyMs, 250},
		"avg ms":    {a.Gauges.AvgResponseMs, 250},
		"p95 ms":    {*a.Gauges.P95Ms, 750},
		"pool p95":  {*got.SourceP95Ms, 750},
		"active":    {a.Gauges.Active, 2.25}, // counts keep their units
		"queue":     {got.Queue, 1},
	} {
		if d := c[0] - c[1]; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	if in.Servers[0].Requests != 30 || *in.Servers[0].Gauges.P95Ms != 150 || *in.SourceP95Ms != 150 {
		t.Errorf("input changed: %+v", in.Servers[0])
	}
	if got.Servers[0].Gauges.P50Ms != nil {
		t.Errorf("a missing percentile became %v", *got.Servers[0].Gauges.P50Ms)
	}
	// The server slice is reused.
	again, _ := PoolUnits(&in, 10, 200*time.Millisecond, got)
	if &again.Servers[0] != &got.Servers[0] {
		t.Error("server slice not reused")
	}
	for _, bad := range []struct {
		mu     float64
		target time.Duration
	}{{0, time.Second}, {-1, time.Second}, {10, 0}} {
		if _, err := PoolUnits(&in, bad.mu, bad.target, got); err == nil || !strings.Contains(err.Error(), "pool units") {
			t.Errorf("mu %v target %v: err %v, want a pool-units error", bad.mu, bad.target, err)
		}
	}
}

// TestPoolUnitsScaleFree: a pool with a ten times faster service, ten
// times the traffic and a ten times tighter target is the same load state
// in pool units (and a different one in real units).
func TestPoolUnitsScaleFree(t *testing.T) {
	slow, fast := unitsPool(40, 50, 150), unitsPool(400, 5, 15)
	us, _ := PoolUnits(&slow, 10, 200*time.Millisecond, collector.PoolRates{})
	uf, _ := PoolUnits(&fast, 100, 20*time.Millisecond, collector.PoolRates{})
	fs, ff := model.Extract(&us), model.Extract(&uf)
	for j := range fs.Values {
		if d := fs.Values[j] - ff.Values[j]; d > 1e-9*max(1, fs.Values[j]) || d < -1e-9*max(1, fs.Values[j]) {
			t.Errorf("feature %s: %v vs %v in pool units", model.FeatureNames[j], fs.Values[j], ff.Values[j])
		}
	}
	rs, rf := model.Extract(&slow), model.Extract(&fast)
	if rs.Values[model.FeatRate] == rf.Values[model.FeatRate] {
		t.Error("real-unit rates equal: the test pools do not differ")
	}
}

func TestRLConfigCentroid(t *testing.T) {
	c := map[string]float64{"rate_rps": 4.5, "p95_latency_ms": 800, "servers": 6, "error_ratio": 0.01}
	if got := (RLConfig{}).Centroid(c); got["rate_rps"] != 4.5 || got["p95_latency_ms"] != 800 {
		t.Errorf("real units changed: %v", got)
	}
	got := RLConfig{PoolUnits: true}.Centroid(c)
	want := map[string]float64{"load_servers": 4.5, "p95_latency_x_target": 0.8, "servers": 6, "error_ratio": 0.01}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// TestAgentPoolUnitsNeedServiceRate: in pool units a pool whose service
// rate is neither configured nor measurable yet cannot be placed; the
// agent says so (and the Switch hands the decision to the fallback).
func TestAgentPoolUnitsNeedServiceRate(t *testing.T) {
	tb := NewPolicyTable(2, RLConfig{PoolUnits: true})
	tb.N[0][0] = 10
	a := NewAgent(tb, &fakeStates{post: []float64{0.9, 0.1}}, RLConfig{PoolUnits: true}, rand.NewPCG(1, 1))
	obs := Observation{Time: time.Unix(60, 0), Pool: "web", Interval: 30 * time.Second, Servers: 2,
		Latest:   collector.PoolRates{Name: "web", Servers: []collector.ServerRates{{Name: "a", State: collector.StateUp}}},
		Template: Template{Min: 1, Max: 4, TargetP95: time.Second}}
	if _, err := a.Decide(context.Background(), obs); err == nil || !strings.Contains(err.Error(), "pool units") {
		t.Fatalf("err %v, want a pool-units error", err)
	}
	sw := NewSwitch(NewAgent(tb, &fakeStates{post: []float64{0.9, 0.1}}, RLConfig{PoolUnits: true}, nil), DefaultThreshold(), DefaultSwitchConfig())
	d, err := sw.Decide(context.Background(), obs)
	if err != nil || !strings.Contains(d.Reason, "(error:") || d.Metrics["switch_fallback"] != 1 {
		t.Fatalf("switch: %v %q %v, want the fallback on error", err, d.Reason, d.Metrics)
	}
	// With the template's service rate it decides.
	obs.Template.ServiceRate = 5
	if _, err := a.Decide(context.Background(), obs); err != nil {
		t.Fatal(err)
	}
}
