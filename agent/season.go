package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// Season learns a repeating pattern in a pool's arrival rate from the
// rates it has observed and forecasts the rate over a horizon from it: the
// rate of the same time one or more periods ago, scaled by how the recent
// level compares with the level one period ago (a multiplicative
// seasonal-naive forecast). The candidate periods are one day, one week
// and the best autocorrelation peak between MinPeriod and one day. Every
// RefitEvery of history it scores each candidate, and the trend forecast
// alone, by their errors at the horizon over the last day (or the history
// there is), and keeps the season only when the forecast it would give
// (the larger of the trend and the season) has the smaller error; Model
// and Reason say which and why.
//
// Memory is bounded: rates are kept per Step slot (the mean of the
// intervals in it) in a ring of at most Keep of history, so one pool holds
// Keep/Step float64s whatever its decision interval (8 days of 1 min
// slots: 11,520 values, 90 KiB), plus a scratch slice of the same bound
// while refitting. The zero value is not usable; use NewSeason.
type Season struct {
	// Step is the slot length (at least the decision interval: a longer
	// interval widens it at the first observation).
	Step time.Duration
	// Keep is how much history is kept.
	Keep time.Duration
	// MinPeriod is the shortest period searched by autocorrelation.
	MinPeriod time.Duration
	// RefitEvery is how much new history triggers a refit.
	RefitEvery time.Duration
	// Alpha and Beta are the trend forecast's smoothing (Forecaster's)
	// the season is compared with.
	Alpha, Beta float64

	ring  []float64 // slot means, oldest first once full (ring order)
	start int       // index of the oldest slot in ring
	n     int       // slots kept
	slot  int64     // index of the current (partial) slot; valid when started
	sum   float64   // rates summed in the current slot
	cnt   int       // rates in the current slot
	last  float64   // the last completed slot's mean
	began bool
	since int // completed slots since the last refit

	fit     SeasonFit
	horizon int       // slots ahead the last fit was scored at
	scratch []float64 // refit buffer
}

// SeasonFit is the forecast model a Season chose at its last refit.
type SeasonFit struct {
	// Period is the season used; 0 when the trend alone forecasts.
	Period time.Duration
	// ErrPct is the chosen forecast's error at the horizon over the
	// scored window (sum of absolute errors / sum of rates, %); 0 before
	// any score.
	ErrPct float64
	// TrendErrPct is the trend forecast's error over the same window.
	TrendErrPct float64
	// Window is how much history the errors were scored over.
	Window time.Duration
	// Reason says why the model was chosen.
	Reason string
}

// Model names the chosen forecast: "trend" or "season@PERIOD" (e.g.
// "season@24h0m0s").
func (f SeasonFit) Model() string {
	if f.Period <= 0 {
		return "trend"
	}
	return "season@" + f.Period.String()
}

// Season defaults: 1 min slots, 8 days kept (a week and the day scored
// after it), periods from 10 min, refit every hour.
const (
	seasonDay  = 24 * time.Hour
	seasonWeek = 7 * seasonDay
)

// NewSeason returns a Season with 1 min slots, 8 days of history, periods
// searched from 10 min, a refit every hour, and the trend smoothing of
// NewForecaster.
func NewSeason() *Season {
	return &Season{Step: time.Minute, Keep: 8 * seasonDay, MinPeriod: 10 * time.Minute,
		RefitEvery: time.Hour, Alpha: 0.5, Beta: 0.2,
		fit: SeasonFit{Reason: "no history yet"}}
}

// Fit returns the model chosen at the last refit.
func (s *Season) Fit() SeasonFit { return s.fit }

// Len is the history kept, in completed slots.
func (s *Season) Len() int { return s.n }

