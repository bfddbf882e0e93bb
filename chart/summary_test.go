package chart

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

// points returns one point a second at rate rps and p95 ms, the server
// count servers(i) for the i-th second, over n seconds from t0+from.
func points(from time.Duration, n int, rate, p95 float64, servers func(i int) int) []collector.PoolPoint {
	var out []collector.PoolPoint
	for i := range n {
		out = append(out, collector.PoolPoint{Time: t0.Add(from + time.Duration(i)*time.Second), Rate: rate, P95Ms: p95, Servers: servers(i)})
	}
	return out
}

func dec(at time.Duration, pool, policy string, servers int, o agent.Outcome, metrics map[string]float64) agent.Decision {
	return agent.Decision{Time: t0.Add(at), Pool: pool, Policy: policy, Servers: servers, Outcome: o, Metrics: metrics}
}

// TestSummaryGolden renders runs into one screen each: the per-pool line
// (client figures or the balancer's), the server-count changes and the
// decision counts. Run with -update to rewrite testdata/summary-*.golden.
func TestSummaryGolden(t *testing.T) {
	// light: 2 servers for 60 s, 4 for 240 s, then 2 for 60 s (6 min);
	// 10 rps throughout at p95 100 ms.
	light := points(0, 361, 10, 100, func(i int) int {
		if i > 60 && i <= 300 {
			return 4
		}
		return 2
	})
	// heavy: 2 then 5 servers from 30 s; p95 1500 ms at 5 rps for the
	// first minute, 500 ms after.
	heavy := append(points(0, 60, 5, 1500, func(i int) int {
		if i > 30 {
			return 5
		}
		return 2
	}), points(60*time.Second, 301, 5, 500, func(int) int { return 5 })...)
	for i := 10; i < 20; i++ {
		heavy[i].ErrorRatio = 0.2 // 10 s at 1 failed of 5 per second
	}
	decisions := []agent.Decision{
		dec(0, "light", "agent", 0, agent.OutcomeNoop, nil),
		dec(55*time.Second, "light", "agent", 4, agent.OutcomeApplied, map[string]float64{"servers": 2}),
		dec(60*time.Second, "light", "agent", 0, agent.OutcomeApplied, nil), // weights only
		dec(65*time.Second, "light", "agent", 4, agent.OutcomeApplied, nil), // asks for what it has
		dec(200*time.Second, "light", "threshold", 2, agent.OutcomeRefused, nil),
		dec(300*time.Second, "light", "agent", 2, agent.OutcomeApplied, nil),
		dec(301*time.Second, "light", "manual", 3, agent.OutcomeFailed, nil),
		dec(25*time.Second, "heavy", "agent", 5, agent.OutcomeApplied, map[string]float64{"target_ms": 2000}),
		dec(40*time.Second, "heavy", "agent", 0, agent.OutcomeDryRun, nil),
		dec(41*time.Second, "heavy", "", 0, "", nil),
	}
	var many []agent.Decision
	for i := range 9 { // 18 changes: 2 -> 3 -> 2, nine times
		many = append(many, dec(time.Duration(i+1)*time.Minute, "web", "agent", 3, agent.OutcomeApplied, nil))
		many = append(many, dec(time.Duration(i+1)*time.Minute+30*time.Second, "web", "agent", 2, agent.OutcomeApplied, nil))
	}
	tests := []struct {
		name string
		in   SummaryInput
	}{
		{"clients", SummaryInput{
			Points:    map[string][]collector.PoolPoint{"light": light, "heavy": heavy},
			Decisions: decisions,
			Targets:   map[string]time.Duration{"light": 400 * time.Millisecond, "heavy": 2 * time.Second},
			Clients: map[string]ClientStats{
				"light": {Requests: 3605, Failed: 0, P95Ms: 120.4},
				"heavy": {Requests: 1802, Failed: 3, P95Ms: 1710},
			},
			ClientSource: "lbtune load records, per path",
		}},
		// Without client figures or targets: the balancer's counts and
		// p95, the heavy target from its decisions, none for light.
		{"balancer", SummaryInput{
			Points:    map[string][]collector.PoolPoint{"light": light, "heavy": heavy},
			Decisions: decisions,
		}},
		{"many-changes", SummaryInput{
			Points:    map[string][]collector.PoolPoint{"web": points(0, 601, 1, 10, func(int) int { return 2 })},
			Decisions: many,
		}},
		{"empty", SummaryInput{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Summarize(tc.in).WriteText(&b); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "summary-"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("summary differs from %s:\n%s\nwant:\n%s", golden, b.String(), want)
			}
			if lines := strings.Count(b.String(), "\n"); lines > 30 {
				t.Errorf("%d lines: more than one screen", lines)
			}
		})
	}
}

