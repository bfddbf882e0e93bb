package nginx

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbtune/lbtune/actuator"
)

func appUpstream(addrs ...string) []Upstream {
	u := Upstream{Name: "app", Zone: "64k"}
	for _, a := range addrs {
		u.Servers = append(u.Servers, UpstreamServer{Address: a, Weight: 1})
	}
	return []Upstream{u}
}

// TestApplyRollsBack: a config nginx -t refuses is never reloaded, the
// include file keeps its bytes, and NGINX keeps serving (see also
// TestValidationFailureNeverTouchesInclude, which watches the file while
// nginx -t runs).
func TestApplyRollsBack(t *testing.T) {
	b := newBackend(t)
	n := startNginx(t, appUpstream(b.addr()))
	ctx := context.Background()
	before, err := os.ReadFile(n.files.Include)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ups     []Upstream
		wantErr error
	}{
		// Passes RenderUpstreams but not nginx -t: the host does not resolve.
		{"unresolvable host", appUpstream("no-such-host.invalid:80"), ErrValidation},
		// The main config proxies to "app": without it nginx -t fails.
		{"upstream missing", []Upstream{{Name: "other", Servers: []UpstreamServer{{Address: b.addr(), Weight: 1}}}}, ErrValidation},
		// Refused by the renderer before anything is written.
		{"weight out of range", []Upstream{{Name: "app", Servers: []UpstreamServer{{Address: b.addr(), Weight: 5000}}}}, ErrInvalidUpstream},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := n.Apply(ctx, tc.ups); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Apply err = %v, want %v", err, tc.wantErr)
			}
			after, err := os.ReadFile(n.files.Include)
			if err != nil || !bytes.Equal(after, before) {
				t.Errorf("include file not restored (err %v):\n%s", err, after)
			}
			if body, err := get(n.front + "/x"); err != nil || body != b.addr() {
				t.Errorf("old config not serving: %q, %v", body, err)
			}
			if got := n.Upstreams(); got[0].Servers[0].Address != b.addr() {
				t.Errorf("managed state changed to %+v", got)
			}
		})
	}
}

