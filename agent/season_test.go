package agent

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

// seasonT0 is the synthetic traces' start.
var seasonT0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// seasonSine is a daily sinusoid, 100 ± 80 req/s, trough at 04:00.
func seasonSine(i int) float64 {
	return 100 + 80*math.Sin(2*math.Pi*(float64(i)/1440-10.0/24))
}

// seasonWorkday is a daily profile with sharp turns: 20 req/s at night, a
// ramp to 150 between 07:30 and 08:15, a lunch dip, a fall to 20 between
// 18:00 and 19:00.
func seasonWorkday(i int) float64 {
	m := float64(i % 1440)
	switch {
	case m < 450:
		return 20
	case m < 495:
		return 20 + 130*(m-450)/45
	case m < 720:
		return 150
	case m < 780:
		return 110
	case m < 1080:
		return 150
	case m < 1140:
		return 150 - 130*(m-1080)/60
	default:
		return 20
	}
}

// seasonNoisy adds 5% Gaussian noise to a profile.
func seasonNoisy(rng *rand.Rand, f func(int) float64) func(int) float64 {
	return func(i int) float64 { return math.Max(f(i)*(1+0.05*rng.NormFloat64()), 0) }
}

// seasonPhases is the `config example --sim` schedule: 10 min at 15 req/s,
// 10 at 60, 5 at 120, 10 at 30, repeated (35 min).
func seasonPhases(sec float64) float64 {
	switch m := math.Mod(sec/60, 35); {
	case m < 10:
		return 15
	case m < 20:
		return 60
	case m < 25:
		return 120
	default:
		return 30
	}
}

// TestSeasonDaily: three days of a noisy (5%) daily profile at 1 min
// steps, forecast 5 min ahead. On day 3 the seasonal prediction (one day
// ago, scaled by the level) is within 10% MAPE of the noise-free rate, and
// so is the forecast the agent would use (the larger of the trend's and
// the season's when the season is chosen). On the profile with sharp turns
// the season is chosen (its error is below the trend's, where the trend
// lags every morning ramp); on the sinusoid, whose turns are slow enough
// for the trend at 5 min, either may be.
func TestSeasonDaily(t *testing.T) {
	tests := []struct {
		name       string
		profile    func(int) float64
		wantSeason bool
	}{
		{"sinusoid", seasonSine, false},
		{"workday", seasonWorkday, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rate := seasonNoisy(rand.New(rand.NewPCG(7, 7)), tc.profile)
			s := NewSeason()
			fc := NewForecaster()
			const h = 5 // minutes ahead
			type pred struct{ season, used, trend float64 }
			preds := map[int]pred{}
			var apeSeason, apeUsed, apeTrend float64
			var n, chosen int
			for i := range 3 * 1440 {
				y := rate(i)
				s.Observe(seasonT0.Add(time.Duration(i+1)*time.Minute), time.Minute, y)
				fc.Observe(y)
				if p, ok := preds[i]; ok {
					truth := tc.profile(i)
					apeSeason += math.Abs(p.season-truth) / truth
					apeUsed += math.Abs(p.used-truth) / truth
					apeTrend += math.Abs(p.trend-truth) / truth
					n++
					delete(preds, i)
				}
				if i < 2*1440-h || i >= 3*1440-h {
					continue
				}
				// The point forecast for minute i+h, made at the end of minute i.
				trend, _ := fc.Forecast(h)
				sp, ok := seasonPredict(s.at, s.Len(), s.Len()+h-1, 1440)
				if !ok {
					t.Fatalf("minute %d: no seasonal prediction from %d slots", i, s.Len())
				}
				used := trend
				if _, ok := s.Forecast(h * time.Minute); ok {
					chosen++
					used = math.Max(trend, sp)
				}
				preds[i+h] = pred{sp, used, trend}
			}
			mape := func(ape float64) float64 { return 100 * ape / float64(n) }
			fit := s.Fit()
			t.Logf("day 3, %d min ahead, %d forecasts: season MAPE %.2f%%, used %.2f%% (season chosen %d times), trend %.2f%%; fit: %s",
				h, n, mape(apeSeason), mape(apeUsed), chosen, mape(apeTrend), fit.Reason)
			if n < 1400 {
				t.Fatalf("%d forecasts scored, want a day's", n)
			}
			if mape(apeSeason) >= 10 || mape(apeUsed) >= 10 {
				t.Errorf("MAPE season %.2f%%, used %.2f%%, want both < 10%%", mape(apeSeason), mape(apeUsed))
			}
			if !tc.wantSeason {
				return
			}
			if fit.Period != 24*time.Hour || chosen != n {
				t.Fatalf("period %v, chosen for %d of %d forecasts (%s), want 24h for all", fit.Period, chosen, n, fit.Reason)
			}
			if mape(apeUsed) >= mape(apeTrend) {
				t.Errorf("used MAPE %.2f%% not below the trend's %.2f%%", mape(apeUsed), mape(apeTrend))
			}
			if !(fit.ErrPct > 0 && fit.ErrPct < fit.TrendErrPct) || fit.Window != 24*time.Hour {
				t.Errorf("fit errors %.2f%% (trend %.2f%%) over %v, want 0 < season < trend over 24h", fit.ErrPct, fit.TrendErrPct, fit.Window)
			}
		})
	}
}

