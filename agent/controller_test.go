package agent

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// ctlApplier records what the controller asked for.
type ctlApplier struct {
	scales  []int
	weights []map[string]int
	err     error
}

func (a *ctlApplier) SetWeights(_ context.Context, _ string, w map[string]int) error {
	a.weights = append(a.weights, w)
	return a.err
}

func (a *ctlApplier) Scale(_ context.Context, _ string, n int) error {
	a.scales = append(a.scales, n)
	return a.err
}

// ctlPolicy always asks for n servers (and weights w).
type ctlPolicy struct {
	n int
	w map[string]int
}

func (p ctlPolicy) Name() string { return "fixed" }
func (p ctlPolicy) Decide(context.Context, Observation) (Decision, error) {
	return Decision{Servers: p.n, Weights: p.w, Reason: "test"}, nil
}

// ctlGuard refuses everything.
type ctlGuard struct{}

func (ctlGuard) Check(_ Observation, d Decision) Decision {
	d.Outcome = OutcomeRefused
	d.Clamps = append(d.Clamps, Clamp{Rule: "test", Reason: "refused by test"})
	return d
}

type ctlRecorder struct{ got []Decision }

func (r *ctlRecorder) Record(_ context.Context, d Decision) error {
	r.got = append(r.got, d)
	return nil
}

func ctlSnap(at time.Time, reqs uint64) collector.Snapshot {
	srv := func(name string) collector.Server {
		return collector.Server{Name: name, Weight: 1, State: collector.StateUp, Counters: collector.Counters{Requests: reqs}}
	}
	return collector.Snapshot{Time: at, Source: "test", Pools: []collector.Pool{{Name: "web", Servers: []collector.Server{srv("a"), srv("b")}}}}
}

func TestControllerTick(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const iv = 30 * time.Second
	tests := []struct {
		name        string
		snaps       int           // snapshots in the ring, iv apart from t0
		at          time.Duration // tick time after the last snapshot
		policy      ctlPolicy
		shadow      bool
		guard       DecisionGuard
		applyErr    error
		wantOutcome Outcome
		wantReason  string
		wantScales  []int
	}{
		{name: "applies a scale", snaps: 3, policy: ctlPolicy{n: 4}, wantOutcome: OutcomeApplied, wantScales: []int{4}},
		{name: "same count is a noop", snaps: 3, policy: ctlPolicy{n: 2}, wantOutcome: OutcomeNoop},
		{name: "equal weights are a noop", snaps: 3, policy: ctlPolicy{w: map[string]int{"a": 1, "b": 1}}, wantOutcome: OutcomeNoop},
		{name: "shadow mode changes nothing", snaps: 3, policy: ctlPolicy{n: 4}, shadow: true, wantOutcome: OutcomeDryRun},
		{name: "guard refusal is not applied", snaps: 3, policy: ctlPolicy{n: 4}, guard: ctlGuard{}, wantOutcome: OutcomeRefused},
		{name: "actuator error is recorded", snaps: 3, policy: ctlPolicy{n: 4}, applyErr: errors.New("boom"), wantOutcome: OutcomeFailed, wantScales: []int{4}},
		// 3 intervals old is still fresh; 3 intervals + 1 s is stale.
		{name: "data 3 intervals old is used", snaps: 3, at: 3 * iv, policy: ctlPolicy{n: 4}, wantOutcome: OutcomeApplied, wantScales: []int{4}},
		{name: "stale data is a recorded noop", snaps: 3, at: 3*iv + time.Second, policy: ctlPolicy{n: 4}, wantOutcome: OutcomeNoop, wantReason: "stale data"},
		{name: "one snapshot is not enough", snaps: 1, policy: ctlPolicy{n: 4}, wantOutcome: OutcomeNoop, wantReason: "not enough data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ring := NewSnapshotRing(4)
			var last time.Time
			for i := range tc.snaps {
				last = t0.Add(time.Duration(i) * iv)
				ring.Add(ctlSnap(last, uint64(100*i)))
			}
			app := &ctlApplier{err: tc.applyErr}
			rec := &ctlRecorder{}
			c, err := NewController(ControllerConfig{
				Interval: iv, Pools: []PoolControl{{Name: "web", Policy: tc.policy, Template: Template{Min: 1, Max: 10}}},
				Source: ring, Applier: app, Guard: tc.guard, Recorder: rec, Shadow: tc.shadow,
			})
			if err != nil {
				t.Fatal(err)
			}
			ds := c.Tick(context.Background(), last.Add(tc.at))
			if len(ds) != 1 || len(rec.got) != 1 {
				t.Fatalf("got %d decisions, %d recorded; want 1 and 1", len(ds), len(rec.got))
			}
			d := ds[0]
			if d.Outcome != tc.wantOutcome {
				t.Errorf("outcome %q, want %q (reason %q)", d.Outcome, tc.wantOutcome, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("reason %q does not mention %q", d.Reason, tc.wantReason)
			}
			if d.Policy != "fixed" || d.Pool != "web" {
				t.Errorf("provenance policy %q pool %q", d.Policy, d.Pool)
			}
			if len(app.scales) != len(tc.wantScales) || (len(tc.wantScales) > 0 && app.scales[0] != tc.wantScales[0]) {
				t.Errorf("scale calls %v, want %v", app.scales, tc.wantScales)
			}
		})
	}
}