// TestPoolChanges adds, reweights and removes servers of a live NGINX; a
// request in flight on a removed server finishes (old workers drain it).
func TestPoolChanges(t *testing.T) {
	slow, fast := newBackend(t), newBackend(t)
	n := startNginx(t, appUpstream(slow.addr()))
	ctx := context.Background()

	// Weights: 1000:1 sends (nearly) everything to the fast server.
	if err := n.AddServer(ctx, "app", "fast", fast.addr(), 1); err != nil {
		t.Fatal(err)
	}
	if err := n.SetWeights(ctx, "app", map[string]int{"fast": 1000, slow.addr(): 1}); err != nil {
		t.Fatal(err)
	}
	slowBefore := slow.hits.Load()
	for range 40 {
		if _, err := get(n.front + "/w"); err != nil {
			t.Fatal(err)
		}
	}
	if got := slow.hits.Load() - slowBefore; got > 2 {
		t.Errorf("slow server got %d of 40 requests at weight 1 vs 1000", got)
	}
	if err := n.SetWeights(ctx, "app", map[string]int{"nosuch": 3}); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown server: err = %v, want ErrUnknown", err)
	}
	if err := n.SetWeights(ctx, "app", map[string]int{"fast": 0}); !errors.Is(err, ErrInvalidUpstream) {
		t.Errorf("weight 0: err = %v, want ErrInvalidUpstream", err)
	}
	// Put slow requests in flight on the slow server (fast weight 1: each
	// request has an even chance; keep sending until some are on it).
	if err := n.SetWeights(ctx, "app", map[string]int{"fast": 1, slow.addr(): 1000}); err != nil {
		t.Fatal(err)
	}
	slow.delay.Store(int64(700 * time.Millisecond))
	var wg sync.WaitGroup
	results := make(chan error, 8)
	hitsBefore := slow.hits.Load()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := get(n.front + "/slow")
			results <- err
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for slow.hits.Load() == hitsBefore && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if slow.hits.Load() == hitsBefore {
		t.Fatalf("no request reached the slow server (fast hits %d)", fast.hits.Load())
	}
	start := time.Now()
	if err := n.RemoveServer(ctx, "app", slow.addr()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Errorf("request failed while its server was removed: %v", err)
		}
	}
	if took < 300*time.Millisecond {
		t.Errorf("RemoveServer returned after %s, before the in-flight 700ms requests ended", took)
	}
	// Afterwards only the fast server answers.
	hits := slow.hits.Load()
	for range 5 {
		if body, err := get(n.front + "/after"); err != nil || body != fast.addr() {
			t.Fatalf("after removal: %q, %v", body, err)
		}
	}
	if slow.hits.Load() != hits {
		t.Error("removed server still got requests")
	}
	if ups := n.Upstreams(); len(ups[0].Servers) != 1 || ups[0].Servers[0].Address != fast.addr() {
		t.Errorf("managed upstream = %+v, want only %s", ups[0].Servers, fast.addr())
	}
	// The last server leaves too: NGINX refuses an empty upstream, so it
	// holds the Parked line (down), and NGINX answers 502 without a dial.
	if err := n.RemoveServer(ctx, "app", "fast"); err != nil {
		t.Fatal(err)
	}
	if ups := n.Upstreams(); len(ups[0].Servers) != 1 || ups[0].Servers[0] != Parked {
		t.Errorf("upstream after its last server left = %+v, want only %+v", ups[0].Servers, Parked)
	}
	if w := n.Applied("app"); w == nil || len(w) != 0 {
		t.Errorf("Applied of a parked upstream = %v, want empty (not nil: the upstream is managed)", w)
	}
	if ss, err := n.PoolServers(ctx, "app"); err != nil || len(ss) != 0 {
		t.Errorf("PoolServers of a parked upstream = %+v, %v; want none", ss, err)
	}
	if _, err := n.PoolServers(ctx, "nope"); !errors.Is(err, ErrUnknown) {
		t.Errorf("PoolServers of an unknown upstream: %v, want ErrUnknown", err)
	}
	if _, err := get(n.front + "/parked"); err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("request to a parked upstream: %v, want a 502", err)
	}
	// A server joining drops the Parked line in the same reload.
	if err := n.AddServer(ctx, "app", "fast", fast.addr(), 2); err != nil {
		t.Fatal(err)
	}
	if ups := n.Upstreams(); len(ups[0].Servers) != 1 || ups[0].Servers[0].Address != fast.addr() || ups[0].Servers[0].Down {
		t.Errorf("upstream after a server joined a parked one = %+v, want only %s, up", ups[0].Servers, fast.addr())
	}
	if inc, _ := os.ReadFile(n.files.Include); strings.Contains(string(inc), Parked.Name) {
		t.Errorf("include still holds the parked line:\n%s", inc)
	}
	if ss, err := n.PoolServers(ctx, "app"); err != nil || len(ss) != 1 || ss[0] != (actuator.ServerState{Name: "fast", Addr: fast.addr(), Serving: true, State: "UP"}) {
		t.Errorf("PoolServers after the server joined = %+v, %v; want fast serving", ss, err)
	}
	if body, err := get(n.front + "/back"); err != nil || body != fast.addr() {
		t.Errorf("re-added server: %q, %v", body, err)
	}
}

// BenchmarkApply times one validated reload: render, atomic write,
// nginx -t, SIGHUP and wait for the new workers.
func BenchmarkApply(b *testing.B) {
	be := newBackend(b)
	n := startNginx(b, appUpstream(be.addr()))
	ctx := context.Background()
	ups := n.Upstreams()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ups[0].Servers[0].Weight = 1 + i%1000
		if _, err := n.Apply(ctx, ups); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApplyReloadFailureRollsBack: when the master does not reload (here
// the pid file names a process that ignores SIGHUP), the include file is
// restored (and signalled again) and the error is ErrReload.
func TestApplyReloadFailureRollsBack(t *testing.T) {
	b := newBackend(t)
	n := startNginx(t, appUpstream(b.addr()))
	stubborn := exec.Command("sh", "-c", `trap "" HUP; sleep 30`)
	if err := stubborn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stubborn.Process.Kill(); _ = stubborn.Wait() })
	fake := filepath.Join(t.TempDir(), "fake.pid")
	if err := os.WriteFile(fake, []byte(strconv.Itoa(stubborn.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := n.files
	files.PIDFile = fake
	m := New(files, n.Upstreams())
	m.ReloadTimeout = 300 * time.Millisecond
	before, _ := os.ReadFile(files.Include)
	ups := m.Upstreams()
	ups[0].Servers[0].Weight = 9
	if _, err := m.Apply(context.Background(), ups); !errors.Is(err, ErrReload) {
		t.Fatalf("err = %v, want ErrReload", err)
	}
	if after, _ := os.ReadFile(files.Include); !bytes.Equal(after, before) {
		t.Errorf("include not restored after a failed reload:\n%s", after)
	}
	if got := m.Upstreams()[0].Servers[0].Weight; got != 1 {
		t.Errorf("managed weight = %d after a failed reload, want 1", got)
	}
}
