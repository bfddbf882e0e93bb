package eval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/model"
)

// Calibration of the simulator from a recording (`lbtune train --data`):
// each recorded pool becomes a one-pool Scenario whose arrivals are the
// pool's recorded request rate, step by step, and whose servers serve at
// the rate and with the variability the recording shows. The agent is then
// trained in those scenarios (FitConfig.Scenarios).

const (
	// CalibrationMinIntervals is the least number of recorded intervals
	// with traffic and a latency a pool needs to be calibrated.
	CalibrationMinIntervals = 60
	// CalibratedInterval is the decision interval of a calibrated scenario
	// (the daemon's default intervals.decide).
	CalibratedInterval = 15 * time.Second
	// CalibratedBootDelay is a calibrated pool's boot delay: a recording
	// does not show how long a new server takes, so this is assumed.
	CalibratedBootDelay = 10 * time.Second
)

// Reproduction summarises a pool's run, recorded or simulated, the same
// way: RateRPS is requests over the whole span; MeanMs and P95Ms are
// request-weighted means of the per-interval mean and p95 (as
// collector.PoolRates gives them).
type Reproduction struct {
	RateRPS float64 `json:"rate_rps"`
	MeanMs  float64 `json:"mean_ms"`
	P95Ms   float64 `json:"p95_ms"`
}

// PoolCalibration is what one recorded pool says about the simulator.
type PoolCalibration struct {
	// Recording and Pool name the recording (file) and the pool.
	Recording string `json:"recording"`
	Pool      string `json:"pool"`
	// Intervals counts the recorded intervals with traffic and a latency.
	Intervals int `json:"intervals"`
	// Servers is the median number of serving servers; MinServers and
	// MaxServers the range seen.
	Servers    int `json:"servers"`
	MinServers int `json:"min_servers"`
	MaxServers int `json:"max_servers"`
	// ServiceMs is the mean service time: the lower quartile of the
	// intervals' mean response times (queueing only adds to it).
	ServiceMs float64 `json:"service_ms"`
	// Slots is the requests one server serves at once: the fewest that
	// let the median server count carry the recording's 99th-percentile
	// rate at 90% utilisation (it carried it without failing).
	Slots int `json:"slots"`
	// ServiceRate is one server's service rate in requests/s:
	// Slots x 1000 / ServiceMs.
	ServiceRate float64 `json:"service_rate_rps"`
	// ServiceCV is the coefficient of variation of the service time: from
	// the median measured p95/mean (the pool's, else its servers') read
	// as a lognormal when the source measures percentiles (CVMeasured),
	// else 1 (exponential, assumed).
	ServiceCV  float64 `json:"service_cv"`
	CVMeasured bool    `json:"cv_measured"`
	// ArrivalMean and ArrivalPeak are the recorded request rate's mean and
	// peak (requests/s); Trace is that rate over time.
	ArrivalMean float64    `json:"arrival_mean_rps"`
	ArrivalPeak float64    `json:"arrival_peak_rps"`
	Trace       *sim.Trace `json:"-"`
	// Balancer is the balancing algorithm of the recorded source.
	Balancer sim.Balancer `json:"balancer"`
	// Target is the p95 target the policy is trained for:
	// DefaultTargetFactor mean service times (ServiceMs).
	Target time.Duration `json:"target_p95"`
	// Recorded summarises the recording; Simulated the calibrated
	// simulator on the same arrivals with Servers servers (Reproduce).
	Recorded  Reproduction  `json:"recorded"`
	Simulated *Reproduction `json:"simulated,omitempty"`
	// Skipped says why the pool could not be calibrated ("" when it was).
	Skipped string `json:"skipped,omitempty"`
}

// calInterval is one recorded interval of a pool.
type calInterval struct {
	from, to time.Time
	rate     float64
	servers  int
	meanMs   float64
	p95Ms    float64
	// tailRatio is the measured p95/mean (0 when not measured).
	tailRatio float64
}

// calTailMinRequests is the least number of requests in a window whose
// measured p95 calibrates the service time's variability.
const calTailMinRequests = 40