// TestControllerWindow checks that each tick rates only new snapshots and
// that the window keeps the newest intervals, oldest first.
func TestControllerWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ring := NewSnapshotRing(3)
	var seen Observation
	p := policyFunc(func(obs Observation) { seen = obs })
	c, err := NewController(ControllerConfig{Interval: 10 * time.Second, Window: 2, Pools: []PoolControl{{Name: "web", Policy: p}}, Source: ring})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		ring.Add(ctlSnap(at, uint64(10*i*i))) // 2 servers, rate 2i-1 per 10 s each
		c.Tick(context.Background(), at)
	}
	if len(seen.Window) != 2 {
		t.Fatalf("window of %d intervals, want 2", len(seen.Window))
	}
	// Intervals 3->4: (160-90)/10 = 7/s per server, 14/s in the pool.
	if got := seen.Latest.Requests(); got != 14 {
		t.Errorf("latest pool rate %v, want 14", got)
	}
	if got := seen.Window[0].Requests(); got != 10 {
		t.Errorf("previous pool rate %v, want 10", got)
	}
	if seen.Servers != 2 {
		t.Errorf("serving %d, want 2", seen.Servers)
	}
}

// TestControllerScrapeSteps: snapshots every 1 s, decisions every 5 s.
// The observation says how long one window interval is (Step 1 s) and its
// PeriodRate averages the five scrapes of the decision period, where
// Latest is the last second alone.
func TestControllerScrapeSteps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ring := NewSnapshotRing(16)
	var seen Observation
	p := policyFunc(func(obs Observation) { seen = obs })
	c, err := NewController(ControllerConfig{Interval: 5 * time.Second, Window: 10, Pools: []PoolControl{{Name: "web", Policy: p}}, Source: ring})
	if err != nil {
		t.Fatal(err)
	}
	// Per server, second i has i requests: cumulative i(i+1)/2.
	for i := range 11 {
		ring.Add(ctlSnap(t0.Add(time.Duration(i)*time.Second), uint64(i*(i+1)/2)))
	}
	c.Tick(context.Background(), t0.Add(10*time.Second))
	if seen.Step != time.Second || seen.StepLen() != time.Second {
		t.Errorf("step %v (StepLen %v), want 1s", seen.Step, seen.StepLen())
	}
	// Seconds 6..10: 2 servers x (6+7+8+9+10)/5 = 16 req/s; the last second 20.
	if got := seen.PeriodRate(); got != 16 {
		t.Errorf("period rate %v, want 16", got)
	}
	if got := seen.Latest.Requests(); got != 20 {
		t.Errorf("latest rate %v, want 20", got)
	}
	one := Observation{Latest: seen.Latest, Window: seen.Window, Interval: 5 * time.Second}
	if got := one.PeriodRate(); got != 20 {
		t.Errorf("period rate with window intervals as long as the period: %v, want the latest 20", got)
	}
}

type policyFunc func(Observation)

func (policyFunc) Name() string { return "spy" }
func (f policyFunc) Decide(_ context.Context, obs Observation) (Decision, error) {
	f(obs)
	return Decision{}, nil
}

