package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ThresholdConfig configures the threshold fallback family (mission
// feature 10). Every rule can be switched off by zeroing its thresholds.
type ThresholdConfig struct {
	// TargetP95 is the response-time target; 0 means the pool template's.
	TargetP95 time.Duration
	// Window is the sliding window over which the response time is
	// averaged (request-weighted) before comparing it with the target.
	Window time.Duration
	// MinBreach is how long the target must be exceeded without a break
	// before it counts: load spikes shorter than this are ignored.
	MinBreach time.Duration
	// MinRequests is the fewest requests the window must hold for its
	// response time to count (a p95 of a handful of requests is noise).
	MinRequests float64
	// UtilHigh and UtilLow are utilisation thresholds: above UtilHigh the
	// pool grows by GrowRatio, below UtilLow (and under the target) it
	// shrinks by ShrinkRatio. 0 disables the rule.
	UtilHigh, UtilLow      float64
	GrowRatio, ShrinkRatio float64
	// ShrinkBelow is the fraction of the target the window's p95 must be
	// under for a shrink (0 = no response-time condition).
	ShrinkBelow float64
	// Reserve servers are powered up when the queue per serving server
	// exceeds QueueHigh and powered down when it falls below QueueLow
	// (hysteresis). Reserve 0 disables the rule.
	Reserve             int
	QueueHigh, QueueLow float64
	// DownCooldown is the least time between any change and a shrink.
	DownCooldown time.Duration
	// BreachConfidence is the one-sided confidence with which the window
	// must show the p95 above the target for the response-time rule to
	// count a breach (TailEstimate.Over over the window's requests): at a
	// few requests per second a minute's p95 passes the target by chance.
	// 0 compares the point estimate, as before.
	BreachConfidence float64
	// Proportional sizes the steps by the measurement instead of the fixed
	// ratios, which become the largest steps: a utilisation grow brings the
	// utilisation to the middle of [UtilLow, UtilHigh], a breach grows by
	// the window p95's excess over the target (at least one server), and a
	// shrink goes no lower than the M/M/c plan that keeps the window's rate
	// under ShrinkBelow x target (a pool of one or two servers otherwise
	// halves into a breach and doubles back: a reversal).
	Proportional bool
	// BreachMemory is how long the pool remembers the server count at
	// which it last breached the target (with BreachConfidence): no shrink
	// goes back to that count or below for this long. The M/M/c plan sees
	// the mean rate, not the bursts that made the breach; without the
	// memory a quiet minute shrinks the pool into the next burst (a
	// reversal). 0 disables it.
	BreachMemory time.Duration
}

// DefaultThresholdConfig returns the fallback used when none is configured:
// 60 s response-time window ignoring breaches shorter than 5 s, utilisation
// thresholds 0.8 / 0.3 with grow x2.0 and shrink x0.5, 2 reserve servers on
// above 2 queued requests per server (window mean) and off below 0.5, 5 min
// between a change and a shrink, which also needs the window p95 under 0.7
// x target; 50 requests for a meaningful p95, a breach only at 90%
// confidence, proportional steps, and an hour's memory of the size that
// breached.
func DefaultThresholdConfig() ThresholdConfig {
	return ThresholdConfig{
		Window: time.Minute, MinBreach: 5 * time.Second, MinRequests: 50,
		UtilHigh: 0.8, UtilLow: 0.3, GrowRatio: 2.0, ShrinkRatio: 0.5, ShrinkBelow: 0.7,
		Reserve: 2, QueueHigh: 2, QueueLow: 0.5,
		DownCooldown:     5 * time.Minute,
		BreachConfidence: 0.9, Proportional: true, BreachMemory: time.Hour,
	}
}

// Validate reports every inconsistent setting, joined.
func (c ThresholdConfig) Validate() error {
	var errs []error
	if c.TargetP95 < 0 || c.Window < 0 || c.MinBreach < 0 || c.DownCooldown < 0 || c.BreachMemory < 0 {
		errs = append(errs, errors.New("threshold: durations must not be negative"))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"min_requests", c.MinRequests}, {"util_high", c.UtilHigh}, {"util_low", c.UtilLow},
		{"grow_ratio", c.GrowRatio}, {"shrink_ratio", c.ShrinkRatio}, {"shrink_below", c.ShrinkBelow},
		{"queue_high", c.QueueHigh}, {"queue_low", c.QueueLow}, {"breach_confidence", c.BreachConfidence},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			errs = append(errs, fmt.Errorf("threshold: %s %v must be finite and not negative", f.name, f.v))
		}
	}
	if c.UtilHigh > 0 && c.UtilLow >= c.UtilHigh {
		errs = append(errs, fmt.Errorf("threshold: util_low %v must be below util_high %v", c.UtilLow, c.UtilHigh))
	}
	if c.UtilHigh > 0 && c.GrowRatio <= 1 {
		errs = append(errs, fmt.Errorf("threshold: grow_ratio %v must exceed 1", c.GrowRatio))
	}
	if c.UtilLow > 0 && (c.ShrinkRatio <= 0 || c.ShrinkRatio >= 1) {
		errs = append(errs, fmt.Errorf("threshold: shrink_ratio %v must be in (0, 1)", c.ShrinkRatio))
	}
	if c.BreachConfidence >= 1 {
		errs = append(errs, fmt.Errorf("threshold: breach_confidence %v must be below 1", c.BreachConfidence))
	}
	if c.Reserve < 0 {
		errs = append(errs, fmt.Errorf("threshold: reserve %d is negative", c.Reserve))
	}
	if c.Reserve > 0 && c.QueueLow >= c.QueueHigh {
		errs = append(errs, fmt.Errorf("threshold: queue_low %v must be below queue_high %v", c.QueueLow, c.QueueHigh))
	}
	return errors.Join(errs...)
}