// TestSeasonPhases: the --sim example's 35 min phases, observed every 30 s
// (a 1 min slot holds two). After four cycles the period is found within
// one slot, and at each phase's start, with a horizon covering it, the
// forecast is at least 90% of the phase's rate; before the rise the
// forecast made one horizon ahead already sees it.
func TestSeasonPhases(t *testing.T) {
	s := NewSeason()
	const interval = 30 * time.Second
	const horizon = 90 * time.Second
	rng := rand.New(rand.NewPCG(1, 35))
	checked := 0
	for k := 1; k <= 12*2*35; k++ { // 12 cycles
		now := seasonT0.Add(time.Duration(k) * interval)
		sec := float64(k) * interval.Seconds()
		// Poisson-ish counting noise of a 30 s count.
		y := seasonPhases(sec - 15)
		y = math.Max(y+math.Sqrt(y/30)*rng.NormFloat64(), 0)
		s.Observe(now, interval, y)
		if k < 4*2*35 {
			continue
		}
		// One horizon before the 120 req/s phase begins (minute 20 of the cycle).
		if m := math.Mod(sec/60, 35); m == 19 {
			f, ok := s.Forecast(horizon)
			if !ok {
				t.Fatalf("cycle %d: no seasonal forecast: %s", k/70, s.Fit().Reason)
			}
			if f < 0.9*120 {
				t.Errorf("at %v, 60 s before the 120 req/s phase: forecast %.1f, want >= 108", now.Sub(seasonT0), f)
			}
			checked++
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d phase starts, want >= 5", checked)
	}
	fit := s.Fit()
	if math.Abs(fit.Period.Minutes()-35) > 1 {
		t.Fatalf("period %v, want 35m ± 1m (%s)", fit.Period, fit.Reason)
	}
	if fit.Model() != "season@35m0s" {
		t.Errorf("model %q, want season@35m0s", fit.Model())
	}
}

// TestSeasonFallsBack: without a season, or with too little history, the
// trend forecasts and the fit says why.
func TestSeasonFallsBack(t *testing.T) {
	tests := []struct {
		name    string
		minutes int
		rate    func(rng *rand.Rand, i int) float64
		reason  string
	}{
		{"white noise", 3 * 1440, func(rng *rand.Rand, _ int) float64 { return 100 + 10*rng.NormFloat64() }, "trend:"},
		{"random walk", 3 * 1440, func() func(*rand.Rand, int) float64 {
			x := 100.0
			return func(rng *rand.Rand, _ int) float64 { x = math.Max(x+rng.NormFloat64(), 1); return x }
		}(), "trend:"},
		{"ramp", 2 * 1440, func(_ *rand.Rand, i int) float64 { return 10 + 0.1*float64(i) }, "trend:"},
		{"daily, 20 h of history", 20 * 60, func(rng *rand.Rand, i int) float64 { return seasonNoisy(rng, seasonSine)(i) }, "no season found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, 2))
			s := NewSeason()
			for i := range tc.minutes {
				s.Observe(seasonT0.Add(time.Duration(i+1)*time.Minute), time.Minute, tc.rate(rng, i))
				if i%97 == 0 {
					if _, ok := s.Forecast(90 * time.Second); ok {
						t.Fatalf("minute %d: seasonal forecast used: %s", i, s.Fit().Reason)
					}
				}
			}
			if _, ok := s.Forecast(90 * time.Second); ok {
				t.Fatalf("seasonal forecast used: %s", s.Fit().Reason)
			}
			fit := s.Fit()
			if fit.Model() != "trend" || !strings.Contains(fit.Reason, tc.reason) {
				t.Fatalf("model %q, reason %q, want trend and %q", fit.Model(), fit.Reason, tc.reason)
			}
		})
	}
}

