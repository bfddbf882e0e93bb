package loadgen

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/testbed/dist"
)

// simulate drives p the way vegeta does (one Pace call per hit, sleeping
// exactly the returned wait) and returns the arrival times.
func simulate(p *Pacer, limit time.Duration) []time.Duration {
	var arrivals []time.Duration
	var elapsed time.Duration
	for hits := uint64(0); ; hits++ {
		wait, stop := p.Pace(elapsed, hits)
		if stop {
			return arrivals
		}
		elapsed += wait
		if elapsed > limit {
			return arrivals
		}
		arrivals = append(arrivals, elapsed)
	}
}

func TestPacerRates(t *testing.T) {
	spike := Schedule{Phases: []Phase{
		{Duration: 5 * time.Second, Rate: 100, Dist: dist.Exponential},
		{Duration: 3 * time.Second, Rate: 1000, Dist: dist.Exponential},
		{Duration: 5 * time.Second, Rate: 100, Dist: dist.Exponential},
	}}
	tests := []struct {
		name    string
		sched   Schedule
		limit   time.Duration
		perSec  []float64 // expected arrivals per second
		tol     float64   // relative
		wantSCV float64   // inter-arrival SCV over the whole run (<0: skip)
		scvTol  float64
	}{
		{name: "fixed 200/s", sched: Constant(200, dist.Fixed, 3*time.Second), limit: 3 * time.Second,
			perSec: []float64{200, 200, 200}, tol: 0.01, wantSCV: 0, scvTol: 1e-6},
		{name: "exponential 500/s", sched: Constant(500, dist.Exponential, 4*time.Second), limit: 4 * time.Second,
			perSec: []float64{500, 500, 500, 500}, tol: 0.15, wantSCV: 1, scvTol: 0.15},
		{name: "normal 300/s", sched: Constant(300, dist.Normal, 3*time.Second), limit: 3 * time.Second,
			perSec: []float64{300, 300, 300}, tol: 0.05, wantSCV: 1.0 / 16, scvTol: 0.03},
		{name: "zipf 1000/s", sched: Constant(1000, dist.Zipf, 20*time.Second), limit: 20 * time.Second,
			wantSCV: 5, scvTol: 100}, // heavy tailed: only the mean rate is checked below
		// A 3 s spike to 1000/s between two 100/s periods shows in seconds 5-7.
		{name: "spike", sched: spike, limit: 13 * time.Second,
			perSec: []float64{100, 100, 100, 100, 100, 1000, 1000, 1000, 100, 100, 100, 100, 100}, tol: 0.35, wantSCV: -1},
		{name: "idle phase", sched: Schedule{Phases: []Phase{{Duration: time.Second, Rate: 0, Dist: dist.Fixed}, {Duration: time.Second, Rate: 100, Dist: dist.Fixed}}},
			limit: 2 * time.Second, perSec: []float64{0, 100}, tol: 0.02, wantSCV: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arr := simulate(NewPacer(tc.sched, rand.NewPCG(7, 7)), tc.limit)
			if want := tc.sched.Expected(tc.limit); math.Abs(float64(len(arr))-want)/want > 0.1 {
				t.Errorf("%d arrivals, want about %.0f", len(arr), want)
			}
			counts := make([]float64, int(tc.limit/time.Second))
			for _, a := range arr {
				if i := int(a / time.Second); i < len(counts) {
					counts[i]++
				}
			}
			for i, want := range tc.perSec {
				if math.Abs(counts[i]-want) > tc.tol*want+1 {
					t.Errorf("second %d: %v arrivals, want %v ± %.0f%%", i, counts[i], want, tc.tol*100)
				}
			}
			if tc.wantSCV >= 0 {
				gaps := make([]float64, 0, len(arr))
				for i := 1; i < len(arr); i++ {
					gaps = append(gaps, float64(arr[i]-arr[i-1]))
				}
				if scv := dist.Describe(gaps).SCV; math.Abs(scv-tc.wantSCV) > tc.scvTol {
					t.Errorf("inter-arrival SCV %.3f, want %.3f ± %.3f", scv, tc.wantSCV, tc.scvTol)
				}
			}
		})
	}
}