// Threshold is the threshold fallback policy: a response-time target over a
// sliding window (ignoring spikes shorter than MinBreach), utilisation
// thresholds with grow/shrink ratios, and reserve servers switched by
// queue-length hysteresis. The RL agent uses it when untrained, unsure or
// out of distribution. One Threshold serves one pool.
type Threshold struct {
	cfg        ThresholdConfig
	reserveOn  bool
	lastChange time.Time
	// breachAt is the serving count of the last breach, at breachTime.
	breachAt   int
	breachTime time.Time
}

// NewThreshold returns a Threshold with cfg; zero fields of cfg are not
// defaulted (start from DefaultThresholdConfig). An invalid cfg
// (ThresholdConfig.Validate) is an error.
func NewThreshold(cfg ThresholdConfig) (*Threshold, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &Threshold{cfg: cfg}, nil
}

// DefaultThreshold is the threshold fallback with DefaultThresholdConfig,
// which is valid (TestThresholdValidate checks it).
func DefaultThreshold() *Threshold {
	return &Threshold{cfg: DefaultThresholdConfig()}
}

// Name is "threshold".
func (t *Threshold) Name() string { return "threshold" }

// Config returns the policy's thresholds.
func (t *Threshold) Config() ThresholdConfig { return t.cfg }

// Decide applies the rules in order: a sustained response-time breach or
// high utilisation grows the pool by GrowRatio (not while servers are still
// booting); low utilisation under the target shrinks it by ShrinkRatio
// after DownCooldown, but never so far that the utilisation would exceed
// 0.9 x UtilHigh; then reserve servers are added or removed by the
// queue hysteresis on the window's mean queue per server.
func (t *Threshold) Decide(_ context.Context, obs Observation) (Decision, error) {
	target := t.cfg.TargetP95
	if target == 0 {
		target = obs.Template.TargetP95
	}
	targetMs := float64(target) / float64(time.Millisecond)
	winMs, breach, winReq := t.responseTime(obs, targetMs)
	if winReq < t.cfg.MinRequests {
		breach = 0 // too few requests for a p95 to mean anything
	}
	var unsure string
	if breach > 0 && targetMs > 0 && t.cfg.BreachConfidence > 0 {
		// A p95 above the target counts only if the window's requests
		// say so beyond their sampling noise.
		if e := WindowTail(obs.Window, obs.StepLen(), t.cfg.Window, targetMs); !e.Over(t.cfg.BreachConfidence) {
			unsure = fmt.Sprintf("p95 %.0fms above target %.0fms but not at %.0f%% confidence (%.1f%% of %.0f requests above, z %.2f)",
				obs.Latest.P95Ms(), targetMs, 100*t.cfg.BreachConfidence, 100*e.Share(), e.Requests, e.Z())
			breach = 0
		}
	}
	util := t.windowUtilisation(obs)
	var queue float64
	for i := range obs.Window {
		queue += blQueuePerServer(&obs.Window[i]) / float64(len(obs.Window))
	}
	cur := obs.Servers + obs.Booting
	m := map[string]float64{
		"p95_ms": obs.Latest.P95Ms(), "window_p95_ms": winMs, "target_ms": targetMs,
		"breach_s": breach.Seconds(), "util": util, "queue_per_server": queue,
	}
	want := cur
	var why []string
	// grow multiplies the serving servers by factor (Proportional) or
	// GrowRatio, at most GrowRatio and at least one more server.
	grow := func(reason string, factor float64) {
		if obs.Booting > 0 {
			why = append(why, reason+", waiting for "+fmt.Sprint(obs.Booting)+" booting")
			return
		}
		ratio := t.cfg.GrowRatio
		if t.cfg.Proportional {
			ratio = min(ratio, max(factor, 1))
		}
		n := max(obs.Servers, 1)
		want = max(int(math.Ceil(float64(n)*ratio)), n+1)
		why = append(why, fmt.Sprintf("%s: x%.2f", reason, ratio))
	}
	breached := targetMs > 0 && breach >= t.cfg.MinBreach && winMs > targetMs
	if breached {
		t.breachAt, t.breachTime = obs.Servers, obs.Time
	}
	switch {
	case breached && t.cfg.GrowRatio > 1:
		grow(fmt.Sprintf("p95 %.0fms > target %.0fms for %v (window %.0fms)", m["p95_ms"], targetMs, breach, winMs), winMs/targetMs)
	case t.cfg.UtilHigh > 0 && util > t.cfg.UtilHigh:
		grow(fmt.Sprintf("utilisation %.2f > %.2f", util, t.cfg.UtilHigh), util/((t.cfg.UtilHigh+t.cfg.UtilLow)/2))
	case t.cfg.UtilLow > 0 && util < t.cfg.UtilLow && (targetMs == 0 || t.cfg.ShrinkBelow == 0 || winMs < t.cfg.ShrinkBelow*targetMs) && breach == 0 &&
		obs.Time.Sub(t.lastChange) >= t.cfg.DownCooldown && obs.Booting == 0:
		load := util * float64(obs.Servers) // in servers' worth of work
		w := max(int(math.Floor(float64(cur)*t.cfg.ShrinkRatio)), int(math.Ceil(load/(0.9*t.cfg.UtilHigh))))
		floor := ""
		if t.cfg.Proportional && w < cur {
			if plan := t.shrinkPlan(obs, winReq, targetMs, cur); plan > w {
				w = plan
				floor = fmt.Sprintf(", M/M/c keeps p95 under %.0f%% of the target with %d", 100*t.cfg.ShrinkBelow, plan)
				m["shrink_plan"] = float64(plan)
			}
		}
		if t.cfg.BreachMemory > 0 && !t.breachTime.IsZero() && obs.Time.Sub(t.breachTime) < t.cfg.BreachMemory && w <= t.breachAt {
			w = t.breachAt + 1
			floor += fmt.Sprintf(", not back to the %d servers that breached %v ago", t.breachAt, obs.Time.Sub(t.breachTime).Round(time.Second))
		}
		switch {
		case w < cur:
			want = w
			why = append(why, fmt.Sprintf("utilisation %.2f < %.2f: x%.2f%s", util, t.cfg.UtilLow, float64(w)/float64(cur), floor))
		case floor != "":
			why = append(why, fmt.Sprintf("utilisation %.2f < %.2f but no shrink%s", util, t.cfg.UtilLow, floor))
		}
	}
	if unsure != "" && want == cur {
		why = append(why, unsure)
	}
	if t.cfg.Reserve > 0 {
		switch {
		case !t.reserveOn && queue > t.cfg.QueueHigh:
			t.reserveOn = true
			want += t.cfg.Reserve
			why = append(why, fmt.Sprintf("queue %.1f/server > %.1f: +%d reserve", queue, t.cfg.QueueHigh, t.cfg.Reserve))
		case t.reserveOn && queue < t.cfg.QueueLow && obs.Time.Sub(t.lastChange) >= t.cfg.DownCooldown:
			t.reserveOn = false
			want -= t.cfg.Reserve
			why = append(why, fmt.Sprintf("queue %.1f/server < %.1f: -%d reserve", queue, t.cfg.QueueLow, t.cfg.Reserve))
		}
	}
	if t.reserveOn {
		m["reserve_on"] = 1
	} else {
		m["reserve_on"] = 0
	}
	want = obs.Template.Clamp(want)
	if want != cur {
		t.lastChange = obs.Time
	}
	reason := "hold: within thresholds"
	if len(why) > 0 {
		reason = strings.Join(why, "; ")
	}
	return Decision{Policy: t.Name(), Servers: want, Reason: fmt.Sprintf("%s -> %d servers", reason, want), Metrics: m}, nil
}