// Observe feeds the mean arrival rate (requests/s) of the interval of
// length interval ending at t. Negative or non-finite rates are ignored.
// Time going backwards, or a gap longer than an hour, starts the history
// over; shorter gaps repeat the last slot.
func (s *Season) Observe(t time.Time, interval time.Duration, rate float64) {
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) || s.Step <= 0 {
		return
	}
	if !s.began {
		if interval > s.Step {
			s.Step = interval
		}
		capSlots := max(int(s.Keep/s.Step), 1)
		if cap(s.ring) < capSlots {
			s.ring = make([]float64, capSlots)
		}
		s.ring = s.ring[:capSlots]
	}
	idx := t.UnixNano() / int64(s.Step)
	switch {
	case !s.began:
		s.slot, s.began = idx, true
	case idx < s.slot || time.Duration(idx-s.slot)*s.Step > time.Hour:
		s.reset()
		s.slot, s.began = idx, true
	case idx > s.slot:
		mean := s.last
		if s.cnt > 0 {
			mean = s.sum / float64(s.cnt)
		}
		for ; s.slot < idx; s.slot++ {
			s.push(mean)
		}
		s.sum, s.cnt = 0, 0
	}
	s.sum += rate
	s.cnt++
}

// reset forgets the history, keeping the ring's storage.
func (s *Season) reset() {
	s.start, s.n, s.sum, s.cnt, s.last, s.since, s.began = 0, 0, 0, 0, 0, 0, false
	s.fit = SeasonFit{Reason: "history restarted"}
}

// push appends a completed slot's mean.
func (s *Season) push(v float64) {
	c := len(s.ring)
	if s.n < c {
		s.ring[(s.start+s.n)%c] = v
		s.n++
	} else {
		s.ring[s.start] = v
		s.start = (s.start + 1) % c
	}
	s.last = v
	s.since++
}

// at is the i-th completed slot, oldest first.
func (s *Season) at(i int) float64 { return s.ring[(s.start+i)%len(s.ring)] }

// Forecast returns the seasonal forecast of the rate over the next horizon
// (the highest predicted slot from now to now+horizon) and whether the
// season is used; false means the trend alone should forecast (see Fit
// for why). It refits first when RefitEvery of history has passed since
// the last fit (a sixth of it in the first day while no season is used)
// or the horizon changed.
func (s *Season) Forecast(horizon time.Duration) (rate float64, ok bool) {
	if !s.began || s.Step <= 0 {
		return 0, false
	}
	h := max(int(math.Ceil(float64(horizon)/float64(s.Step))), 1)
	every := s.RefitEvery
	if s.fit.Period <= 0 && time.Duration(s.n)*s.Step < seasonDay {
		// In the first day, without a season, look again sooner: a 35 min
		// cycle is found 10 min after its second period, not at the next
		// hour.
		every /= 6
	}
	if h != s.horizon || time.Duration(s.since)*s.Step >= every {
		s.refit(h)
	}
	if s.fit.Period <= 0 {
		return 0, false
	}
	p := int(s.fit.Period / s.Step)
	best := 0.0
	// The current slot is index s.n, partly observed; forecast it and the
	// h slots after it.
	for k := 0; k <= h; k++ {
		if v, ok := seasonPredict(s.at, s.n, s.n+k, p); ok {
			best = math.Max(best, v)
		}
	}
	return best, true
}

// history copies the completed slots, oldest first, into the scratch buffer.
func (s *Season) history() []float64 {
	s.scratch = s.scratch[:0]
	for i := range s.n {
		s.scratch = append(s.scratch, s.at(i))
	}
	return s.scratch
}

// Seasonal model constants: the level ratio is clamped to [1/seasonMaxRatio,
// seasonMaxRatio]; up to seasonCycles past periods are averaged; a season
// must cut the trend's error by seasonGain to be used, and needs a scored
// window of at least a quarter period (and seasonMinWindow slots).
const (
	seasonMaxRatio  = 2.0
	seasonCycles    = 4
	seasonGain      = 0.9
	seasonMinWindow = 30
	seasonMinACF    = 0.3
)

