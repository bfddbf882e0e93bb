package chart

import (
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// TestCharts checks the data that goes into each PNG: file names safe for
// any pool name, response time not drawn (a gap) for intervals without
// requests or without snapshots, and the target line across the chart.
func TestCharts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pt := func(s int, rate, mean float64) collector.PoolPoint {
		return collector.PoolPoint{Time: t0.Add(time.Duration(s) * time.Second), Rate: rate, MeanMs: mean, P95Ms: 2 * mean, Servers: 2}
	}
	// 1..4 served, 5..6 idle, 7..8 served, then 30 s without snapshots, 39..40 served.
	pts := []collector.PoolPoint{pt(1, 10, 20), pt(2, 10, 25), pt(3, 12, 30), pt(4, 9, 20), pt(5, 0, 0), pt(6, 0, 0),
		pt(7, 10, 22), pt(8, 11, 24), pt(39, 10, 21), pt(40, 10, 20)}
	tests := []struct {
		name      string
		h         History
		files     []string
		meanSegs  []int // points per segment of the "mean" series
		rateSegs  []int // of the request rate
		target    float64
		hasTarget bool
	}{
		{"gaps and template target", History{Pool: "::nogroups", Points: pts, Target: 500 * time.Millisecond},
			[]string{"nogroups-load.png", "nogroups-latency.png", "nogroups-servers.png"},
			[]int{4, 2, 2}, []int{8, 2}, 500, true},
		{"no target, decisions", History{Pool: "web/a b", Points: pts[:4], Metric: []MetricPoint{{t0, "p95_ms", 40}}},
			[]string{"web_a_b-load.png", "web_a_b-latency.png", "web_a_b-servers.png", "web_a_b-decision-metric.png"},
			[]int{4}, []int{4}, 0, false},
		{"idle only", History{Pool: "idle", Points: pts[4:6], Target: time.Second},
			[]string{"idle-load.png", "idle-latency.png", "idle-servers.png"},
			nil, []int{2}, 1000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := Charts(tc.h)
			if len(cs) != len(tc.files) {
				t.Fatalf("%d charts, want %d (%v)", len(cs), len(tc.files), tc.files)
			}
			last := tc.h.Points[len(tc.h.Points)-1].Time.Sub(tc.h.Points[0].Time).Seconds()
			for i, c := range cs {
				if c.XMax != last {
					t.Errorf("chart %s spans 0..%v, want 0..%v", c.File, c.XMax, last)
				}
				if c.File != tc.files[i] {
					t.Errorf("chart %d file %q, want %q", i, c.File, tc.files[i])
				}
			}
			segs := func(c Chart, name string) []int {
				for _, s := range c.Series {
					if s.Name == name {
						var n []int
						for _, seg := range s.Segments {
							n = append(n, len(seg))
							for _, p := range seg {
								if name == "mean" && p.Y == 0 {
									t.Errorf("mean drawn as 0 ms at x=%v", p.X)
								}
							}
						}
						return n
					}
				}
				t.Errorf("%s: no series %q", c.File, name)
				return nil
			}
			if got := segs(cs[1], "mean"); !equalInts(got, tc.meanSegs) {
				t.Errorf("mean segments %v, want %v", got, tc.meanSegs)
			}
			if got := segs(cs[0], "request rate (req/s)"); !equalInts(got, tc.rateSegs) {
				t.Errorf("rate segments %v, want %v", got, tc.rateSegs)
			}
			var target *Series
			for i, s := range cs[1].Series {
				if s.Dashed {
					target = &cs[1].Series[i]
				}
			}
			if (target != nil) != tc.hasTarget {
				t.Fatalf("target line present %v, want %v", target != nil, tc.hasTarget)
			}
			if target != nil {
				seg := target.Segments[0]
				last := tc.h.Points[len(tc.h.Points)-1].Time.Sub(tc.h.Points[0].Time).Seconds()
				if len(seg) != 2 || seg[0].Y != tc.target || seg[1].Y != tc.target || seg[0].X != 0 || seg[1].X != last {
					t.Errorf("target line %v, want %v ms from 0 to %v", seg, tc.target, last)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
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

// TestTickLabel checks the axis labels: no padded decimals, k and M
// beyond 10000.
func TestTickLabel(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {25, "25"}, {2500, "2500"}, {0.25, "0.25"}, {12.5, "12.5"}, {0.1 + 0.2, "0.3"},
		{25000, "25k"}, {12500, "12.5k"}, {1.5e6, "1.5M"}, {-40, "-40"}, {1e-12, "0"},
	} {
		if got := TickLabel(tc.v); got != tc.want {
			t.Errorf("TickLabel(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestFileName checks pool names become readable file names.
func TestFileName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web", "web"}, {"::nogroups", "nogroups"}, {"a/b", "a_b"}, {"..", "pool"}, {"", "pool"}, {"api-v2.x", "api-v2.x"},
	} {
		if got := FileName(tc.in); got != tc.want {
			t.Errorf("FileName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzFileName checks that any pool name (it comes from the balancer)
// gives a non-empty file name of safe characters that does not start with
// a dot.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{"web", "::nogroups", "../../etc/passwd", "", "é", "a b/c", ".hidden"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pool string) {
		got := FileName(pool)
		if got == "" || got[0] == '.' || got[0] == '_' {
			t.Fatalf("FileName(%q) = %q", pool, got)
		}
		for _, c := range got {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
				t.Fatalf("FileName(%q) = %q: unsafe %q", pool, got, c)
			}
		}
	})
}