// TestSeasonBoundedMemory: ten days of 5 s observations keep at most 8
// days of 1 min slots, and the ring's storage does not grow.
func TestSeasonBoundedMemory(t *testing.T) {
	s := NewSeason()
	const interval = 5 * time.Second
	var c0 int
	for k := 1; k <= 10*24*720; k++ {
		s.Observe(seasonT0.Add(time.Duration(k)*interval), interval, 50)
		if k == 1 {
			c0 = cap(s.ring)
		}
	}
	if want := 8 * 24 * 60; s.Len() != want || cap(s.ring) != c0 || c0 != want {
		t.Fatalf("kept %d slots (cap %d, first cap %d), want %d", s.Len(), cap(s.ring), c0, want)
	}
	// A longer interval widens the slots: 8 days of 5 min.
	s = NewSeason()
	for k := 1; k <= 9*24*12; k++ {
		s.Observe(seasonT0.Add(time.Duration(k)*5*time.Minute), 5*time.Minute, 50)
	}
	if want := 8 * 24 * 12; s.Len() != want || len(s.ring) != want {
		t.Fatalf("5 min intervals: kept %d slots of %v (ring %d), want %d", s.Len(), s.Step, len(s.ring), want)
	}
}

// TestSeasonObserveEdges: bad rates are ignored, gaps up to an hour repeat
// the last slot, longer gaps and time going backwards restart the history.
func TestSeasonObserveEdges(t *testing.T) {
	s := NewSeason()
	at := func(m int) time.Time { return seasonT0.Add(time.Duration(m) * time.Minute) }
	for _, r := range []float64{-1, math.NaN(), math.Inf(1)} {
		s.Observe(at(0), time.Minute, r)
	}
	if s.began {
		t.Fatal("bad rates started the history")
	}
	for m := range 10 {
		s.Observe(at(m), time.Minute, float64(m))
	}
	if s.Len() != 9 {
		t.Fatalf("kept %d slots, want 9", s.Len())
	}
	s.Observe(at(30), time.Minute, 5) // 20 min gap: slots 10..29 repeat the last (9)
	if s.Len() != 30 || s.at(29) != 9 || s.at(9) != 9 {
		t.Fatalf("after a gap: %d slots, slot 29 = %v, want 30 and 9", s.Len(), s.at(29))
	}
	s.Observe(at(200), time.Minute, 5)
	if s.Len() != 0 {
		t.Fatalf("after a 170 min gap: %d slots, want 0 (restart)", s.Len())
	}
	s.Observe(at(201), time.Minute, 5)
	s.Observe(at(100), time.Minute, 5)
	if s.Len() != 0 || s.Fit().Model() != "trend" {
		t.Fatalf("after time went back: %d slots, model %s", s.Len(), s.Fit().Model())
	}
}

