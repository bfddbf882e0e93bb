package collector

import (
	"context"
	"testing"
	"time"
)

type oneSnapshot Snapshot

func (o oneSnapshot) Scrape(context.Context) (Snapshot, error) {
	s := Snapshot(o)
	s.Pools = append([]Pool(nil), s.Pools...)
	for i := range s.Pools {
		s.Pools[i].Servers = append([]Server(nil), s.Pools[i].Servers...)
	}
	return s, nil
}
func (oneSnapshot) String() string { return "one" }

// TestTimeScaled: a snapshot taken 2 wall seconds after the base reads 20
// scaled seconds after it at scale 10, with every latency x10 and the
// counters unchanged.
func TestTimeScaled(t *testing.T) {
	base := time.Unix(1000, 0)
	p95 := 12.0
	src := oneSnapshot{Time: base.Add(2 * time.Second), Source: "one", Pools: []Pool{{Name: "web", P95Ms: &p95, Servers: []Server{{
		Name: "a", State: StateUp,
		Counters: Counters{Requests: 100, LatencySumMs: 500},
		Gauges:   Gauges{QueueTimeMs: 1, ConnectTimeMs: 2, ResponseTimeMs: 3, TotalTimeMs: 4, AvgResponseMs: 5, P95Ms: &p95},
	}}}}}
	ts := &TimeScaled{Source: src, Clock: &ScaledClock{Base: base, Scale: 10}}
	s, err := ts.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := base.Add(20 * time.Second); !s.Time.Equal(want) {
		t.Errorf("time %v, want %v", s.Time, want)
	}
	sv := s.Pools[0].Servers[0]
	if sv.Counters.Requests != 100 || sv.Counters.LatencySumMs != 5000 {
		t.Errorf("counters %+v", sv.Counters)
	}
	g := sv.Gauges
	if g.QueueTimeMs != 10 || g.ConnectTimeMs != 20 || g.ResponseTimeMs != 30 || g.TotalTimeMs != 40 || g.AvgResponseMs != 50 || *g.P95Ms != 120 {
		t.Errorf("gauges %+v", g)
	}
	if *s.Pools[0].P95Ms != 120 || p95 != 12 {
		t.Errorf("pool p95 %v (source's %v must stay 12)", *s.Pools[0].P95Ms, p95)
	}
	clk := &ScaledClock{Base: base, Scale: 10, Wall: func() time.Time { return base.Add(time.Minute) }}
	if got := clk.Now(); !got.Equal(base.Add(10 * time.Minute)) {
		t.Errorf("Now %v", got)
	}
}
