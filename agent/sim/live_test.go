package sim

import (
	"context"
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