// TestAgentSeasonPreScales: the agent on the --sim phases (service rate
// 10 req/s per server, 30 s decisions, 90 s horizon) plans for the 120
// req/s phase before it begins once it has seen the cycle, and its
// decisions name the forecast model; the trend alone (the first cycle)
// does not.
func TestAgentSeasonPreScales(t *testing.T) {
	a := NewAgent(nil, nil, RLConfig{Horizon: 90 * time.Second}, nil)
	const interval = 30 * time.Second
	var firstCycle, later []float64
	var d Decision
	for k := 1; k <= 8*70; k++ {
		sec := float64(k) * interval.Seconds()
		obs := blObs(seasonT0.Add(time.Duration(k)*interval), 12, seasonPhases(sec-15), 50, 0, 1, interval)
		obs.Template.TargetP95 = 500 * time.Millisecond
		var err error
		if d, err = a.Decide(context.Background(), obs); err != nil {
			t.Fatal(err)
		}
		if math.Mod(sec/60, 35) == 19 {
			if k < 70 {
				firstCycle = append(firstCycle, d.Metrics["forecast_rps"])
			} else if k > 4*70 {
				later = append(later, d.Metrics["forecast_rps"])
			}
		}
	}
	if len(firstCycle) != 1 || firstCycle[0] > 70 {
		t.Errorf("first cycle, 60 s before the rise: forecast %v, want the trend's ~60", firstCycle)
	}
	for _, f := range later {
		if f < 108 {
			t.Errorf("later cycles, 60 s before the rise: forecast %.1f, want >= 108", f)
		}
	}
	if d.Metrics["forecast_season_s"] != 35*60 || !strings.Contains(d.Reason, "forecast season@35m0s") {
		t.Errorf("forecast_season_s %v, reason %q: want 2100 and season@35m0s", d.Metrics["forecast_season_s"], d.Reason)
	}
	if _, ok := d.Metrics["forecast_err_pct"]; !ok {
		t.Error("no forecast_err_pct")
	}
}

// BenchmarkSeasonRefit: one refit over a full 8-day ring of 1 min slots
// (the autocorrelation over 3 days and the day, week and peak candidates
// scored over a day), the most a decision pays, once an hour.
func BenchmarkSeasonRefit(b *testing.B) {
	s := NewSeason()
	rate := seasonNoisy(rand.New(rand.NewPCG(9, 9)), seasonWorkday)
	for i := range 8 * 1440 {
		s.Observe(seasonT0.Add(time.Duration(i+1)*time.Minute), time.Minute, rate(i))
	}
	b.ResetTimer()
	for range b.N {
		s.refit(2)
	}
}