// calTailRatio is the interval's measured p95 / mean: the pool's own
// percentile where the source gives one, else the request-weighted mean
// of its servers' measured p95 / mean (each server's own mix); 0 when
// nothing is measured (an estimate from the mean says nothing). Only
// windows of at least calTailMinRequests requests count: a nearest-rank
// p95 of a few requests is biased low.
func calTailRatio(pr *collector.PoolRates, secs float64) float64 {
	if pr.SourceP95Ms != nil && pr.Requests()*secs >= calTailMinRequests {
		if m := pr.MeanMs(); m > 0 {
			return *pr.SourceP95Ms / m
		}
		return 0
	}
	var sum, w float64
	for i := range pr.Servers {
		s := &pr.Servers[i]
		if s.Gauges.P95Ms != nil && s.Requests*secs >= calTailMinRequests && s.MeanLatencyMs > 0 {
			sum += s.Requests * *s.Gauges.P95Ms / s.MeanLatencyMs
			w += s.Requests
		}
	}
	if w == 0 {
		return 0
	}
	return sum / w
}

// Calibrate calibrates every pool of one recording (snapshots of one
// source, any order). Pools with too little data are returned with
// Skipped set.
func Calibrate(name string, snaps []collector.Snapshot) []PoolCalibration {
	snaps = slices.Clone(snaps)
	slices.SortFunc(snaps, func(a, b collector.Snapshot) int { return a.Time.Compare(b.Time) })
	byPool := map[string][]calInterval{}
	var pools []string
	var source string
	for i := 1; i < len(snaps); i++ {
		r, err := collector.Rate(&snaps[i-1], &snaps[i])
		if err != nil {
			continue
		}
		source = snaps[i].Source
		for j := range r.Pools {
			pr := &r.Pools[j]
			if _, ok := byPool[pr.Name]; !ok {
				pools = append(pools, pr.Name)
			}
			byPool[pr.Name] = append(byPool[pr.Name], calInterval{from: r.Start, to: r.End, rate: pr.Requests(),
				servers: pr.ServersUp(), meanMs: pr.MeanMs(), p95Ms: pr.P95Ms(), tailRatio: calTailRatio(pr, r.Seconds())})
		}
	}
	slices.Sort(pools)
	out := make([]PoolCalibration, 0, len(pools))
	for _, pool := range pools {
		out = append(out, calibratePool(name, pool, source, byPool[pool]))
	}
	return out
}

// calibratePool calibrates one pool from its intervals (in time order).
func calibratePool(name, pool, source string, ivs []calInterval) PoolCalibration {
	c := PoolCalibration{Recording: name, Pool: pool, Balancer: sourceBalancer(source), ServiceCV: 1}
	var lats, rates, ratios []float64
	var servers []int
	var reqs, secs, meanSum, p95Sum float64
	tr := &sim.Trace{Name: name + ":" + pool}
	t0 := ivs[0].from
	for _, iv := range ivs {
		d := iv.to.Sub(iv.from).Seconds()
		if at := iv.from.Sub(t0).Seconds(); len(tr.Times) == 0 || at > tr.Times[len(tr.Times)-1] {
			tr.Times = append(tr.Times, at)
			tr.Rates = append(tr.Rates, iv.rate)
		}
		tr.End = iv.to.Sub(t0).Seconds()
		secs += d
		servers = append(servers, iv.servers)
		if iv.rate <= 0 || iv.meanMs <= 0 || iv.servers < 1 {
			continue
		}
		n := iv.rate * d
		reqs += n
		meanSum += n * iv.meanMs
		p95Sum += n * iv.p95Ms
		c.Intervals++
		lats = append(lats, iv.meanMs)
		rates = append(rates, iv.rate)
		if iv.tailRatio > 0 {
			ratios = append(ratios, iv.tailRatio)
		}
	}
	slices.Sort(servers)
	c.Servers, c.MinServers, c.MaxServers = servers[len(servers)/2], servers[0], servers[len(servers)-1]
	if secs > 0 {
		c.Recorded.RateRPS = reqs / secs
	}
	if reqs > 0 {
		c.Recorded.MeanMs, c.Recorded.P95Ms = meanSum/reqs, p95Sum/reqs
	}
	c.Trace = tr
	c.ArrivalMean, c.ArrivalPeak = tr.Mean(), tr.Peak()
	switch {
	case c.Intervals < CalibrationMinIntervals:
		c.Skipped = fmt.Sprintf("%d intervals with traffic, %d needed", c.Intervals, CalibrationMinIntervals)
		return c
	case c.Servers < 1:
		c.Skipped = "no serving server"
		return c
	}
	slices.Sort(lats)
	slices.Sort(rates)
	c.ServiceMs = lats[len(lats)/4]
	busy := rates[len(rates)*99/100]
	c.Slots = max(1, int(math.Ceil(busy*c.ServiceMs/1000/(0.9*float64(c.Servers)))))
	c.ServiceRate = float64(c.Slots) * 1000 / c.ServiceMs
	if len(ratios) >= 10 {
		c.ServiceCV, c.CVMeasured = math.Sqrt(lognormalSCV(median(ratios))), true
	}
	c.Target = time.Duration(DefaultTargetFactor * c.ServiceMs * float64(time.Millisecond))
	return c
}

