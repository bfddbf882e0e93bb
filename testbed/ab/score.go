package ab

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

// scorer turns the load generator's records into the client-side score:
// per trace minute the p95 of completed requests (trace units) against
// the target, failures, and the whole run's mean and p95.
type scorer struct {
	plan    *Plan
	minutes map[int]*minute
	all     []float64
	failed  int
	n       int
}

type minute struct {
	lat    []float64
	failed int
}

func newScorer(plan *Plan) *scorer {
	return &scorer{plan: plan, minutes: map[int]*minute{}}
}

// failedRecord reports whether the client saw r fail: a transport error,
// no response, or a 5xx.
func failedRecord(r loadgen.Record) bool {
	return r.Error != "" || r.Status == 0 || r.Status >= 500
}

// add scores one record of a run that started at start.
func (s *scorer) add(start time.Time, r loadgen.Record) {
	s.n++
	idx := int(r.Time.Sub(start).Seconds() * s.plan.Speedup / 60)
	m := s.minutes[idx]
	if m == nil {
		m = &minute{}
		s.minutes[idx] = m
	}
	if failedRecord(r) {
		s.failed++
		m.failed++
		return
	}
	ms := r.LatencyMs * s.plan.RateFactor // trace units
	m.lat = append(m.lat, ms)
	s.all = append(s.all, ms)
}

// quantile is the q-quantile of xs (nearest rank); xs is sorted in place.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// result is the score so far, for policy.
func (s *scorer) result(policy string) Result {
	r := Result{Policy: policy, Requests: s.n, Failed: s.failed}
	target := float64(s.plan.Target) / float64(time.Millisecond)
	viol := 0
	for _, m := range s.minutes {
		if len(m.lat) == 0 && m.failed == 0 {
			continue
		}
		r.Minutes++
		if len(m.lat) == 0 || quantile(m.lat, 0.95) > target {
			viol++
		}
	}
	if r.Minutes > 0 {
		r.SLOViolationPct = 100 * float64(viol) / float64(r.Minutes)
	}
	if len(s.all) > 0 {
		sum := 0.0
		for _, v := range s.all {
			sum += v
		}
		r.MeanMs = sum / float64(len(s.all))
		r.P95Ms = quantile(s.all, 0.95)
	}
	return r
}

// sampler follows the pool's servers on the wall clock: powered servers
// (static, own, booting) integrated into server-seconds, and every change
// of the pool's size as an action, a reversal when it goes against the
// previous one within 5 trace minutes (the simulator's definition).
type sampler struct {
	plan               *Plan
	serverSeconds      float64
	actions, reversals int
	last               int
	lastDir            int
	lastAct            time.Time
}

func newSampler(plan *Plan) *sampler { return &sampler{plan: plan, last: -1} }

// counter is what the sampler needs of the daemon.
type counter interface {
	Servers(ctx context.Context, pool string) (actuator.Count, error)
}

// sampleEvery is the sampler's period.
const sampleEvery = 250 * time.Millisecond

func (s *sampler) run(ctx context.Context, d counter, start time.Time, progress func(float64)) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	prev := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c, err := d.Servers(ctx, poolName)
			if err != nil {
				prev = now
				continue
			}
			s.observe(now, now.Sub(prev), c)
			prev = now
			if progress != nil && s.plan.Wall > 0 {
				progress(min(now.Sub(start).Seconds()/s.plan.Wall.Seconds(), 1))
			}
		}
	}
}

// observe adds one sample taken dt after the previous one.
func (s *sampler) observe(now time.Time, dt time.Duration, c actuator.Count) {
	powered := c.Static + c.Own + c.Booting
	s.serverSeconds += float64(powered) * dt.Seconds()
	size := c.Serving() + c.Booting
	if s.last >= 0 && size != s.last {
		dir := 1
		if size < s.last {
			dir = -1
		}
		s.actions++
		window := time.Duration(float64(5*time.Minute) / s.plan.Speedup)
		if s.lastDir != 0 && dir != s.lastDir && now.Sub(s.lastAct) <= window {
			s.reversals++
		}
		s.lastDir, s.lastAct = dir, now
	}
	s.last = size
}

// serverHours is the integral in trace hours.
func (s *sampler) serverHours() float64 {
	return s.serverSeconds * s.plan.Speedup / 3600
}