func TestParsePhases(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    []Phase
		wantErr string
	}{
		{name: "yaml", doc: "- {duration: 10s, rate: 50}\n- {duration: 3s, rate: 500, distribution: fixed}\n",
			want: []Phase{{10 * time.Second, 50, dist.Exponential}, {3 * time.Second, 500, dist.Fixed}}},
		{name: "json", doc: `[{"duration":"1m","rate":5,"distribution":"zipf"}]`,
			want: []Phase{{time.Minute, 5, dist.Zipf}}},
		{name: "unknown key", doc: "- {duration: 1s, rate: 1, burst: 3}\n", wantErr: "burst"},
		{name: "bad duration", doc: "- {duration: soon, rate: 1}\n", wantErr: "duration"},
		{name: "negative rate", doc: "- {duration: 1s, rate: -1}\n", wantErr: "rate"},
		{name: "bad distribution", doc: "- {duration: 1s, rate: 1, distribution: pareto}\n", wantErr: "pareto"},
		{name: "empty", doc: "[]", wantErr: "no phases"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParsePhases([]byte(tc.doc), dist.Exponential)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Phases) != len(tc.want) {
				t.Fatalf("phases %+v, want %+v", s.Phases, tc.want)
			}
			for i := range tc.want {
				if s.Phases[i] != tc.want[i] {
					t.Fatalf("phase %d = %+v, want %+v", i, s.Phases[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseTrace(t *testing.T) {
	tests := []struct {
		name     string
		csv      string
		speedup  float64
		scale    float64
		wantLen  time.Duration
		wantRate []float64
		wantErr  bool
	}{
		{name: "per second", csv: "t,rps\n0,10\n1,20\n2,0\n", speedup: 1, scale: 1, wantLen: 3 * time.Second, wantRate: []float64{10, 20, 0}},
		{name: "per minute sped up and scaled", csv: "t,rps\n0,1.5000\n60,3.0000\n", speedup: 60, scale: 10, wantLen: 2 * time.Second, wantRate: []float64{15, 30}},
		{name: "bad header", csv: "time,rate\n0,1\n", speedup: 1, scale: 1, wantErr: true},
		{name: "negative", csv: "t,rps\n0,-1\n", speedup: 1, scale: 1, wantErr: true},
		{name: "not increasing", csv: "t,rps\n1,1\n0,1\n", speedup: 1, scale: 1, wantErr: true},
		{name: "garbage", csv: "t,rps\n0,x\n", speedup: 1, scale: 1, wantErr: true},
		{name: "no rows", csv: "t,rps\n", speedup: 1, scale: 1, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseTrace(strings.NewReader(tc.csv), tc.speedup, tc.scale, dist.Exponential)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if s.Length() != tc.wantLen {
				t.Errorf("length %v, want %v", s.Length(), tc.wantLen)
			}
			for i, r := range tc.wantRate {
				if math.Abs(s.Phases[i].Rate-r) > 1e-9 {
					t.Errorf("phase %d rate %v, want %v", i, s.Phases[i].Rate, r)
				}
			}
		})
	}
}

func TestParseTraceSharedFile(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "traces", "nasa-1995-07-13-per-sec.csv")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("shared trace missing (the repository's ../shared must sit beside it): %v", err)
	}
	s, err := LoadTrace(path, 1, 1, dist.Exponential)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Phases) != 86400 || s.Length() != 24*time.Hour {
		t.Fatalf("%d phases over %v, want 86400 over 24h", len(s.Phases), s.Length())
	}
}

func TestParseMix(t *testing.T) {
	ws, err := ParseMix("/light=60, /medium=30,/heavy=10", "http://127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 || ws[0].URL != "http://127.0.0.1:9/light" || ws[2].Weight != 10 {
		t.Fatalf("ParseMix = %+v", ws)
	}
	m, err := NewMix(ws, rand.NewPCG(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range 10000 {
		counts[m.Pick()]++
	}
	for _, w := range ws {
		if got := float64(counts[w.URL]) / 100; math.Abs(got-w.Weight) > 2 {
			t.Errorf("%s picked %.1f%%, want %v%%", w.URL, got, w.Weight)
		}
	}
	for _, bad := range []struct{ mix, base string }{{"/a", "http://x:1"}, {"/a=-1", "http://x:1"}, {"/a=1", "nohost"}, {"", "http://x:1"}} {
		if _, err := ParseMix(bad.mix, bad.base); err == nil {
			t.Errorf("ParseMix(%q, %q) accepted", bad.mix, bad.base)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	recs := []Record{
		{Time: time.Date(2026, 11, 28, 9, 0, 0, 123456789, time.UTC), Target: "http://h/light", Status: 200, LatencyMs: 1.5, Bytes: 30, Server: "s1", ServiceMs: 1.2},
		{Time: time.Date(2026, 11, 28, 9, 0, 1, 0, time.UTC), Target: "http://h/heavy", Status: 0, LatencyMs: 10000, Error: `Get "http://h/heavy": dial tcp: connection refused, "quoted"`},
	}
	for _, f := range []Format{CSV, JSONL} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			rw, err := NewRecordWriter(&buf, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if err := rw.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := rw.Flush(); err != nil {
				t.Fatal(err)
			}
			var got []Record
			if err := ReadRecords(&buf, func(r Record) error { got = append(got, r); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) {
				t.Fatalf("read %d records, want %d", len(got), len(recs))
			}
			for i := range recs {
				if !got[i].Time.Equal(recs[i].Time) || got[i].Target != recs[i].Target || got[i].Status != recs[i].Status ||
					got[i].LatencyMs != recs[i].LatencyMs || got[i].Error != recs[i].Error || got[i].Server != recs[i].Server || got[i].ServiceMs != recs[i].ServiceMs {
					t.Fatalf("record %d = %+v, want %+v", i, got[i], recs[i])
				}
			}
		})
	}
}

func TestFailureKind(t *testing.T) {
	tests := []struct {
		status int
		err    string
		want   string
	}{
		{200, "", ""},
		{302, "", ""},
		{503, "503 Service Unavailable", KindHTTP5xx},
		{404, "404 Not Found", KindHTTP4xx},
		{0, `Get "http://x": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, KindTimeout},
		{0, "dial tcp 127.0.0.1:1: connect: connection refused", KindRefused},
		{0, "read tcp: connection reset by peer", KindReset},
		{0, "something odd", KindConnection},
	}
	for _, tc := range tests {
		if got := FailureKind(tc.status, tc.err); got != tc.want {
			t.Errorf("FailureKind(%d, %q) = %q, want %q", tc.status, tc.err, got, tc.want)
		}
	}
}

// TestRunSpike runs real load against an httptest server: 1 s at 50/s, a
// 3 s spike at 300/s, 1 s at 50/s; the per-second series shows the spike.
func TestRunSpike(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Lbtune-Server", "s1")
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer ts.Close()
	sched := Schedule{Phases: []Phase{
		{Duration: time.Second, Rate: 50, Dist: dist.Exponential},
		{Duration: 3 * time.Second, Rate: 300, Dist: dist.Exponential},
		{Duration: time.Second, Rate: 50, Dist: dist.Exponential},
	}}
	var n int
	sum, err := Run(context.Background(), Config{
		Targets:  []Weighted{{URL: ts.URL + "/ok", Weight: 9}, {URL: ts.URL + "/fail", Weight: 1}},
		Schedule: sched, Duration: 5 * time.Second, Seed: 3,
		Records: func(Record) error { n++; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != sum.Requests {
		t.Errorf("%d records written, summary counts %d", n, sum.Requests)
	}
	if len(sum.Series) != 5 {
		t.Fatalf("series has %d seconds, want 5: %+v", len(sum.Series), sum.Series)
	}
	for _, s := range sum.Series[1:4] {
		if s.Sent < 150 || s.Requested != 300 {
			t.Errorf("spike second %d: sent %d (requested %v), want about 300", s.T, s.Sent, s.Requested)
		}
	}
	for _, i := range []int{0, 4} {
		if s := sum.Series[i]; s.Sent > 120 {
			t.Errorf("quiet second %d: sent %d, want about 50", i, s.Sent)
		}
	}
	if want := 1000.0 / 5; math.Abs(sum.RateRequested-want) > 1e-6 {
		t.Errorf("rate_requested %v, want %v", sum.RateRequested, want)
	}
	if r := sum.RateAchieved / sum.RateRequested; r < 0.85 || r > 1.15 {
		t.Errorf("achieved/requested = %.3f", r)
	}
	// One request in ten goes to /fail (503).
	if f := float64(sum.FailuresByKind[KindHTTP5xx]) / float64(sum.Requests); f < 0.05 || f > 0.15 || sum.Failures != sum.FailuresByKind[KindHTTP5xx] {
		t.Errorf("failures %d by kind %v of %d", sum.Failures, sum.FailuresByKind, sum.Requests)
	}
	if sum.P50Ms <= 0 || sum.P50Ms > sum.P99Ms || sum.P99Ms > sum.MaxMs || sum.MinMs > sum.P50Ms {
		t.Errorf("percentiles out of order: %+v", sum)
	}
}

func TestRunInterrupted(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	sum, err := Run(ctx, Config{Targets: []Weighted{{URL: ts.URL, Weight: 1}}, Schedule: Constant(100, dist.Fixed, time.Minute), Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second || !sum.Interrupted {
		t.Fatalf("run not interrupted promptly: %v, interrupted=%v", time.Since(start), sum.Interrupted)
	}
	if sum.Requests < 10 || sum.Requests > 80 || math.Abs(sum.DurationS-0.5) > 0.3 {
		t.Fatalf("%d requests in %.2fs, want about 50 in 0.5s", sum.Requests, sum.DurationS)
	}
}

func TestRunNeedsDuration(t *testing.T) {
	if _, err := Run(context.Background(), Config{}); err != ErrNoDuration {
		t.Fatalf("err = %v, want ErrNoDuration", err)
	}
}
