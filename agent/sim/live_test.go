package sim

import (
	"context"
	"github.com/lbtune/lbtune/collector"
	"math"
	"testing"
	"time"
)

// TestLive drives a Live simulation with a fake wall clock: its clock runs
// Speedup times faster from Elapsed, snapshots carry that clock, and load
// phases are reported once each as the trace enters them (a resumed
// simulation does not report the phase it resumes in again).
func TestLive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := Synthetic("web", []Phase{{Duration: time.Minute, RPS: 2}, {Duration: time.Minute, RPS: 8}, {Duration: time.Minute, RPS: 8}, {Duration: time.Minute, RPS: 3}}, nil)
	tests := []struct {
		name    string
		elapsed time.Duration
		// steps are wall-clock advances; want the phase rates reported
		// after each.
		steps []time.Duration
		want  [][]float64
	}{
		{"fresh", 0, []time.Duration{0, 4 * time.Second, 2 * time.Second, 4 * time.Second, 6 * time.Second},
			[][]float64{{2}, nil, {8}, nil, {3}}},
		{"resumed in the second phase", 90 * time.Second, []time.Duration{0, 10 * time.Second},
			[][]float64{nil, {3}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wall := t0
			var got []float64
			l, err := NewLive(LiveConfig{
				Sim: Config{Start: t0, Seed: 1, Trace: tr, Pools: []PoolConfig{{Name: "web", Servers: 2,
					Classes: []Class{{Name: "request", Share: 1, Service: Dist{Kind: "exp", Mean: 0.05}}}}}},
				Speedup: 12, Elapsed: tc.elapsed, Wall: func() time.Time { return wall },
				OnPhase: func(_ time.Time, rps float64) { got = append(got, rps) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if l.String() != "sim:web" || l.ServiceRate() != 20 {
				t.Errorf("String %q ServiceRate %v, want sim:web and 20/s", l, l.ServiceRate())
			}
			var waited time.Duration
			for i, step := range tc.steps {
				wall = wall.Add(step)
				waited += step
				got = nil
				l.reportPhase()
				if !equalRates(got, tc.want[i]) {
					t.Errorf("step %d: phases %v, want %v", i, got, tc.want[i])
				}
				want := tc.elapsed + 12*waited
				if l.Elapsed() != want || !l.Now().Equal(t0.Add(want)) {
					t.Errorf("step %d: elapsed %v now %v, want %v", i, l.Elapsed(), l.Now(), want)
				}
				snap, err := l.Scrape(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !snap.Time.Equal(t0.Add(want)) {
					t.Errorf("step %d: snapshot at %v, want %v", i, snap.Time, t0.Add(want))
				}
			}
		})
	}
	if _, err := NewLive(LiveConfig{Sim: Config{Trace: tr, Pools: []PoolConfig{{Name: "web", Servers: 1}}}}); err == nil {
		t.Error("NewLive with speedup 0: no error")
	}
	// Values that would stall the simulator (an arrival clock that never
	// advances) or its clock are refused.
	for _, bad := range []struct {
		name    string
		speedup float64
		tr      *Trace
	}{
		{"speedup NaN", math.NaN(), tr},
		{"speedup +Inf", math.Inf(1), tr},
		{"rate NaN", 1, tr.Scaled(math.NaN())},
		{"rate +Inf", 1, tr.Scaled(math.Inf(1))},
	} {
		if _, err := NewLive(LiveConfig{Sim: Config{Trace: bad.tr, Pools: []PoolConfig{{Name: "web", Servers: 1}}}, Speedup: bad.speedup}); err == nil {
			t.Errorf("NewLive with %s: no error", bad.name)
		}
	}
}

func equalRates(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLiveResumeKeepsRates: a simulation resumed after a kill -9 (fast-
// forwarded with a different server count than it ran with) continues the
// stored counters: 20 kill/resume cycles of a 120 req/s trace give no
// counter reset and no interval rate far above the offered rate (before,
// the re-simulated counters went backwards: 87 resets and 1,512 req/s).
func TestLiveResumeKeepsRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := Synthetic("web", []Phase{{Duration: 2 * time.Hour, RPS: 120}}, nil)
	cfg := func(servers int) Config {
		return Config{Start: t0, Seed: 1, Trace: tr, Pools: []PoolConfig{{Name: "web", Servers: servers,
			Classes: []Class{{Name: "request", Share: 1, Service: Dist{Kind: "exp", Mean: 0.02}}}}}}
	}
	wall := t0
	clock := func() time.Time { return wall }
	var snaps []collector.Snapshot
	var elapsed time.Duration
	var last *collector.Snapshot
	for kill := range 20 {
		// Each run scales to a different size, as the tuner would have.
		l, err := NewLive(LiveConfig{Sim: cfg(4 + kill%3), Speedup: 1, Elapsed: elapsed, Wall: clock, Resume: last})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			wall = wall.Add(10 * time.Second)
			s, err := l.Scrape(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, s)
		}
		last = &snaps[len(snaps)-1]
		elapsed = l.Elapsed() + 5*time.Second // the restart margin
		wall = wall.Add(5 * time.Second)
	}
	resets, peak := 0, 0.0
	for i := 1; i < len(snaps); i++ {
		r, err := collector.Rate(&snaps[i-1], &snaps[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.Pools[0].Servers {
			if s.Reset && snaps[i-1].Pool("web").Server(s.Name) != nil {
				resets++
			}
		}
		peak = max(peak, r.Pools[0].Requests())
	}
	if resets > 0 || peak > 200 {
		t.Errorf("across 20 restarts: %d counter resets, peak %.0f req/s; want 0 and about 120", resets, peak)
	}
}