// seasonPredict forecasts slot i from the n slots hist(0..n-1) before it: the mean of the same phase in up to seasonCycles past periods
// (each over a window of p/144 slots, at most 10, on either side: 10 min
// for a day at 1 min slots), times the
// ratio of the last L slots' mean to the mean of the same slots in those
// periods (L = p/12 clamped to 3..120 slots). ok is false when no whole
// period precedes.
func seasonPredict(hist func(int) float64, n, i, p int) (float64, bool) {
	if p < 1 || n < p {
		return 0, false
	}
	w := min(p/144, 10)
	l := min(max(p/12, 3), 120)
	// The first past period whose phase slot is observed.
	j0 := max((i-n)/p+1, 1)
	var ref, refN, past, pastN float64
	for c := 0; c < seasonCycles; c++ {
		j := i - (j0+c)*p
		if j-w < 0 {
			break
		}
		for k := j - w; k <= j+w && k < n; k++ {
			ref += hist(k)
			refN++
		}
		// The level window one period (or more) before the last L slots.
		lag := (j0 + c) * p
		for k := n - l; k < n; k++ {
			if k-lag >= 0 && k >= 0 {
				past += hist(k - lag)
				pastN++
			}
		}
	}
	if refN == 0 {
		return 0, false
	}
	ref /= refN
	var recent, recentN float64
	for k := max(n-l, 0); k < n; k++ {
		recent += hist(k)
		recentN++
	}
	ratio := 1.0
	if pastN > 0 && recentN > 0 && past > 0 {
		ratio = (recent / recentN) / (past / pastN)
		ratio = math.Min(math.Max(ratio, 1/seasonMaxRatio), seasonMaxRatio)
	}
	return ref * ratio, true
}

// refit chooses between the trend and the candidate seasons at a horizon
// of h slots.
func (s *Season) refit(h int) {
	s.since, s.horizon = 0, h
	hist := s.history()
	n := len(hist)
	fit := SeasonFit{}
	day, week := int(seasonDay/s.Step), int(seasonWeek/s.Step)
	var cands []int
	for _, p := range []int{week, day} {
		if n >= p+max(p/4, seasonMinWindow) {
			cands = append(cands, p)
		}
	}
	if p, ok := seasonACFPeak(hist[max(n-3*day, 0):], int(s.MinPeriod/s.Step), day-1); ok && p != day {
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		fit.Reason = fmt.Sprintf("trend: no season found at the last fit (%v of history then; a day needs %v)",
			time.Duration(n)*s.Step, seasonDay+seasonDay/4)
		s.fit = fit
		return
	}
	// The scored window: the last day, or what the shortest-history
	// candidate leaves.
	win := min(n-h, day)
	for _, p := range cands {
		win = min(win, n-h-p)
	}
	if win < seasonMinWindow {
		fit.Reason = fmt.Sprintf("trend: too short to score a season at the last fit (%v of history then)", time.Duration(n)*s.Step)
		s.fit = fit
		return
	}
	from := n - h - win // forecasts are made at the end of slots from..n-h-1
	trend := seasonTrendErr(hist, from, h, s.Alpha, s.Beta)
	fit.TrendErrPct, fit.ErrPct, fit.Window = trend.pct(), trend.pct(), time.Duration(win)*s.Step
	bestP, best := 0, math.Inf(1)
	for _, p := range cands {
		if e := seasonErr(hist, from, h, p, trend.preds); e < best {
			bestP, best = p, e
		}
	}
	if !(best < seasonGain*trend.pct()) {
		fit.Reason = fmt.Sprintf("trend: error %.1f%% over the last %v, season@%v's %.1f%% not 10%% lower",
			trend.pct(), fit.Window, time.Duration(bestP)*s.Step, best)
		s.fit = fit
		return
	}
	fit.Period, fit.ErrPct = time.Duration(bestP)*s.Step, best
	fit.Reason = fmt.Sprintf("season@%v: error %.1f%% against the trend's %.1f%% over the last %v",
		fit.Period, best, trend.pct(), fit.Window)
	s.fit = fit
}

// seasonScore is a forecast's summed absolute error and summed actual rate.
type seasonScore struct {
	abs, sum float64
	preds    []float64 // the trend's forecast made at the end of each scored slot
}

func (e seasonScore) pct() float64 {
	if e.sum <= 0 {
		return 0
	}
	return 100 * e.abs / e.sum
}

// seasonActual is the rate forecasts are scored against at slot i: the
// mean of the slots i-2..i+2 (those in hist). The rate the pool is sized
// for is the underlying one (the M/M/c plan prices the Poisson noise of a
// count), and against single noisy slots every forecast's error is mostly
// that noise, which hid a season that halved the error of the rate.
func seasonActual(hist []float64, i int) float64 {
	var sum, n float64
	for k := max(i-2, 0); k <= min(i+2, len(hist)-1); k++ {
		sum += hist[k]
		n++
	}
	return sum / n
}

