package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/lbtune/lbtune/testbed/dist"
)

// Config is one load run.
type Config struct {
	// Targets and their shares of the requests.
	Targets []Weighted
	// Schedule is the rate plan; the run stops when it ends or at Duration.
	Schedule Schedule
	// Duration bounds the run (required).
	Duration time.Duration
	// Timeout bounds each request.
	Timeout time.Duration
	// Workers is vegeta's initial worker count (it adds more when all are busy).
	Workers uint64
	// MaxWorkers caps concurrent requests in flight (0 = unlimited: open loop).
	MaxWorkers uint64
	// Seed makes target choice and inter-arrival draws replayable.
	Seed uint64
	// Records, when set, receives every request's Record in completion order.
	Records func(Record) error
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Second is one second of the per-second series.
type Second struct {
	// T is seconds since the start of the run.
	T int `json:"t"`
	// Sent is how many requests were sent in this second: the achieved rate.
	Sent int `json:"sent"`
	// Requested is the scheduled mean rate at the start of this second.
	Requested float64 `json:"requested"`
	// Failures is how many of those requests failed.
	Failures int `json:"failures"`
	// MeanMs is the mean latency of those requests.
	MeanMs float64 `json:"mean_ms"`
}

// Summary is the outcome of a run; its JSON is the output of lbtune load --json.
type Summary struct {
	Requests        int            `json:"requests"`
	Successes       int            `json:"successes"`
	Failures        int            `json:"failures"`
	FailuresByKind  map[string]int `json:"failures_by_kind"`
	StatusCodes     map[string]int `json:"status_codes"`
	DurationS       float64        `json:"duration_s"`
	RateRequested   float64        `json:"rate_requested"`
	RateAchieved    float64        `json:"rate_achieved"`
	Throughput      float64        `json:"throughput"`
	Interrupted     bool           `json:"interrupted"`
	MeanMs          float64        `json:"mean_ms"`
	VarianceMs2     float64        `json:"variance_ms2"`
	MinMs           float64        `json:"min_ms"`
	MaxMs           float64        `json:"max_ms"`
	SCV             float64        `json:"scv"`
	P50Ms           float64        `json:"p50_ms"`
	P90Ms           float64        `json:"p90_ms"`
	P95Ms           float64        `json:"p95_ms"`
	P99Ms           float64        `json:"p99_ms"`
	P999Ms          float64        `json:"p999_ms"`
	BytesIn         uint64         `json:"bytes_in"`
	InterArrivalSCV float64        `json:"inter_arrival_scv"`
	Series          []Second       `json:"series"`
}

// Failure kinds, the keys of Summary.FailuresByKind.
const (
	KindHTTP5xx    = "http_5xx"
	KindHTTP4xx    = "http_4xx"
	KindTimeout    = "timeout"
	KindRefused    = "connection_refused"
	KindReset      = "connection_reset"
	KindConnection = "connection_error"
)

// FailureKind classifies a request outcome: "" for success, else one of the
// Kind constants.
func FailureKind(status int, errText string) string {
	switch {
	case status >= 500:
		return KindHTTP5xx
	case status >= 400:
		return KindHTTP4xx
	case status >= 200 && errText == "":
		return ""
	case status >= 200 && status < 400:
		return ""
	}
	e := strings.ToLower(errText)
	switch {
	case strings.Contains(e, "timeout") || strings.Contains(e, "deadline exceeded"):
		return KindTimeout
	case strings.Contains(e, "connection refused"):
		return KindRefused
	case strings.Contains(e, "connection reset") || strings.Contains(e, "broken pipe") || strings.Contains(e, "eof"):
		return KindReset
	}
	return KindConnection
}

// ErrNoDuration is returned by Run when Config.Duration is not positive.
var ErrNoDuration = errors.New("duration is required")

// Run sends the load described by cfg and returns its Summary. It stops at
// Duration, at the end of the schedule, or when ctx is done (Interrupted);
// in every case it waits for the requests in flight and summarises them.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if cfg.Duration <= 0 {
		return Summary{}, ErrNoDuration
	}
	if err := cfg.Schedule.Validate(); err != nil {
		return Summary{}, fmt.Errorf("schedule: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	seeds := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5851f42d4c957f2d))
	mix, err := NewMix(cfg.Targets, rand.NewPCG(seeds.Uint64(), seeds.Uint64()))
	if err != nil {
		return Summary{}, fmt.Errorf("targets: %w", err)
	}
	pacer := NewPacer(cfg.Schedule, rand.NewPCG(seeds.Uint64(), seeds.Uint64()))
	opts := []func(*vegeta.Attacker){
		vegeta.Timeout(orDefault(cfg.Timeout, 10*time.Second)),
		vegeta.Workers(max(cfg.Workers, 1)),
		vegeta.KeepAlive(true),
		vegeta.Redirects(vegeta.NoFollow),
	}
	if cfg.MaxWorkers > 0 {
		opts = append(opts, vegeta.MaxWorkers(cfg.MaxWorkers))
	}
	atk := vegeta.NewAttacker(opts...)

	start := now()
	results := atk.Attack(mix.Targeter(), pacer, cfg.Duration, "lbtune")
	acc := newAccumulator(start)
	var writeErr error
	interrupted := false
	done := ctx.Done()
	for {
		select {
		case <-done:
			interrupted = true
			atk.Stop()
			done = nil // keep draining results
			continue
		case res, ok := <-results:
			if !ok {
				return acc.summary(cfg.Schedule, now().Sub(start), cfg.Duration, interrupted), writeErr
			}
			rec := toRecord(res)
			acc.add(rec)
			if cfg.Records != nil && writeErr == nil {
				if err := cfg.Records(rec); err != nil {
					writeErr = fmt.Errorf("write record: %w", err)
				}
			}
		}
	}
}

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func toRecord(res *vegeta.Result) Record {
	r := Record{
		Time:      res.Timestamp,
		Target:    res.URL,
		Status:    int(res.Code),
		LatencyMs: float64(res.Latency) / 1e6,
		Bytes:     res.BytesIn,
		Error:     res.Error,
	}
	if res.Headers != nil {
		r.Server = res.Headers.Get("X-Lbtune-Server")
		if v := res.Headers.Get("X-Lbtune-Service-Ms"); v != "" {
			r.ServiceMs, _ = strconv.ParseFloat(v, 64)
		}
	}
	return r
}

// accumulator folds records into a Summary.
type accumulator struct {
	start     time.Time
	latencies []float64
	sends     []time.Time
	s         Summary
	perSec    []Second  // indexed by whole seconds since start
	perSecLat []float64 // latency sums of perSec
	status    map[int]int
	lastSend  time.Time
}

func newAccumulator(start time.Time) *accumulator {
	return &accumulator{
		start:  start,
		s:      Summary{FailuresByKind: map[string]int{}, StatusCodes: map[string]int{}},
		status: map[int]int{},
	}
}

func (a *accumulator) add(r Record) {
	a.s.Requests++
	a.latencies = append(a.latencies, r.LatencyMs)
	a.sends = append(a.sends, r.Time)
	a.s.BytesIn += r.Bytes
	a.status[r.Status]++
	sec := max(0, int(r.Time.Sub(a.start)/time.Second))
	for len(a.perSec) <= sec {
		a.perSec = append(a.perSec, Second{T: len(a.perSec)})
		a.perSecLat = append(a.perSecLat, 0)
	}
	ps := &a.perSec[sec]
	ps.Sent++
	a.perSecLat[sec] += r.LatencyMs
	if k := FailureKind(r.Status, r.Error); k != "" {
		a.s.Failures++
		a.s.FailuresByKind[k]++
		ps.Failures++
	} else {
		a.s.Successes++
	}
	if r.Time.After(a.lastSend) {
		a.lastSend = r.Time
	}
}

func (a *accumulator) summary(sched Schedule, wall, planned time.Duration, interrupted bool) Summary {
	s := a.s
	for code, n := range a.status {
		s.StatusCodes[strconv.Itoa(code)] = n
	}
	s.Interrupted = interrupted
	// The sending window is the planned one unless the run was cut short.
	window := min(planned, max(sched.Length(), 0))
	if sched.Repeat {
		window = planned
	}
	if interrupted {
		window = min(window, wall)
	}
	s.DurationS = window.Seconds()
	if window > 0 {
		s.RateRequested = sched.Expected(window) / window.Seconds()
		s.RateAchieved = float64(s.Requests) / window.Seconds()
		s.Throughput = float64(s.Successes) / window.Seconds()
	}
	d := dist.Describe(a.latencies)
	s.MeanMs, s.VarianceMs2, s.MinMs, s.MaxMs, s.SCV = d.Mean, d.Variance, d.Min, d.Max, d.SCV
	s.P50Ms, s.P90Ms, s.P95Ms, s.P99Ms, s.P999Ms = d.P50, d.P90, d.P95, d.P99, d.P999
	s.InterArrivalSCV = interArrivalSCV(a.sends)
	nsec := int(window.Seconds() + 0.999)
	for t := range nsec {
		ps := Second{T: t}
		if t < len(a.perSec) && a.perSec[t].Sent > 0 {
			ps = a.perSec[t]
			ps.MeanMs = a.perSecLat[t] / float64(ps.Sent)
		}
		if ph, _, ok := sched.At(time.Duration(t) * time.Second); ok {
			ps.Requested = ph.Rate
		}
		s.Series = append(s.Series, ps)
	}
	return s
}

// interArrivalSCV is the SCV of the gaps between consecutive send times.
func interArrivalSCV(ts []time.Time) float64 {
	if len(ts) < 3 {
		return 0
	}
	sorted := make([]time.Time, len(ts))
	copy(sorted, ts)
	slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
	gaps := make([]float64, 0, len(sorted)-1)
	for i := 1; i < len(sorted); i++ {
		gaps = append(gaps, float64(sorted[i].Sub(sorted[i-1])))
	}
	return dist.Describe(gaps).SCV
}
