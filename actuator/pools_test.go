package actuator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
	return nil
}
func (r *recorder) RemoveServer(_ context.Context, pool, name string) error {
	r.log("drain %s", name)
	if r.failDrain[name] {
		return errors.New("balancer refused")
	}
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
	r.mu.Unlock()
	r.log("launch %s", m.Name)
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