// TestSummarizeFigures checks the figures the golden files print against
// values worked out by hand.
func TestSummarizeFigures(t *testing.T) {
	pts := points(0, 361, 10, 100, func(i int) int {
		if i > 60 && i <= 300 {
			return 4
		}
		return 2
	})
	s := Summarize(SummaryInput{Points: map[string][]collector.PoolPoint{"light": pts},
		Decisions: []agent.Decision{
			dec(55*time.Second, "light", "agent", 4, agent.OutcomeApplied, nil),
			dec(300*time.Second, "light", "agent", 2, agent.OutcomeApplied, nil),
			dec(310*time.Second, "light", "agent", 0, agent.OutcomeNoop, nil),
		}})
	if len(s.Pools) != 1 || s.Duration != 6*time.Minute || !s.Start.Equal(t0) {
		t.Fatalf("summary %+v", s)
	}
	p := s.Pools[0]
	// 60 s at 2 + 240 s at 4 + 60 s at 2 = 1200 server-seconds.
	if math.Abs(p.ServerMinutes-20) > 1e-9 || p.Requests != 3600 || p.P95Ms != 100 || p.MinServers != 2 || p.MaxServers != 4 {
		t.Errorf("server-min %v, requests %v, p95 %v, servers %d..%d; want 20, 3600, 100, 2..4", p.ServerMinutes, p.Requests, p.P95Ms, p.MinServers, p.MaxServers)
	}
	want := []ScaleChange{{At: 55 * time.Second, From: 2, To: 4, Policy: "agent"}, {At: 300 * time.Second, From: 4, To: 2, Policy: "agent"}}
	if len(p.Changes) != 2 || p.Changes[0] != want[0] || p.Changes[1] != want[1] {
		t.Errorf("changes %+v, want %+v", p.Changes, want)
	}
	if got := p.Decisions["agent"]; got[agent.OutcomeApplied] != 2 || got[agent.OutcomeNoop] != 1 {
		t.Errorf("decisions %v", p.Decisions)
	}
}