// seasonTrendErr replays the trend forecast (Holt, upward trend only) over
// hist and scores its h-slot-ahead forecasts made at the end of slots
// from..len(hist)-h-1.
func seasonTrendErr(hist []float64, from, h int, alpha, beta float64) seasonScore {
	var sc seasonScore
	var level, trend float64
	for i, y := range hist {
		if i == 0 {
			level = y
		} else {
			pred := level + trend
			prev := level
			level = alpha*y + (1-alpha)*pred
			trend = beta*(level-prev) + (1-beta)*trend
		}
		if i >= from && i+h < len(hist) {
			f := math.Max(level+float64(h)*math.Max(trend, 0), 0)
			y := seasonActual(hist, i+h)
			sc.preds = append(sc.preds, f)
			sc.abs += math.Abs(f - y)
			sc.sum += y
		}
	}
	return sc
}

// seasonErr scores the forecast the agent would use with period p (the
// larger of the trend's and the season's) at h slots ahead, made at the
// end of slots from..len(hist)-h-1, in %.
func seasonErr(hist []float64, from, h, p int, trend []float64) float64 {
	var abs, sum float64
	at := func(k int) float64 { return hist[k] }
	for k, i := 0, from; i+h < len(hist) && k < len(trend); i, k = i+1, k+1 {
		f := trend[k]
		if v, ok := seasonPredict(at, i+1, i+h, p); ok {
			f = math.Max(f, v)
		}
		y := seasonActual(hist, i+h)
		abs += math.Abs(f - y)
		sum += y
	}
	if sum <= 0 {
		return 0
	}
	return 100 * abs / sum
}

// seasonACFPeak returns the period in lo..hi slots with the highest
// autocorrelation peak of x (the refit passes the last three days): a lag whose
// autocorrelation is at least seasonMinACF, a local maximum over ±lag/10,
// preceded by a dip of at least 0.2 below it (a repeating pattern, not the
// slow decay of a trend), the shortest such lag within 90% of the best
// (not its multiples). ok is false when none is.
func seasonACFPeak(x []float64, lo, hi int) (int, bool) {
	n := len(x)
	lo = max(lo, 2)
	hi = min(hi, n/2)
	if hi <= lo+1 {
		return 0, false
	}
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(n)
	var v0 float64
	for _, v := range x {
		v0 += (v - mean) * (v - mean)
	}
	if v0 <= 0 {
		return 0, false
	}
	r := make([]float64, hi+1)
	for lag := 1; lag <= hi; lag++ {
		var c float64
		for i := lag; i < n; i++ {
			c += (x[i] - mean) * (x[i-lag] - mean)
		}
		r[lag] = c / v0
	}
	bestR, best := 0.0, 0
	var peaks []int
	minSoFar := r[1]
	for lag := 2; lag <= hi; lag++ {
		minSoFar = math.Min(minSoFar, r[lag])
		if lag < lo || lag >= hi || r[lag] < seasonMinACF || r[lag]-minSoFar < 0.2 {
			continue
		}
		rad := max(lag/10, 1)
		peak := true
		for k := max(lag-rad, 1); k <= min(lag+rad, hi) && peak; k++ {
			peak = r[k] <= r[lag]
		}
		if lag+rad > hi {
			peak = false // a peak must be seen falling on both sides
		}
		if peak {
			peaks = append(peaks, lag)
			if r[lag] > bestR {
				bestR, best = r[lag], lag
			}
		}
	}
	for _, lag := range peaks {
		if r[lag] >= 0.9*bestR {
			return lag, true
		}
	}
	return best, best > 0
}

// SnapshotRanger reads a source's stored snapshots in time order
// (datasets.Store does).
type SnapshotRanger interface {
	Range(source string, from, to time.Time, fn func(collector.Snapshot) error) error
}

