package actuator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbtune/lbtune/internal/testkit"
)

// recorder is a Balancer and a Provider that record calls in order; the
// real ones run in proof_test.go.
type recorder struct {
	mu        sync.Mutex
	calls     []string
	members   []Member
	next      int
	failDrain map[string]bool
	onLaunch  func()
	static    []ServerState // servers in the balancer pool the provider does not run
}

// PoolServers lists the static servers and the members (serving if healthy).
func (r *recorder) PoolServers(context.Context, string) ([]ServerState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.static)
	for _, m := range r.members {
		out = append(out, ServerState{Name: m.Name, Addr: m.Addr, Serving: m.Healthy})
	}
	return out, nil
}

func (r *recorder) log(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) SetWeights(_ context.Context, pool string, w map[string]int) error {
	r.log("weights %s %d", pool, len(w))
	return nil
}
func (r *recorder) AddServer(_ context.Context, pool, name, addr string, w int) error {
	r.log("add %s w%d", name, w)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.ContainsFunc(r.members, func(m Member) bool { return m.Name == name }) {
		r.static = append(r.static, ServerState{Name: name, Addr: addr, Serving: true})
	}
	return nil
}
func (r *recorder) RemoveServer(_ context.Context, pool, name string) error {
	r.log("drain %s", name)
	if r.failDrain[name] {
		return errors.New("balancer refused")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.static = slices.DeleteFunc(r.static, func(s ServerState) bool { return s.Name == name })
	return nil
}
func (r *recorder) Launch(_ context.Context, pool string) (Member, error) {
	if r.onLaunch != nil {
		r.onLaunch()
	}
	r.mu.Lock()
	r.next++
	m := Member{Name: fmt.Sprintf("s%d", r.next), Addr: "a", Healthy: true, Started: time.Unix(int64(r.next), 0)}
	r.members = append(r.members, m)
	r.calls = append(r.calls, "launch "+m.Name)
	r.mu.Unlock()
	return m, nil
}
func (r *recorder) Stop(_ context.Context, pool string, m Member) error {
	r.mu.Lock()
	r.members = slices.DeleteFunc(r.members, func(x Member) bool { return x.Name == m.Name })
	r.mu.Unlock()
	r.log("stop %s", m.Name)
	return nil
}
func (r *recorder) Members(context.Context, string) ([]Member, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.members), nil
}

// index returns the position of call in r.calls (-1 if absent).
func (r *recorder) index(call string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Index(r.calls, call)
}