// shrinkPlan is the fewest servers that M/M/c says keep the p95 under
// ShrinkBelow x target at the window's request rate (winReq requests over
// the window), with the template's service rate or, without one, the rate
// the latest interval's mean latency implies; 0 when neither is known or
// the rule is off.
func (t *Threshold) shrinkPlan(obs Observation, winReq, targetMs float64, cur int) int {
	if t.cfg.ShrinkBelow <= 0 || targetMs <= 0 {
		return 0
	}
	n := 0
	var span time.Duration
	step := obs.StepLen()
	for i := len(obs.Window) - 1; i >= 0 && (n == 0 || span < t.cfg.Window); i-- {
		n++
		span += step
	}
	if n == 0 || step <= 0 {
		return 0
	}
	rate := winReq / (float64(n) * step.Seconds())
	mu := obs.Template.ServiceRate
	if mu <= 0 {
		mu = fcServiceRate(obs.Latest.Requests(), obs.Servers, obs.Latest.MeanMs()/1000)
	}
	if mu <= 0 || rate <= 0 {
		return 0
	}
	return fcPlanServers(rate, mu, t.cfg.ShrinkBelow*targetMs/1000, 1-sloQuantile, cur)
}

// responseTime returns the request-weighted mean p95 (ms) over the
// intervals within the sliding window, how long the target has been
// exceeded without a break, counted back from the latest interval, and the
// number of requests in the window.
func (t *Threshold) responseTime(obs Observation, targetMs float64) (winMs float64, breach time.Duration, requests float64) {
	var sum, w float64
	var span time.Duration
	step := obs.StepLen()
	counting := true
	for i := len(obs.Window) - 1; i >= 0; i-- {
		pr := &obs.Window[i]
		p95 := pr.P95Ms()
		req := pr.Requests()
		if span < t.cfg.Window || i == len(obs.Window)-1 {
			sum += p95 * req
			w += req
		}
		if counting && targetMs > 0 && p95 > targetMs {
			breach += step
		} else {
			counting = false
		}
		span += step
	}
	if w > 0 {
		winMs = sum / w
	}
	return winMs, breach, w * step.Seconds()
}

// windowUtilisation is the mean utilisation over the intervals within the
// sliding window (one interval's utilisation at low rates is mostly noise).
func (t *Threshold) windowUtilisation(obs Observation) float64 {
	var sum float64
	n := 0
	var span time.Duration
	for i := len(obs.Window) - 1; i >= 0 && (n == 0 || span < t.cfg.Window); i-- {
		o := obs
		o.Latest = obs.Window[i]
		sum += blUtilisation(&o)
		n++
		span += obs.StepLen()
	}
	if n == 0 {
		return blUtilisation(&obs)
	}
	return sum / float64(n)
}