// WarmSeason feeds the agent's seasonal forecast the pool's arrival rates
// from the snapshots of source stored over the history a Season keeps (8
// days) up to now, so a restarted daemon forecasts the season at once
// instead of relearning it. Counters are cumulative, so one snapshot per
// slot is enough: it reads the first snapshot at or after each slot's start
// (looking 1 s, then 4, 16 s, then the whole slot ahead, so a 1 s scrape
// decodes one or two snapshots a slot, not sixty) and feeds the mean rate
// between consecutive ones. Pairs where a counter went backwards (a
// balancer restart) are skipped. It returns the span of history fed.
func (a *Agent) WarmSeason(ctx context.Context, st SnapshotRanger, source, pool string, now time.Time) (time.Duration, error) {
	step := a.season.Step
	if step <= 0 {
		return 0, nil
	}
	var prev *collector.Snapshot
	var first, last time.Time
	start := now.Add(-a.season.Keep).Truncate(step)
	// Start at the slot of the source's first snapshot in the kept span:
	// a new or young store would otherwise cost a few reads per empty
	// slot (8 days of 1 min slots: ~46,000 read transactions per pool).
	head, err := seasonFirstSnapshot(ctx, st, source, start, now)
	if err != nil {
		return 0, fmt.Errorf("warm the seasonal forecast of %s from %s: %w", pool, source, err)
	}
	if head == nil {
		return 0, nil
	}
	for b := head.Time.Truncate(step); b.Before(now); b = b.Add(step) {
		end := b.Add(step)
		if end.After(now) {
			end = now
		}
		cur, err := seasonFirstSnapshot(ctx, st, source, b, end)
		if err != nil {
			return 0, fmt.Errorf("warm the seasonal forecast of %s from %s: %w", pool, source, err)
		}
		if cur == nil {
			continue
		}
		if prev != nil && prev.Pool(pool) != nil && cur.Pool(pool) != nil {
			if r, err := collector.Rate(prev, cur); err == nil && !seasonReset(r.Pool(pool)) {
				if first.IsZero() {
					first = prev.Time
				}
				last = cur.Time
				// The rate is the mean over prev..cur: it belongs to the
				// slot of their midpoint.
				a.season.Observe(prev.Time.Add(cur.Time.Sub(prev.Time)/2), step, r.Pool(pool).Requests())
			}
		}
		prev = cur
	}
	return last.Sub(first), nil
}

// seasonReset reports whether a server's counters went backwards.
func seasonReset(pr *collector.PoolRates) bool {
	for i := range pr.Servers {
		if pr.Servers[i].Reset {
			return true
		}
	}
	return false
}

// errSeasonFound stops a Range at the first snapshot.
var errSeasonFound = errors.New("found")

// seasonFirstSnapshot returns the first snapshot of source in [from, to),
// nil when there is none, reading windows of 1 s, 4 s, 16 s and then the
// rest (Range decodes a window's snapshots before it yields the first).
func seasonFirstSnapshot(ctx context.Context, st SnapshotRanger, source string, from, to time.Time) (*collector.Snapshot, error) {
	var found *collector.Snapshot
	lo := from
	for _, edge := range []time.Duration{time.Second, 4 * time.Second, 16 * time.Second, to.Sub(from)} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := from.Add(edge)
		if hi.After(to) {
			hi = to
		}
		if !hi.After(lo) {
			continue
		}
		err := st.Range(source, lo, hi, func(s collector.Snapshot) error {
			found = &s
			return errSeasonFound
		})
		if found != nil {
			return found, nil
		}
		if err != nil && !errors.Is(err, errSeasonFound) {
			return nil, err
		}
		lo = hi
	}
	return nil, nil
}

// WarmSeason warms the seasonal forecast of p from the store when p is an
// *Agent or a *Switch holding one (see Agent.WarmSeason); other policies
// forecast no season: 0, nil.
func WarmSeason(ctx context.Context, p Policy, st SnapshotRanger, source, pool string, now time.Time) (time.Duration, error) {
	switch a := p.(type) {
	case *Switch:
		return a.Agent().WarmSeason(ctx, st, source, pool, now)
	case *Agent:
		return a.WarmSeason(ctx, st, source, pool, now)
	}
	return 0, nil
}
