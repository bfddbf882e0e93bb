package ab

import (
	"context"
	"encoding/csv"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/agent/sim"
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

// minute is trace minute i's client-side p95 (trace units; NaN
// without a completed request), requests completed and failed.
func (s *scorer) minute(i int) (p95 float64, requests, failed int) {
	m := s.minutes[i]
	if m == nil {
		return math.NaN(), 0, 0
	}
	return quantile(m.lat, 0.95), len(m.lat), m.failed
}

// lastMinute is the highest trace minute with a record (-1: none).
func (s *scorer) lastMinute() int {
	last := -1
	for i := range s.minutes {
		last = max(last, i)
	}
	return last
}

// Minute is one trace minute of a real run beside the simulator's: the
// per-minute view behind the violation figures (`lbtune ab --out`
// writes it as POLICY/minutes.csv).
type Minute struct {
	Minute int
	// Requests completed and Failed at the client in the minute (by send
	// time), their p95 in trace units (NaN: none completed), and the
	// pool's powered servers at the minute's end.
	Requests, Failed int
	P95Ms            float64
	Servers          int
	// The simulator's minute (Servers: powered at its end).
	Sim sim.MinuteTruth
}

// minutes joins the real run's minutes with the simulator's.
func minutes(sc *scorer, samp *sampler, simMins []sim.MinuteTruth) []Minute {
	n := max(sc.lastMinute()+1, len(simMins))
	out := make([]Minute, n)
	servers := -1
	for i := range out {
		p95, req, failed := sc.minute(i)
		if v, ok := samp.minuteServers[i]; ok {
			servers = v
		}
		out[i] = Minute{Minute: i, Requests: req, Failed: failed, P95Ms: p95, Servers: servers}
		if i < len(simMins) {
			out[i].Sim = simMins[i]
		}
	}
	return out
}

// WriteMinutes writes ms as CSV with a header: minute, the real run's
// requests, failed, p95_ms (empty without a completed request) and
// servers, then the simulator's (sim_*).
func WriteMinutes(w io.Writer, ms []Minute) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"minute", "requests", "failed", "p95_ms", "servers", "sim_requests", "sim_failed", "sim_p95_ms", "sim_servers"})
	f := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	simP95 := func(m sim.MinuteTruth) string {
		if m.Requests == 0 {
			return ""
		}
		return f(m.P95Ms)
	}
	for _, m := range ms {
		_ = cw.Write([]string{strconv.Itoa(m.Minute), strconv.Itoa(m.Requests), strconv.Itoa(m.Failed), f(m.P95Ms), strconv.Itoa(m.Servers),
			strconv.Itoa(m.Sim.Requests), strconv.Itoa(m.Sim.Failed), simP95(m.Sim), strconv.Itoa(m.Sim.Servers)})
	}
	cw.Flush()
	return cw.Error()
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
	// start is the run's start; minuteServers the powered servers at
	// the last sample of each trace minute since then.
	start         time.Time
	minuteServers map[int]int
}

func newSampler(plan *Plan, start time.Time) *sampler {
	return &sampler{plan: plan, last: -1, start: start, minuteServers: map[int]int{}}
}

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
	if !now.Before(s.start) {
		s.minuteServers[int(now.Sub(s.start).Seconds()*s.plan.Speedup/60)] = powered
	}
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