// TestAgentWarmSeason: an agent started over a real store holding three
// days of a pool's snapshots (1 min scrapes of the workday profile, a
// balancer restart in the middle) forecasts the daily season at once.
func TestAgentWarmSeason(t *testing.T) {
	st, err := datasets.Open(filepath.Join(t.TempDir(), "lbtune.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rate := seasonNoisy(rand.New(rand.NewPCG(3, 1)), seasonWorkday)
	var reqs float64
	var snaps []collector.Snapshot
	const minutes = 3 * 1440
	for i := range minutes + 1 {
		if i == 2000 {
			reqs = 0 // the balancer restarted: its counters went back
		}
		srv := collector.Server{Name: "a", Weight: 1, State: collector.StateUp, Counters: collector.Counters{Requests: uint64(reqs)}}
		snaps = append(snaps, collector.Snapshot{Time: seasonT0.Add(time.Duration(i) * time.Minute), Source: "lb",
			Pools: []collector.Pool{{Name: "web", Servers: []collector.Server{srv}}, {Name: "other"}}})
		reqs += 60 * rate(i)
	}
	if err := st.Append(snaps...); err != nil {
		t.Fatal(err)
	}
	now := seasonT0.Add(minutes*time.Minute + time.Second)
	a := NewAgent(nil, nil, RLConfig{}, nil)
	span, err := a.WarmSeason(context.Background(), st, "lb", "web", now)
	if err != nil {
		t.Fatal(err)
	}
	if span != minutes*time.Minute {
		t.Errorf("fed %v of history, want %v", span, minutes*time.Minute)
	}
	// At a 5 min horizon (TestSeasonDaily) the day beats the trend on this profile.
	if _, ok := a.season.Forecast(5 * time.Minute); !ok || a.season.Fit().Period != 24*time.Hour {
		t.Fatalf("after warming: model %s (%s), want season@24h0m0s", a.season.Fit().Model(), a.season.Fit().Reason)
	}
	// The restart's pair (counters back to 0 at minute 2000, read as 0 req/s
	// from zero) was skipped: minute 1999's slot (the ring's first slot is
	// minute 0's) repeats minute 1998's ~150 req/s.
	if v := a.season.at(1999); v < 100 {
		t.Errorf("minute 1999's slot = %.1f req/s, want ~150 (the restart skipped)", v)
	}
	// Through the Switch the daemon runs, and not for other policies.
	sw := NewSwitch(NewAgent(nil, nil, RLConfig{}, nil), DefaultThreshold(), DefaultSwitchConfig())
	if span, err := WarmSeason(context.Background(), sw, st, "lb", "web", now); err != nil || span != minutes*time.Minute || sw.Agent().season.Len() == 0 {
		t.Errorf("switch: span %v, %d slots, err %v", span, sw.Agent().season.Len(), err)
	}
	if span, err := WarmSeason(context.Background(), DefaultThreshold(), st, "lb", "web", now); err != nil || span != 0 {
		t.Errorf("threshold: span %v, err %v, want 0, nil", span, err)
	}
	// An unknown pool or source feeds nothing.
	b := NewAgent(nil, nil, RLConfig{}, nil)
	if span, err := b.WarmSeason(context.Background(), st, "lb", "nope", now); err != nil || span != 0 || b.season.Len() != 0 {
		t.Errorf("unknown pool: span %v, %d slots, err %v", span, b.season.Len(), err)
	}
	// A source with no snapshot in the kept span costs a handful of reads,
	// not a few per slot (8 days of 1 min slots); one whose history starts
	// an hour before now costs reads for that hour only.
	for _, tc := range []struct {
		source  string
		at      time.Time
		maxRead int
	}{{"none", now, 4}, {"lb", seasonT0.Add(time.Hour), 4 + 4*61}} {
		cr := &countingRanger{SnapshotRanger: st}
		if _, err := NewAgent(nil, nil, RLConfig{}, nil).WarmSeason(context.Background(), cr, tc.source, "web", tc.at); err != nil || cr.n > tc.maxRead {
			t.Errorf("source %s: %d reads (err %v), want at most %d", tc.source, cr.n, err, tc.maxRead)
		}
	}
	// A cancelled context stops the warm-up with its error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewAgent(nil, nil, RLConfig{}, nil).WarmSeason(ctx, st, "lb", "web", now); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v, want context.Canceled", err)
	}
}

// TestAgentWarmSeasonOffGrid: snapshots every 7 s, off the minute grid,
// at a rate rising 1 req/s per minute: each slot gets the rate of its
// minute (read between the first snapshots after its edges), and the
// history spans the store's two hours less a slot.
func TestAgentWarmSeasonOffGrid(t *testing.T) {
	st, err := datasets.Open(filepath.Join(t.TempDir(), "lbtune.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var snaps []collector.Snapshot
	var reqs float64
	t0 := seasonT0.Add(3 * time.Second)
	for k := 0; k*7 <= 7200; k++ {
		at := t0.Add(time.Duration(7*k) * time.Second)
		srv := collector.Server{Name: "a", State: collector.StateUp, Counters: collector.Counters{Requests: uint64(reqs)}}
		snaps = append(snaps, collector.Snapshot{Time: at, Source: "lb", Pools: []collector.Pool{{Name: "web", Servers: []collector.Server{srv}}}})
		reqs += 7 * (10 + at.Sub(seasonT0).Minutes())
	}
	if err := st.Append(snaps...); err != nil {
		t.Fatal(err)
	}
	a := NewAgent(nil, nil, RLConfig{}, nil)
	span, err := a.WarmSeason(context.Background(), st, "lb", "web", seasonT0.Add(2*time.Hour+10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if span < 118*time.Minute || span > 2*time.Hour {
		t.Errorf("span %v, want about 2h less a slot", span)
	}
	n := a.season.Len()
	if n < 117 || n > 119 {
		t.Fatalf("%d slots, want about 118", n)
	}
	for i := range n {
		// Slot i is minute i (the rate between the first snapshots after
		// its edges, up to 7 s late, whose midpoint is in it): about
		// 10 + i + 0.5 req/s.
		want := 10 + float64(i) + 0.5
		if v := a.season.at(i); math.Abs(v-want) > 0.3 {
			t.Fatalf("slot %d = %.2f req/s, want %.2f ± 0.3", i, v, want)
		}
	}
}

// countingRanger counts Range calls.
type countingRanger struct {
	SnapshotRanger
	n int
}

func (c *countingRanger) Range(source string, from, to time.Time, fn func(collector.Snapshot) error) error {
	c.n++
	return c.SnapshotRanger.Range(source, from, to, fn)
}