// TestControllerRun ticks on the wall clock until the context ends.
func TestControllerRun(t *testing.T) {
	ring := NewSnapshotRing(4)
	t0 := time.Now()
	ring.Add(ctlSnap(t0.Add(-20*time.Millisecond), 0))
	ring.Add(ctlSnap(t0.Add(-10*time.Millisecond), 10))
	rec := &ctlRecorder{}
	c, err := NewController(ControllerConfig{
		Interval: 10 * time.Millisecond, StaleAfter: time.Hour,
		Pools:  []PoolControl{{Name: "web", Policy: ctlPolicy{n: 2}}},
		Source: ring, Recorder: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run returned %v, want the context's error", err)
	}
	if len(rec.got) < 2 {
		t.Errorf("%d decisions recorded in 100 ms at 10 ms intervals, want several", len(rec.got))
	}
}

// TestControllerPoolVanishes: a pool absent from the newer snapshots has
// no fresh data, so after 3 intervals its decisions are stale no-ops.
func TestControllerPoolVanishes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const iv = 10 * time.Second
	ring := NewSnapshotRing(8)
	app := &ctlApplier{}
	c, err := NewController(ControllerConfig{Interval: iv, Pools: []PoolControl{{Name: "web", Policy: ctlPolicy{n: 5}}}, Source: ring, Applier: app})
	if err != nil {
		t.Fatal(err)
	}
	ring.Add(ctlSnap(t0, 0))
	ring.Add(ctlSnap(t0.Add(iv), 10))
	for i := 2; i < 7; i++ {
		ring.Add(collector.Snapshot{Time: t0.Add(time.Duration(i) * iv), Source: "test"})
	}
	d := c.Tick(context.Background(), t0.Add(6*iv))[0]
	if d.Outcome != OutcomeNoop || !strings.Contains(d.Reason, "stale") || len(app.scales) != 0 {
		t.Errorf("decision %q (%s), %d scale calls; want a stale no-op", d.Outcome, d.Reason, len(app.scales))
	}
}

// afterRing is a snapshot ring that also answers After (as the daemon's
// store reader does), counting how the controller reads it.
type afterRing struct {
	*SnapshotRing
	recent, after int
	lastAfter     time.Time
}

func (r *afterRing) Recent(ctx context.Context, n int) ([]collector.Snapshot, error) {
	r.recent++
	return r.SnapshotRing.Recent(ctx, n)
}

func (r *afterRing) After(ctx context.Context, t time.Time, n int) ([]collector.Snapshot, error) {
	r.after++
	r.lastAfter = t
	all, err := r.SnapshotRing.Recent(ctx, n)
	var out []collector.Snapshot
	for _, s := range all {
		if s.Time.After(t) {
			out = append(out, s)
		}
	}
	return out, err
}

