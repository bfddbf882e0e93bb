package ab

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

func testPlan() *Plan {
	return &Plan{Speedup: 60, RateFactor: 10, Target: 100 * time.Millisecond, Wall: time.Minute,
		Trace: &sim.Trace{Name: "t", Times: []float64{0, 60}, Rates: []float64{1, 2}, End: 120}}
}

// TestScorer: per trace minute (1 wall second at speed-up 60) the p95 in
// trace units (wall x rate factor 10) against the 100 ms target; failures
// count; minutes with only failures violate; minutes without traffic do
// not count.
func TestScorer(t *testing.T) {
	p := testPlan()
	s := newScorer(p)
	start := time.Unix(1000, 0)
	at := func(sec float64) time.Time { return start.Add(time.Duration(sec * float64(time.Second))) }
	// minute 0: 20 requests at 5 ms wall (50 ms trace): fine.
	for i := range 20 {
		s.add(start, loadgen.Record{Time: at(0.01 * float64(i)), Status: 200, LatencyMs: 5})
	}
	// minute 1: 19 at 5 ms, 1 at 50 ms wall (500 ms trace): p95 of 20 is the 19th = 5 ms: fine.
	for i := range 19 {
		s.add(start, loadgen.Record{Time: at(1 + 0.01*float64(i)), Status: 200, LatencyMs: 5})
	}
	s.add(start, loadgen.Record{Time: at(1.5), Status: 200, LatencyMs: 50})
	// minute 2: 10 at 20 ms wall (200 ms trace): violates.
	for i := range 10 {
		s.add(start, loadgen.Record{Time: at(2 + 0.01*float64(i)), Status: 200, LatencyMs: 20})
	}
	// minute 4 (none in 3): only failures: violates.
	s.add(start, loadgen.Record{Time: at(4.2), Status: 0, Error: "connection refused"})
	s.add(start, loadgen.Record{Time: at(4.3), Status: 503, Error: "503 Service Unavailable"})
	r := s.result("x")
	if r.Requests != 52 || r.Failed != 2 {
		t.Errorf("requests %d failed %d, want 52 and 2", r.Requests, r.Failed)
	}
	if r.Minutes != 4 {
		t.Errorf("minutes %d, want 4 (minute 3 had no traffic)", r.Minutes)
	}
	if math.Abs(r.SLOViolationPct-50) > 1e-9 {
		t.Errorf("violation %.2f%%, want 50%% (2 of 4)", r.SLOViolationPct)
	}
	if r.P95Ms != 200 {
		t.Errorf("p95 %v ms (trace units), want 200", r.P95Ms)
	}
	wantMean := (39*50 + 500 + 10*200) / 50.0
	if math.Abs(r.MeanMs-wantMean) > 1e-9 {
		t.Errorf("mean %v, want %v", r.MeanMs, wantMean)
	}
}

// TestSampler: server-seconds of powered servers in trace hours, actions
// on every size change, reversals against the last direction within 5
// trace minutes (5 wall seconds at speed-up 60).
func TestSampler(t *testing.T) {
	p := testPlan()
	s := newSampler(p, time.Unix(0, 0))
	t0 := time.Unix(0, 0)
	steps := []struct {
		at time.Duration
		c  actuator.Count
	}{
		{0, actuator.Count{Own: 2}},
		{time.Second, actuator.Count{Own: 2, Booting: 1}}, // +1
		{2 * time.Second, actuator.Count{Own: 3}},         // same size: no action
		{4 * time.Second, actuator.Count{Own: 2}},         // -1 within 5 s: reversal
		{20 * time.Second, actuator.Count{Own: 3}},        // +1 after 16 s: no reversal
		{21 * time.Second, actuator.Count{Own: 3, Static: 1}},
	}
	prev := time.Duration(0)
	for _, st := range steps {
		s.observe(t0.Add(st.at), st.at-prev, st.c)
		prev = st.at
	}
	if s.actions != 4 || s.reversals != 1 {
		t.Errorf("actions %d reversals %d, want 4 and 1", s.actions, s.reversals)
	}
	// server-seconds: 0 + 3x1 + 3x1 + 2x2 + 3x16 + 4x1 = 62 wall s = 62x60 trace s.
	if got, want := s.serverHours(), 62.0*60/3600; math.Abs(got-want) > 1e-9 {
		t.Errorf("server-hours %v, want %v", got, want)
	}
}