// writeRecords writes recs in format f.
func writeRecords(t *testing.T, f loadgen.Format, recs []loadgen.Record) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := loadgen.NewRecordWriter(&b, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReadClientStats groups records by the first path segment and
// counts failures as lbtune load does, in both record formats.
func TestReadClientStats(t *testing.T) {
	var recs []loadgen.Record
	// light: latencies 1..100 ms, the last two failed (a 503, a timeout).
	for i := 1; i <= 100; i++ {
		r := loadgen.Record{Time: t0, Target: "http://127.0.0.1:8080/light", Status: 200, LatencyMs: float64(i)}
		switch i {
		case 99:
			r.Status = 503
		case 100:
			r.Status, r.Error = 0, "context deadline exceeded"
		}
		recs = append(recs, r)
	}
	recs = append(recs,
		loadgen.Record{Time: t0, Target: "http://127.0.0.1:8080/heavy/job?x=1", Status: 200, LatencyMs: 700},
		loadgen.Record{Time: t0, Target: "/heavy", Status: 200, LatencyMs: 300},
		loadgen.Record{Time: t0, Target: "http://127.0.0.1:8080", Status: 200, LatencyMs: 5},
	)
	want := map[string]ClientStats{
		"light": {Requests: 100, Failed: 2, P95Ms: 95},
		"heavy": {Requests: 2, Failed: 0, P95Ms: 700},
		"":      {Requests: 1, Failed: 0, P95Ms: 5},
	}
	for _, f := range []loadgen.Format{loadgen.CSV, loadgen.JSONL} {
		t.Run(string(f), func(t *testing.T) {
			got, err := ReadClientStats(bytes.NewReader(writeRecords(t, f, recs)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("pools %v, want %v", got, want)
			}
			for pool, w := range want {
				g := got[pool]
				if g.Requests != w.Requests || g.Failed != w.Failed || g.P95Ms != w.P95Ms || len(g.done) != w.Requests {
					t.Errorf("pool %q: %+v, want %+v", pool, got[pool], w)
				}
			}
		})
	}
	if _, err := ReadClientStats(strings.NewReader("{not json\n")); err == nil {
		t.Error("malformed records: no error")
	}
}

// FuzzReadClientStats: any input gives an error or figures that add up:
// no negative count, failures within requests, a p95 only with requests.
func FuzzReadClientStats(f *testing.F) {
	f.Add([]byte("time,target,status,latency_ms,bytes,error,server,service_ms\n2026-12-03T08:00:00Z,http://h/light,200,1.5,10,,light-1,1.0\n"))
	f.Add([]byte(`{"time":"2026-12-03T08:00:00Z","target":"http://h/heavy","status":0,"latency_ms":10000,"bytes":0,"error":"timeout"}` + "\n"))
	f.Add([]byte(`{"target":"%zz/x","latency_ms":-1}` + "\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ReadClientStats(bytes.NewReader(data))
		if err != nil {
			return
		}
		for pool, s := range got {
			if s.Requests <= 0 || s.Failed < 0 || s.Failed > s.Requests {
				t.Fatalf("pool %q: %+v", pool, s)
			}
		}
	})
}

// TestSummaryClientView: the clients' p95 over the balancer's intervals is
// the request-weighted mean of each interval's p95 (of the requests that
// ended in it), not the p95 of the whole run, and skips intervals the
// balancer had no p95 for; WriteText shows it beside lbtune's.
func TestSummaryClientView(t *testing.T) {
	iv := 5 * time.Second
	pts := []collector.PoolPoint{{Time: t0, Servers: 2}}
	// Four intervals: lbtune's p95 100, 100, 0 (nothing served), 300;
	// in flight (active + queue) 3, 4, 0, 7.
	active, queue := []float64{2, 4, 0, 6}, []float64{1, 0, 0, 1}
	for i, p95 := range []float64{100, 100, 0, 300} {
		pts = append(pts, collector.PoolPoint{Time: t0.Add(time.Duration(i+1) * iv), Rate: 20, P95Ms: p95, Servers: 2, Active: active[i], Queue: queue[i]})
	}
	var recs []loadgen.Record
	add := func(interval int, n int, ms func(k int) float64) {
		for k := 0; k < n; k++ {
			// Sent inside the interval, ending 1 ms before its end at most.
			end := t0.Add(time.Duration(interval)*iv + iv/2)
			l := ms(k)
			recs = append(recs, loadgen.Record{Time: end.Add(-time.Duration(l * float64(time.Millisecond))), Target: "/light", Status: 200, LatencyMs: l})
		}
	}
	add(0, 100, func(k int) float64 { return float64(k + 1) })     // p95 95
	add(1, 100, func(k int) float64 { return float64(k+1) * 2 })   // p95 190
	add(2, 50, func(k int) float64 { return 1000 })                // skipped: lbtune had no p95
	add(3, 200, func(k int) float64 { return float64(k+1) * 1.5 }) // p95 285
	add(5, 10, func(k int) float64 { return 5000 })                // after the last point: skipped
	cs, err := ReadClientStats(bytes.NewReader(writeRecords(t, loadgen.CSV, recs)))
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(SummaryInput{Points: map[string][]collector.PoolPoint{"light": pts}, Clients: cs, ClientSource: "records"})
	p := s.Pools[0]
	want := (95*100 + 190*100 + 285*200) / 400.0
	if math.Abs(p.ClientIntervalP95Ms-want) > 1e-9 {
		t.Errorf("clients' interval p95 %v, want %v", p.ClientIntervalP95Ms, want)
	}
	if p.Client.P95Ms <= want {
		t.Errorf("the whole run's client p95 %v should exceed the interval mean %v here", p.Client.P95Ms, want)
	}
	// In flight: lbtune's (3+4+0+7)/4 over equal intervals; the clients'
	// the summed latencies of the requests inside (t0, t0+20s] (1..100 ms,
	// 2..200 ms, 50 x 1000 ms, 1.5..300 ms; the last 10 end after it) over
	// 20 s.
	if math.Abs(p.InFlight-3.5) > 1e-9 {
		t.Errorf("lbtune in flight %v, want 3.5", p.InFlight)
	}
	wantClients := (5050 + 10100 + 50000 + 30150) / 20000.0
	if math.Abs(p.ClientInFlight-wantClients) > 1e-9 {
		t.Errorf("clients in flight %v, want %v", p.ClientInFlight, wantClients)
	}
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	ratio := fmt.Sprintf("%.2f", p.P95Ms/want)
	if !strings.Contains(b.String(), "p95 as lbtune saw it") || !strings.Contains(b.String(), ratio) {
		t.Errorf("summary lacks the client view (ratio %s):\n%s", ratio, b.String())
	}
	if r := fmt.Sprintf("%.2f", 3.5/wantClients); !strings.Contains(b.String(), "requests in flight as lbtune saw them") || !strings.Contains(b.String(), r) {
		t.Errorf("summary lacks the in-flight view (ratio %s):\n%s", r, b.String())
	}
	// Without client records there is no such section.
	b.Reset()
	s = Summarize(SummaryInput{Points: map[string][]collector.PoolPoint{"light": pts}})
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "p95 as lbtune saw it") || strings.Contains(b.String(), "in flight") || s.Pools[0].ClientIntervalP95Ms != 0 || s.Pools[0].ClientInFlight != 0 {
		t.Errorf("client view without client records:\n%s", b.String())
	}
}