// TestControllerAfterSource: a source that answers After is read in full
// once, then only after the newest snapshot rated, and the windows the
// policy sees are the same as from Recent alone; the window never holds
// more than Window intervals.
func TestControllerAfterSource(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	plain, withAfter := NewSnapshotRing(8), &afterRing{SnapshotRing: NewSnapshotRing(8)}
	var seenPlain, seenAfter []Observation
	mk := func(src SnapshotSource, seen *[]Observation) *Controller {
		c, err := NewController(ControllerConfig{Interval: 10 * time.Second, Window: 3, Source: src,
			Pools: []PoolControl{{Name: "web", Policy: policyFunc(func(obs Observation) { *seen = append(*seen, obs) })}}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cp, ca := mk(plain, &seenPlain), mk(withAfter, &seenAfter)
	for i := range 9 {
		// Two snapshots per tick, so each tick adds two intervals.
		for k := range 2 {
			at := t0.Add(time.Duration(2*i+k) * 5 * time.Second)
			s := ctlSnap(at, uint64((2*i+k)*(2*i+k)))
			plain.Add(s)
			withAfter.Add(s)
		}
		now := t0.Add(time.Duration(2*i+1) * 5 * time.Second)
		cp.Tick(context.Background(), now)
		ca.Tick(context.Background(), now)
		if i > 0 && !withAfter.lastAfter.Equal(now.Add(-10*time.Second)) {
			t.Errorf("tick %d read after %v, want the previous tick's newest snapshot %v", i, withAfter.lastAfter, now.Add(-10*time.Second))
		}
	}
	if withAfter.recent != 1 || withAfter.after != 8 {
		t.Errorf("source read with Recent %d times and After %d times, want 1 and 8", withAfter.recent, withAfter.after)
	}
	if len(seenPlain) != 9 || len(seenAfter) != 9 {
		t.Fatalf("%d and %d observations, want 9 each", len(seenPlain), len(seenAfter))
	}
	for i := range seenPlain {
		p, a := seenPlain[i], seenAfter[i]
		if len(a.Window) != len(p.Window) || len(a.Window) > 3 {
			t.Fatalf("tick %d: window of %d intervals with After, %d without (want equal, <= 3)", i, len(a.Window), len(p.Window))
		}
		for j := range p.Window {
			if p.Window[j].Requests() != a.Window[j].Requests() {
				t.Errorf("tick %d interval %d: rate %v with After, %v without", i, j, a.Window[j].Requests(), p.Window[j].Requests())
			}
		}
	}
	// The last tick's window: intervals 14->15, 15->16, 16->17 at 5 s:
	// (k^2-(k-1)^2)/5 = (2k-1)/5 per server, two servers.
	want := []float64{2 * 29.0 / 5, 2 * 31.0 / 5, 2 * 33.0 / 5}
	last := seenAfter[len(seenAfter)-1].Window
	for j, w := range want {
		if got := last[j].Requests(); math.Abs(got-w) > 1e-9 {
			t.Errorf("last window[%d] rate %v, want %v", j, got, w)
		}
	}
}

// ctlCapApplier is a ctlApplier that reports capacities, as the simulator
// does.
type ctlCapApplier struct {
	ctlApplier
	caps map[string]float64
}

func (a *ctlCapApplier) Capacities(string) map[string]float64 { return a.caps }

// unequalPairSnap is the i-th 5 s snapshot of pool "web" with two M/M/1
// servers at half load: a serves 10 req/s (5 req/s at 200 ms), b 40 req/s
// (20 req/s at 50 ms); their estimated capacities are 0.4 and 1.6.
// HAProxy-like counters: requests and 2xx responses, the latency a gauge.
func unequalPairSnap(i int) collector.Snapshot {
	srv := func(name string, lambda, latMs float64) collector.Server {
		n := uint64(lambda * 5 * float64(i))
		return collector.Server{Name: name, Weight: 1, State: collector.StateUp,
			Counters: collector.Counters{Requests: n, Responses: [5]uint64{1: n}},
			Gauges:   collector.Gauges{AvgResponseMs: latMs}}
	}
	return collector.Snapshot{Time: t0.Add(time.Duration(i) * 5 * time.Second), Source: "test",
		Pools: []collector.Pool{{Name: "web", Servers: []collector.Server{srv("a", 5, 200), srv("b", 20, 50)}}}}
}

// TestControllerCapacity: an Applier that reports no capacities (HAProxy,
// NGINX) gets the pool's estimates from the rates, named in the
// decision's reason, once there are enough samples; one that reports them
// keeps its own.
func TestControllerCapacity(t *testing.T) {
	snap := unequalPairSnap
	for _, tc := range []struct {
		name    string
		applier Applier
		want    map[string]float64 // after 8 intervals; nil before the 3rd sample
		reason  string             // in the last decision's reason ("" = no estimate named)
	}{
		{name: "estimated", applier: &ctlApplier{}, want: map[string]float64{"a": 0.4, "b": 1.6}, reason: "capacity est a 0.40 b 1.60"},
		{name: "reported", applier: &ctlCapApplier{caps: map[string]float64{"a": 1, "b": 3}}, want: map[string]float64{"a": 1, "b": 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ring := NewSnapshotRing(16)
			var got []map[string]float64
			c, err := NewController(ControllerConfig{Interval: 5 * time.Second, StaleAfter: time.Hour,
				Pools: []PoolControl{{Name: "web", Policy: policyFunc(func(obs Observation) {
					got = append(got, obs.Capacity)
				})}},
				Source: ring, Applier: tc.applier})
			if err != nil {
				t.Fatal(err)
			}
			var last Decision
			for i := range 9 {
				ring.Add(snap(i))
				if i > 0 {
					last = c.Tick(context.Background(), snap(i).Time)[0]
				}
			}
			if len(got) != 8 {
				t.Fatalf("%d observations, want 8", len(got))
			}
			// a reaches 20 requests per sample every interval (25 req):
			// the third sample comes with the third interval.
			if _, ok := tc.applier.(*ctlCapApplier); !ok && got[1] != nil {
				t.Errorf("capacities after 2 intervals %v, want none yet", got[1])
			}
			for n, w := range tc.want {
				if math.Abs(got[7][n]-w) > 1e-9 {
					t.Errorf("capacity of %s %.4f, want %.4f (all %v)", n, got[7][n], w, got[7])
				}
			}
			if has := strings.Contains(last.Reason, "capacity est"); has != (tc.reason != "") || !strings.Contains(last.Reason, tc.reason) {
				t.Errorf("reason %q, want it to name %q", last.Reason, tc.reason)
			}
			// With capacities reported the estimator is not fed after the
			// first decision (only the first interval, before it).
			fed := 0
			for _, st := range c.pools[0].capacity.servers {
				fed += len(st.samples)
			}
			if _, reported := tc.applier.(*ctlCapApplier); reported && fed > 2 {
				t.Errorf("estimator fed %d samples with capacities reported, want at most the first interval's 2", fed)
			} else if !reported && fed < 8 {
				t.Errorf("estimator fed %d samples, want at least 8", fed)
			}
		})
	}
}
