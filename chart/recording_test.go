package chart

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/datasets"
)

// TestRecording loads a store holding pool web from two sources, its
// decisions and load events, and checks the pools it lists and the
// histories it builds.
func TestRecording(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lbtune.db")
	st, err := datasets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	other := snaps(1)
	for i := range other {
		other[i].Source = "vts+http://h/s"
	}
	if err := st.Append(append(snaps(4), other...)...); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range []agent.Decision{
		{Time: t0.Add(time.Second), Pool: "web", Metrics: map[string]float64{"target_ms": 250, "p95_ms": 90}},
		{Time: t0.Add(2 * time.Second), Pool: "web", Metrics: map[string]float64{"target_ms": 500, "p95_ms": 95}},
	} {
		b, _ := json.Marshal(d)
		if err := st.AppendRecord(datasets.BucketDecisions, d.Time, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []datasets.Event{
		{Time: t0, Kind: "load", Pool: "web", Value: 20},
		{Time: t0.Add(time.Second), Kind: "weight", Pool: "web", Value: 3},
		{Time: t0.Add(2 * time.Second), Kind: "load", Pool: "web", Value: 40, Detail: "peak"},
	} {
		if err := st.AppendEvent(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	rec, err := LoadRecording(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		pool       string
		target     time.Duration
		want       []PoolSource
		wantName   string // of the first history
		wantPoints int
		wantTarget time.Duration
	}{
		{"every pool", "", 0, []PoolSource{{"other", "test"}, {"other", "vts+http://h/s"}, {"web", "test"}, {"web", "vts+http://h/s"}},
			"other-test", 3, 0},
		{"web, target from the decisions", "web", 0, []PoolSource{{"web", "test"}, {"web", "vts+http://h/s"}}, "web-test", 3, 250 * time.Millisecond},
		{"web, target given", "web", time.Second, []PoolSource{{"web", "test"}, {"web", "vts+http://h/s"}}, "web-test", 3, time.Second},
		{"unknown pool", "nope", 0, nil, "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rec.Pools(tc.pool)
			if len(got) != len(tc.want) {
				t.Fatalf("Pools(%q) = %v, want %v", tc.pool, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("Pools(%q) = %v, want %v", tc.pool, got, tc.want)
				}
			}
			if len(got) == 0 {
				return
			}
			h := rec.History(got[0], tc.target)
			if h.Pool != tc.wantName || len(h.Points) != tc.wantPoints || h.Target != tc.wantTarget {
				t.Errorf("History(%v) = pool %q, %d points, target %v; want %q, %d, %v", got[0], h.Pool, len(h.Points), h.Target, tc.wantName, tc.wantPoints, tc.wantTarget)
			}
			if tc.pool == "web" && len(h.Metric) != 2 {
				t.Errorf("History(%v): %d metric points, want 2 (one per decision)", got[0], len(h.Metric))
			}
			if n := len(h.Phases); n != 2 || h.Phases[0].Label != "20 rps" || h.Phases[1].Label != "peak" || !h.Phases[0].End.Equal(t0.Add(2*time.Second)) {
				t.Errorf("phases %+v, want 20 rps until the peak", h.Phases)
			}
		})
	}
}