// TestPlan: the scenario's units map to the wall clock by the speed-up
// (time) and the rate factor (rates, service times, latencies).
func TestPlan(t *testing.T) {
	p, err := NewPlan(Config{Trace: "../../../shared/traces/nasa-1995-07-per-min.csv", From: 24 * time.Hour, To: 26 * time.Hour,
		Speedup: 30, Scale: 3, Policies: []string{"threshold", "hpa@0.5", "static"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Wall != 4*time.Minute {
		t.Errorf("wall %v, want 2 h / 30 = 4m", p.Wall)
	}
	if p.RateFactor != 30 {
		t.Errorf("rate factor %v, want the speed-up 30", p.RateFactor)
	}
	if p.Scenario.Interval != 150*time.Second || p.WallBoot != 2*time.Second {
		t.Errorf("interval %v boot %v, want 150s (5s x 30) and 2s (60s / 30)", p.Scenario.Interval, p.WallBoot)
	}
	// Utilisation is the same on both clocks: arrival / service, each x rate factor.
	if got, want := p.wallServiceMs(), 1000/(p.ServiceRate*p.RateFactor); got != want {
		t.Errorf("wall service %v ms, want %v", got, want)
	}
	sched := schedule(p)
	if got := sched.Length(); got != p.Wall {
		t.Errorf("schedule length %v, want %v", got, p.Wall)
	}
	// The pre-roll: the trace's first rate on the wall clock for the
	// policy window (8 decisions) and one more, 5 s each.
	pre := preRoll(p)
	if got, want := pre.Length(), 9*5*time.Second; got != want {
		t.Errorf("pre-roll %v, want %v", got, want)
	}
	if got, want := pre.Phases[0].Rate, p.Trace.Rates[0]*30; len(pre.Phases) != 1 || got != want {
		t.Errorf("pre-roll rate %v in %d phases, want one phase at %v (first rate x 30)", got, len(pre.Phases), want)
	}
	// --duration shortens the slice both sides run.
	short, err := NewPlan(Config{Trace: "../../../shared/traces/nasa-1995-07-per-min.csv", From: 24 * time.Hour, To: 26 * time.Hour,
		Speedup: 30, Scale: 3, Duration: time.Minute, Policies: []string{"static"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if short.Wall != time.Minute || short.Trace.Duration() != 30*time.Minute {
		t.Errorf("--duration 1m at speed-up 30: wall %v, trace %v; want 1m and 30m", short.Wall, short.Trace.Duration())
	}
	// The simulator models the balancer the real run uses.
	if got := short.Scenario.Sim.Pools[0].Balancer; got != sim.HAProxyRR {
		t.Errorf("default balancer: simulator balancer %q, want %q", got, sim.HAProxyRR)
	}
	for bal, want := range map[string]sim.Balancer{"nginx": sim.SmoothWRR} {
		p, err := NewPlan(Config{Trace: "../../../shared/traces/nasa-1995-07-per-min.csv", From: 24 * time.Hour, To: 26 * time.Hour,
			Speedup: 30, Scale: 3, Duration: time.Minute, Policies: []string{"static"}, Balancer: bal, Seed: 1})
		if err != nil {
			t.Fatalf("balancer %q: %v", bal, err)
		}
		if got := p.Scenario.Sim.Pools[0].Balancer; got != want {
			t.Errorf("balancer %q: simulator balancer %q, want %q", bal, got, want)
		}
	}
	for _, bad := range []Config{
		{Speedup: 0.5, Policies: []string{"static"}},
		{Speedup: 10, Policies: []string{"oracle"}},
		{Speedup: 10, Policies: []string{"hpa@2"}},
		{Speedup: 10, Policies: nil},
		{Speedup: 10, Policies: []string{"static"}, Balancer: "envoy"},
		{Speedup: 600, Scale: 10, Policies: []string{"static"}}, // 1.27 x 10 x 600 req/s on the wall clock
	} {
		bad.Trace = "../../../shared/traces/nasa-1995-07-per-min.csv"
		if _, err := NewPlan(bad); err == nil {
			t.Errorf("NewPlan(%+v) accepted", bad)
		}
	}
}

// TestMinutes: the real run's minutes (p95 in trace units, servers at the
// last sample of each minute, carried over a minute without a sample)
// beside the simulator's, and their CSV.
func TestMinutes(t *testing.T) {
	p := testPlan() // a trace minute is 1 wall second, latencies x 10
	start := time.Unix(1000, 0)
	sc := newScorer(p)
	for i := range 20 {
		sc.add(start, loadgen.Record{Time: start.Add(time.Duration(i) * 10 * time.Millisecond), Status: 200, LatencyMs: float64(1 + i)})
	}
	sc.add(start, loadgen.Record{Time: start.Add(2500 * time.Millisecond), Status: 503, Error: "503"})
	samp := newSampler(p, start)
	samp.observe(start.Add(500*time.Millisecond), 0, actuator.Count{Own: 2, Booting: 1})
	samp.observe(start.Add(900*time.Millisecond), 0, actuator.Count{Own: 3})
	samp.observe(start.Add(2100*time.Millisecond), 0, actuator.Count{Own: 2})
	ms := minutes(sc, samp, []sim.MinuteTruth{{Requests: 19, P95Ms: 170, Servers: 3}, {Requests: 0, Servers: 3}})
	if len(ms) != 3 {
		t.Fatalf("%d minutes, want 3 (the real run's last minute is 2)", len(ms))
	}
	// minute 0: 20 latencies 1..20 ms wall, p95 the 19th = 19 ms = 190 trace ms.
	if m := ms[0]; m.Requests != 20 || m.P95Ms != 190 || m.Servers != 3 || m.Sim.P95Ms != 170 {
		t.Errorf("minute 0 %+v, want 20 requests, p95 190, 3 servers, sim p95 170", m)
	}
	if m := ms[1]; m.Requests != 0 || !math.IsNaN(m.P95Ms) || m.Servers != 3 {
		t.Errorf("minute 1 %+v, want no requests, p95 NaN, servers carried over (3)", m)
	}
	if m := ms[2]; m.Failed != 1 || m.Servers != 2 || m.Sim != (sim.MinuteTruth{}) {
		t.Errorf("minute 2 %+v, want 1 failed, 2 servers, no simulator minute", m)
	}
	var b strings.Builder
	if err := WriteMinutes(&b, ms); err != nil {
		t.Fatal(err)
	}
	want := "minute,requests,failed,p95_ms,servers,sim_requests,sim_failed,sim_p95_ms,sim_servers\n" +
		"0,20,0,190.0,3,19,0,170.0,3\n1,0,0,,3,0,0,,3\n2,0,1,,2,0,0,,0\n"
	if b.String() != want {
		t.Errorf("CSV\n%s\nwant\n%s", b.String(), want)
	}
}