// sourceBalancer is the balancing algorithm a source's balancer runs by
// default: HAProxy's roundrobin, NGINX's smooth weighted round robin.
func sourceBalancer(source string) sim.Balancer {
	if strings.HasPrefix(source, "haproxy") {
		return sim.HAProxyRR
	}
	return sim.SmoothWRR
}

// lognormalSCV is the squared coefficient of variation of the lognormal
// whose p95/mean is r: p95/mean = exp(1.645σ - σ²/2), solved for σ in
// (0, 1.645] (the ratio's maximum, 3.87), SCV = exp(σ²) - 1.
func lognormalSCV(r float64) float64 {
	const z = 1.6448536269514722
	f := func(s float64) float64 { return math.Exp(z*s - s*s/2) }
	lo, hi := 1e-3, z
	if r <= f(lo) {
		return math.Expm1(lo * lo)
	}
	if r >= f(hi) {
		return math.Expm1(hi * hi)
	}
	for range 60 {
		mid := (lo + hi) / 2
		if f(mid) < r {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Expm1(lo * lo)
}

// median is the median of v (v is sorted in place; 0 when empty).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// Scenario is the calibrated one-pool scenario: the recorded arrivals, the
// calibrated servers (Slots each, service times of mean ServiceMs with the
// calibrated variability) behind the recorded balancer, starting
// with the median server count; template min 1, max twice the most servers
// seen (at least 4), the calibrated target; decisions every
// CalibratedInterval.
func (c *PoolCalibration) Scenario(seed uint64) Scenario {
	svc := sim.Dist{Kind: "exp", Mean: c.ServiceMs / 1000}
	if scv := c.ServiceCV * c.ServiceCV; math.Abs(scv-1) > 0.05 {
		svc = sim.Dist{Kind: "lognormal", Mean: c.ServiceMs / 1000, SCV: scv}
	}
	return Scenario{
		Sim: sim.Config{Seed: seed, Trace: c.Trace, Pools: []sim.PoolConfig{{
			Name: c.Pool, Share: 1, Servers: c.Servers, Slots: c.Slots, Balancer: c.Balancer, BootDelay: CalibratedBootDelay,
			MaxQueue: DefaultMaxQueue, Classes: []sim.Class{{Name: c.Pool, Share: 1, Service: svc}},
		}}},
		Templates: []agent.Template{{Min: 1, Max: max(2*c.MaxServers, 4), TargetP95: c.Target, ServiceRate: c.ServiceRate}},
		Interval:  CalibratedInterval, Window: 8, C1: 1, C2: 1,
	}
}

// Reproduce runs the calibrated scenario on the recorded arrivals with
// the median server count held, scrapes it every second and summarises it
// as the recording is (Reproduction), so the two can be compared.
func (c *PoolCalibration) Reproduce(ctx context.Context, seed uint64) (Reproduction, error) {
	sc := c.Scenario(seed)
	s, err := sim.New(sc.Sim)
	if err != nil {
		return Reproduction{}, fmt.Errorf("reproduce %s: %w", c.Trace.Name, err)
	}
	prev, err := s.Scrape(ctx)
	if err != nil {
		return Reproduction{}, fmt.Errorf("reproduce %s: %w", c.Trace.Name, err)
	}
	var reqs, secs, meanSum, p95Sum float64
	for at := time.Second; at <= s.End(); at += time.Second {
		if err := ctx.Err(); err != nil {
			return Reproduction{}, err
		}
		s.Advance(at)
		cur, err := s.Scrape(ctx)
		if err != nil {
			return Reproduction{}, fmt.Errorf("reproduce %s: %w", c.Trace.Name, err)
		}
		r, err := collector.Rate(&prev, &cur)
		prev = cur
		if err != nil {
			continue
		}
		secs += r.Seconds()
		pr := r.Pool(c.Pool)
		if pr == nil {
			continue
		}
		n := pr.Requests() * r.Seconds()
		if m := pr.MeanMs(); n > 0 && m > 0 {
			reqs += n
			meanSum += n * m
			p95Sum += n * pr.P95Ms()
		}
	}
	var rep Reproduction
	if secs > 0 {
		rep.RateRPS = reqs / secs
	}
	if reqs > 0 {
		rep.MeanMs, rep.P95Ms = meanSum/reqs, p95Sum/reqs
	}
	return rep, nil
}

// UnitSamples are the recording's load states of the calibrated pool in
// the agent's pool units (agent.PoolUnits with the calibrated service rate
// and target), for the load-state model (FitConfig.UnitSamples).
func (c *PoolCalibration) UnitSamples(snaps []collector.Snapshot) []model.Features {
	var out []model.Features
	var units collector.PoolRates
	for i := 1; i < len(snaps); i++ {
		r, err := collector.Rate(&snaps[i-1], &snaps[i])
		if err != nil {
			continue
		}
		pr := r.Pool(c.Pool)
		if pr == nil || pr.Requests() <= 0 {
			continue
		}
		if units, err = agent.PoolUnits(pr, c.ServiceRate, c.Target, units); err != nil {
			continue
		}
		f := model.Extract(&units)
		f.Time = r.End
		out = append(out, f)
	}
	return out
}

// ErrTooLittleData is returned by FitRecorded when no recorded pool could
// be calibrated: there is no policy to store.
var ErrTooLittleData = errors.New("too little data to calibrate any pool")

// RecordedFitConfig sets FitRecorded: the recordings (one snapshot list per
// file, named) and the training budget (FitConfig's fields of the same
// names).
type RecordedFitConfig struct {
	Names     []string
	Snapshots [][]collector.Snapshot
	// Pool, when set, calibrates and trains for that pool only.
	Pool                    string
	Episodes, ModelEpisodes int
	Seed                    uint64
	Progress                func(done, total int)
}

// RecordedFit is what FitRecorded produces: every pool's calibration (with
// its reproduction) and, unless there was too little data, the trained
// model and policy.
type RecordedFit struct {
	Calibrations []PoolCalibration
	Fit          FitResult
}

// FitRecorded calibrates the simulator from the recordings, checks each
// calibration by reproducing its recording, and trains the agent (Fit) in
// the calibrated scenarios, its load-state model on the recorded and
// simulated states in pool units, its weight values first from the
// recordings' logged weight changes (fitted Q iteration at the calibrated
// targets). Without any calibrated pool it returns the calibrations and
// ErrTooLittleData.
func FitRecorded(ctx context.Context, cfg RecordedFitConfig) (RecordedFit, error) {
	var out RecordedFit
	var fc FitConfig
	for i, snaps := range cfg.Snapshots {
		name := cfg.Names[i]
		rec := Recording{Name: name, Snapshots: snaps, Targets: map[string]time.Duration{}, ServiceRates: map[string]float64{}}
		for _, c := range Calibrate(name, snaps) {
			if cfg.Pool != "" && c.Pool != cfg.Pool {
				continue
			}
			if c.Skipped == "" {
				r, err := c.Reproduce(ctx, cfg.Seed)
				if err != nil {
					return out, err
				}
				c.Simulated = &r
				fc.Scenarios = append(fc.Scenarios, c.Scenario(cfg.Seed))
				fc.UnitSamples = append(fc.UnitSamples, c.UnitSamples(snaps)...)
				rec.Targets[c.Pool], rec.ServiceRates[c.Pool] = c.Target, c.ServiceRate
			}
			out.Calibrations = append(out.Calibrations, c)
		}
		if len(rec.Targets) > 0 {
			fc.Recordings = append(fc.Recordings, rec)
		}
	}
	if len(fc.Scenarios) == 0 {
		return out, ErrTooLittleData
	}
	fc.Episodes, fc.ModelEpisodes, fc.Seed, fc.Data, fc.Progress = cfg.Episodes, cfg.ModelEpisodes, cfg.Seed, cfg.Names, cfg.Progress
	res, err := Fit(ctx, fc)
	if err != nil {
		return out, err
	}
	out.Fit = res
	return out, nil
}
