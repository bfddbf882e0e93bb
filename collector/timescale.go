package collector

import (
	"context"
	"math"
	"time"
)

// ScaledClock runs Scale times faster than the wall clock from Base: the
// clock of an experiment that replays a trace Scale times faster than it
// was recorded (lbtune ab). Base is the same on both clocks.
type ScaledClock struct {
	// Base is where both clocks agree.
	Base time.Time
	// Scale is seconds of this clock per wall second (> 0).
	Scale float64
	// Wall is the wall clock (time.Now when nil).
	Wall func() time.Time
}

// Now is the scaled time of the wall clock's now.
func (c *ScaledClock) Now() time.Time {
	wall := time.Now
	if c.Wall != nil {
		wall = c.Wall
	}
	return c.Map(wall())
}

// Map turns a wall time into scaled time.
func (c *ScaledClock) Map(t time.Time) time.Time {
	return c.Base.Add(time.Duration(float64(t.Sub(c.Base)) * c.Scale))
}

// TimeScaled is a Source whose snapshots are seen on a ScaledClock: each
// one re-stamped at its scaled time and every latency (sums, averages,
// percentiles) multiplied by the scale. Counters stay, so rates come out
// per scaled second. A pool served Scale times faster than its trace, and
// replayed Scale times faster, then reads as the trace itself: the same
// rates, latencies and time constants.
type TimeScaled struct {
	Source
	Clock *ScaledClock
}

// Scrape reads the wrapped source once and rescales the snapshot.
func (t *TimeScaled) Scrape(ctx context.Context) (Snapshot, error) {
	s, err := t.Source.Scrape(ctx)
	if err != nil {
		return s, err
	}
	s.Time = t.Clock.Map(s.Time)
	k := t.Clock.Scale
	scale := func(p *float64) *float64 {
		if p == nil {
			return nil
		}
		v := *p * k
		return &v
	}
	for i := range s.Pools {
		p := &s.Pools[i]
		p.P50Ms, p.P95Ms, p.P99Ms = scale(p.P50Ms), scale(p.P95Ms), scale(p.P99Ms)
		for j := range p.Servers {
			c, g := &p.Servers[j].Counters, &p.Servers[j].Gauges
			if v := float64(c.LatencySumMs) * k; v < math.MaxUint64/2 {
				c.LatencySumMs = uint64(v)
			}
			g.AvgResponseMs *= k
			g.QueueTimeMs *= k
			g.ConnectTimeMs *= k
			g.ResponseTimeMs *= k
			g.TotalTimeMs *= k
			g.P50Ms, g.P95Ms, g.P99Ms = scale(g.P50Ms), scale(g.P95Ms), scale(g.P99Ms)
		}
	}
	return s, nil
}