func TestPoolsScale(t *testing.T) {
	tests := []struct {
		name    string
		start   int    // servers before
		scale   int    // Scale(n)
		kill    string // member marked unhealthy before Scale
		noDrain string // member whose drain the balancer refuses
		want    int    // healthy members after
		check   func(t *testing.T, r *recorder)
		wantErr string
	}{
		{name: "grow adds each new server", start: 1, scale: 3, want: 3, check: func(t *testing.T, r *recorder) {
			if r.index("launch s2") > r.index("add s2 w7") || r.index("add s3 w7") < 0 {
				t.Errorf("calls %v: each server must be added after its launch", r.calls)
			}
		}},
		{name: "shrink drains newest first, before stopping", start: 4, scale: 2, want: 2, check: func(t *testing.T, r *recorder) {
			if r.index("drain s4") < 0 || r.index("drain s3") < 0 || r.index("drain s2") >= 0 || r.index("drain s1") >= 0 {
				t.Errorf("calls %v: want s4 and s3 drained, s1 and s2 kept", r.calls)
			}
			if r.index("drain s3") > r.index("stop s3") || r.index("drain s4") > r.index("stop s4") {
				t.Errorf("calls %v: stopped before drained", r.calls)
			}
		}},
		{name: "clamped to max", start: 1, scale: 10, want: 4},
		{name: "clamped to min", start: 3, scale: 0, want: 2},
		{name: "failed server replaced before it is removed", start: 2, scale: 2, kill: "s1", want: 2, check: func(t *testing.T, r *recorder) {
			if r.index("add s3 w7") < 0 || r.index("add s3 w7") > r.index("drain s1") {
				t.Errorf("calls %v: replacement must join before the failed server is drained", r.calls)
			}
		}},
		{name: "undrained server is not stopped", start: 3, scale: 2, noDrain: "s3", want: 3, wantErr: "balancer refused", check: func(t *testing.T, r *recorder) {
			if r.index("stop s3") >= 0 {
				t.Errorf("calls %v: a server the balancer still uses was stopped", r.calls)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{failDrain: map[string]bool{tc.noDrain: true}}
			ctx := context.Background()
			for range tc.start {
				_, _ = r.Launch(ctx, "web")
			}
			for i := range r.members {
				if r.members[i].Name == tc.kill {
					r.members[i].Healthy = false
				}
			}
			r.calls = nil
			p := NewPools(r, r, map[string]Limits{"web": {Min: 2, Max: 4, Weight: 7}})
			err := p.Scale(ctx, "web", tc.scale)
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			healthy := 0
			for _, m := range r.members {
				if m.Healthy {
					healthy++
				}
			}
			if healthy != tc.want {
				t.Errorf("healthy members = %d, want %d (calls %v)", healthy, tc.want, r.calls)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
	t.Run("booting counts launches in progress", func(t *testing.T) {
		r := &recorder{}
		p := NewPools(r, r, map[string]Limits{"web": {Min: 1, Max: 4}})
		var seen []int
		var mu sync.Mutex
		r.onLaunch = func() { mu.Lock(); seen = append(seen, p.Booting("web")); mu.Unlock() }
		if err := p.Scale(context.Background(), "web", 3); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 3 || slices.Max(seen) != 3 {
			t.Errorf("Booting during launches = %v, want 3 seen", seen)
		}
		if b := p.Booting("web"); b != 0 {
			t.Errorf("Booting after Scale = %d, want 0", b)
		}
	})
	t.Run("unknown pool", func(t *testing.T) {
		p := NewPools(&recorder{}, &recorder{}, nil)
		if err := p.Scale(context.Background(), "x", 1); !errors.Is(err, ErrUnknownPool) {
			t.Errorf("err = %v", err)
		}
		if err := p.SetWeights(context.Background(), "x", nil); !errors.Is(err, ErrUnknownPool) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestPoolsCountWhatServes: min and max bound every server serving in the
// balancer pool, static (configured, `node add`) and launched alike.
func TestPoolsCountWhatServes(t *testing.T) {
	ctx := context.Background()
	tick := func(p *Pools) error {
		st := p.pools["web"]
		st.mu.Lock()
		defer st.mu.Unlock()
		return p.reconcile(ctx, "web", st)
	}
	tests := []struct {
		name         string
		static, down int // static servers serving, and down
		own          int // servers the provider runs
		limits       Limits
		op           func(p *Pools) error
		wantErr      error
		wantLaunches int
		wantStops    int
		wantServing  int
	}{
		{name: "issue 14: -1 with 6 serving (max 3) never adds", static: 5, own: 1, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.Scale(ctx, "web", 5) }, wantStops: 1, wantServing: 5},
		{name: "scale counts static servers", static: 2, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.Scale(ctx, "web", 3) }, wantLaunches: 1, wantServing: 3},
		{name: "scale clamped to max counting static", static: 2, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.Scale(ctx, "web", 10) }, wantLaunches: 1, wantServing: 3},
		{name: "scale at min with static servers launches none", static: 2, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.Scale(ctx, "web", 1) }, wantServing: 2},
		{name: "scale-in below min with nothing serving launches none", down: 2, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.Scale(ctx, "web", -1) }, wantServing: 0},
		{name: "down static servers do not count", static: 1, down: 2, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.Scale(ctx, "web", 3) }, wantLaunches: 2, wantServing: 3},
		{name: "launch 1 with 3 static starts exactly 1", static: 3, limits: Limits{Min: 1, Max: 6},
			op: func(p *Pools) error { return p.Launch(ctx, "web", 1) }, wantLaunches: 1, wantServing: 4},
		{name: "launch 2 within max", static: 2, own: 1, limits: Limits{Min: 1, Max: 5},
			op: func(p *Pools) error { return p.Launch(ctx, "web", 2) }, wantLaunches: 2, wantServing: 5},
		{name: "launch beyond max refused", static: 2, own: 1, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.Launch(ctx, "web", 1) }, wantErr: ErrLimit, wantServing: 3},
		{name: "node add beyond max refused", static: 2, own: 1, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.AddServer(ctx, "web", "extra", "a", 0) }, wantErr: ErrLimit, wantServing: 3},
		{name: "node add within max is kept by supervision", static: 1, own: 1, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error {
				if err := p.AddServer(ctx, "web", "extra", "a", 0); err != nil {
					return err
				}
				return tick(p)
			}, wantServing: 3},
		{name: "node rm below min refused", static: 1, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.RemoveServer(ctx, "web", "static0") }, wantErr: ErrLimit, wantServing: 1},
		{name: "node rm of an own server stops it and is not replaced", static: 1, own: 2, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error {
				if err := p.RemoveServer(ctx, "web", "s2"); err != nil {
					return err
				}
				return tick(p)
			}, wantStops: 1, wantServing: 2},
		{name: "node rm of a down entry always allowed", static: 1, down: 1, limits: Limits{Min: 1, Max: 3},
			op: func(p *Pools) error { return p.RemoveServer(ctx, "web", "down0") }, wantServing: 1},
		{name: "supervision launches to min counting static", down: 1, limits: Limits{Min: 2, Max: 3},
			op: tick, wantLaunches: 2, wantServing: 2},
		{name: "supervision trims own servers above max", static: 3, own: 2, limits: Limits{Min: 1, Max: 4},
			op: tick, wantStops: 1, wantServing: 4},
		{name: "supervision does not trim below max", static: 3, own: 1, limits: Limits{Min: 1, Max: 4},
			op: tick, wantServing: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			for i := range tc.static {
				r.static = append(r.static, ServerState{Name: fmt.Sprintf("static%d", i), Serving: true, State: "UP"})
			}
			for i := range tc.down {
				r.static = append(r.static, ServerState{Name: fmt.Sprintf("down%d", i), State: "DOWN"})
			}
			for range tc.own {
				_, _ = r.Launch(ctx, "web")
			}
			r.calls = nil
			p := NewPools(r, r, map[string]Limits{"web": tc.limits})
			err := tc.op(p)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			launches, stops := 0, 0
			for _, c := range r.calls {
				launches += boolInt(strings.HasPrefix(c, "launch "))
				stops += boolInt(strings.HasPrefix(c, "stop "))
			}
			if launches != tc.wantLaunches || stops != tc.wantStops {
				t.Errorf("launched %d, stopped %d; want %d, %d (calls %v)", launches, stops, tc.wantLaunches, tc.wantStops, r.calls)
			}
			c, err := p.Count(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			if c.Serving() != tc.wantServing {
				t.Errorf("serving = %d (%+v), want %d (calls %v)", c.Serving(), c, tc.wantServing, r.calls)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPoolsHeld: a pool Acting holds gets no launch, replacement or stop
// from Run, and the plan is logged once per change.
func TestPoolsHeld(t *testing.T) {
	r := &recorder{}
	ctx := context.Background()
	_, _ = r.Launch(ctx, "web")
	r.members[0].Healthy = false
	r.calls = nil
	var buf testkit.SyncBuffer
	p := NewPools(r, r, map[string]Limits{"web": {Min: 2, Max: 3}})
	p.Log = slog.New(slog.NewTextHandler(&buf, nil))
	p.Interval = 5 * time.Millisecond
	var acting atomic.Bool
	p.Acting = func(string) bool { return acting.Load() }
	rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_ = p.Run(rctx)
	cancel()
	if len(r.calls) != 0 {
		t.Errorf("held pool: calls %v, want none", r.calls)
	}
	if n := strings.Count(buf.String(), "pool held"); n != 1 {
		t.Errorf("held plan logged %d times, want once:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "launch 2") || !strings.Contains(buf.String(), "replace failed [s1]") {
		t.Errorf("log does not say what it would do:\n%s", buf.String())
	}
	acting.Store(true)
	rctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	_ = p.Run(rctx)
	cancel()
	if r.index("launch s3") < 0 || r.index("stop s1") < 0 {
		t.Errorf("acting again: calls %v, want s1 replaced", r.calls)
	}
}

// adopter is a recorder's balancer with a provider that hands over
// members from a previous run; its members are the adopted ones, which the
// recorder's balancer list does not add (its static entries stand for the
// balancer's state).
type adopter struct {
	*recorder
	adopted, gone []Member
	done          bool
}

func (a *adopter) Adopt(_ context.Context, pool string) ([]Member, []Member, error) {
	a.done = true
	return a.adopted, a.gone, nil
}

func (a *adopter) Members(context.Context, string) ([]Member, error) {
	if !a.done {
		return nil, nil
	}
	return a.adopted, nil
}

// TestPoolsAdopt: live servers are kept (registered again if the balancer
// lost or drained them), gone ones are deregistered only if listed, and
// the pool is kept at what serves.
func TestPoolsAdopt(t *testing.T) {
	r := &recorder{static: []ServerState{
		{Name: "a", Serving: true, State: "UP"},
		{Name: "c", State: "DRAIN"},
		{Name: "d", State: "DOWN"},
	}}
	ad := &adopter{recorder: r,
		adopted: []Member{{Name: "a", Healthy: true}, {Name: "b", Healthy: true}, {Name: "c", Healthy: true}},
		gone:    []Member{{Name: "d", Reason: "process gone"}, {Name: "e", Reason: "process gone"}},
	}
	p := NewPools(r, ad, map[string]Limits{"web": {Min: 1, Max: 5}})
	if err := p.Adopt(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"add b w1", "drain c", "add c w1", "drain d"} {
		if r.index(want) < 0 {
			t.Errorf("calls %v: want %q", r.calls, want)
		}
	}
	for _, never := range []string{"drain a", "add a w1", "drain e", "drain b"} {
		if r.index(never) >= 0 {
			t.Errorf("calls %v: unexpected %q", r.calls, never)
		}
	}
	if d, _ := p.Desired("web"); d != 3 {
		t.Errorf("desired after adopt = %d, want the 3 adopted", d)
	}
}
