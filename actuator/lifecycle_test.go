package actuator_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/actuator/fleet"
	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/internal/testkit"
	"github.com/lbtune/lbtune/testbed/dist"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

// haproxyWith starts a real HAProxy whose backend "web" has the given
// static servers; it returns its Runtime and front URL.
func haproxyWith(t *testing.T, servers []haproxy.ConfigServer) (*haproxy.Runtime, string) {
	t.Helper()
	dir := t.TempDir()
	front := freeAddr(t)
	c := haproxy.Config{Socket: filepath.Join(dir, "admin.sock"), Backends: []haproxy.Backend{{Name: "web", Bind: front, Servers: servers}}}
	var buf bytes.Buffer
	if err := haproxy.RenderConfig(&buf, c); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "/usr/sbin/haproxy", "-f", cfg, "-db")
	r := &haproxy.Runtime{Socket: c.Socket, PollInterval: 20 * time.Millisecond, DrainTimeout: 10 * time.Second,
		Log: slog.New(slog.DiscardHandler)}
	waitFor(t, func() error { _, err := r.Exec(context.Background(), "show info"); return err })
	return r, "http://" + front
}

// staticBackends starts n backend processes (not run by the fleet) and
// returns them as HAProxy config servers.
func staticBackends(t *testing.T, n int) []haproxy.ConfigServer {
	t.Helper()
	var out []haproxy.ConfigServer
	for i := range n {
		addr := freeAddr(t)
		startProcess(t, backendBin, "-listen", addr)
		out = append(out, haproxy.ConfigServer{Name: "static" + string(rune('a'+i)), Addr: addr, Weight: 10})
	}
	return out
}

// serversState is backend web's `show servers state`, one line per
// server, reduced to name, address, operational and administrative state
// and weights (the columns lbtune or a dead server change; not the timers).
func serversState(t *testing.T, r *haproxy.Runtime) []string {
	t.Helper()
	out, err := r.Exec(context.Background(), "show servers state web")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || strings.HasPrefix(line, "#") {
			continue
		}
		rows = append(rows, strings.Join(f[3:9], " ")) // srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight
	}
	slices.Sort(rows)
	return rows
}

// waitServing waits until HAProxy lists n servers of web serving.
func waitServing(t *testing.T, r *haproxy.Runtime, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss, err := r.PoolServers(context.Background(), "web")
		if err != nil {
			t.Fatal(err)
		}
		serving := 0
		for _, s := range ss {
			if s.Serving {
				serving++
			}
		}
		if serving == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("HAProxy serves %d servers of web, want %d: %+v", serving, n, ss)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testFleet(stateFile string) *fleet.Fleet {
	f := fleet.New(map[string]fleet.Template{"web": {
		Command:        []string{backendBin, "-listen", "{addr}"},
		HealthInterval: 100 * time.Millisecond, HealthFails: 3, StopGrace: 5 * time.Second,
	}})
	f.StateFile = stateFile
	f.Log = slog.New(slog.DiscardHandler)
	return f
}

// counting is a Provider that counts launches and stops.
type counting struct {
	actuator.Provider
	launches, stops atomic.Int64
}

func (c *counting) Launch(ctx context.Context, pool string) (actuator.Member, error) {
	c.launches.Add(1)
	return c.Provider.Launch(ctx, pool)
}

func (c *counting) Stop(ctx context.Context, pool string, m actuator.Member) error {
	c.stops.Add(1)
	return c.Provider.Stop(ctx, pool, m)
}

// TestGuardCountsServingHAProxy: issue 14's pool `heavy` (min 1, max 3)
// on a backend with 2 static servers, on real HAProxy and fleet processes:
// every path counts what serves, and max holds.
func TestGuardCountsServingHAProxy(t *testing.T) {
	ctx := context.Background()
	rt, _ := haproxyWith(t, staticBackends(t, 2))
	waitServing(t, rt, 2)
	fl := testFleet("")
	t.Cleanup(func() { _ = fl.Close() })
	prov := &counting{Provider: fl}
	p := actuator.NewPools(rt, prov, map[string]actuator.Limits{"web": {Min: 1, Max: 3, Weight: 10}})
	p.Log = slog.New(slog.DiscardHandler)
	count := func() actuator.Count {
		t.Helper()
		c, err := p.Count(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	if err := p.Scale(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	if c := count(); c.Static != 2 || c.Own != 0 || prov.launches.Load() != 0 {
		t.Fatalf("scale to min with 2 static serving: %+v, %d launches; want nothing launched", c, prov.launches.Load())
	}
	if err := p.Launch(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	if c := count(); c.Serving() != 3 || prov.launches.Load() != 1 {
		t.Fatalf("launch 1: %+v, %d launches; want 3 serving, 1 launch", c, prov.launches.Load())
	}
	waitServing(t, rt, 3)
	if err := p.Launch(ctx, "web", 1); !errors.Is(err, actuator.ErrLimit) {
		t.Errorf("launch beyond max: err = %v, want ErrLimit", err)
	}
	extra := staticBackends(t, 1)[0]
	if err := p.AddServer(ctx, "web", "extra", extra.Addr, 0); !errors.Is(err, actuator.ErrLimit) {
		t.Errorf("node add beyond max: err = %v, want ErrLimit", err)
	}
	if err := p.Scale(ctx, "web", 10); err != nil {
		t.Fatal(err)
	}
	if n := prov.launches.Load(); n != 1 {
		t.Errorf("scale to 10 at max launched %d more", n-1)
	}
	// The issue's -1: 3 serving, asked 2: the fleet's one server goes, none is added.
	if err := p.Scale(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	if c := count(); c.Serving() != 2 || c.Own != 0 || prov.launches.Load() != 1 || prov.stops.Load() != 1 {
		t.Errorf("scale -1: %+v, %d launches, %d stops; want 2 static serving, own one stopped", c, prov.launches.Load(), prov.stops.Load())
	}
	if err := p.AddServer(ctx, "web", "extra", extra.Addr, 0); err != nil {
		t.Fatal(err)
	}
	waitServing(t, rt, 3)
	if err := p.Scale(ctx, "web", 2); err != nil { // static ones are not removed, nothing launched
		t.Fatal(err)
	}
	state := serversState(t, rt)
	if len(state) != 3 || prov.launches.Load() != 1 {
		t.Errorf("show servers state %v, %d launches; want 3 servers (max), 1 launch", state, prov.launches.Load())
	}
	t.Logf("GUARD: final state %v", state)
}

// TestHeldPoolHAProxy: a held pool (shadow or paused) with a killed
// backend: Run starts and stops no process and HAProxy's servers state is
// unchanged; once acting again the dead server is replaced.
func TestHeldPoolHAProxy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, _ := haproxyWith(t, nil)
	fl := testFleet("")
	t.Cleanup(func() { _ = fl.Close() })
	prov := &counting{Provider: fl}
	p := actuator.NewPools(rt, prov, map[string]actuator.Limits{"web": {Min: 2, Max: 3, Weight: 10}})
	p.Interval = 100 * time.Millisecond
	var logs testkit.SyncBuffer
	p.Log = slog.New(slog.NewTextHandler(&logs, nil))
	var acting atomic.Bool
	acting.Store(true)
	p.Acting = func(string) bool { return acting.Load() }
	if err := p.Scale(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	waitServing(t, rt, 2)
	acting.Store(false)
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()

	ms, err := fl.Members(ctx, "web")
	if err != nil || len(ms) != 2 {
		t.Fatalf("members %v, %v", ms, err)
	}
	victim := ms[0]
	if err := syscall.Kill(pidListening(t, victim.Addr), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitServing(t, rt, 1) // HAProxy's own checks mark it down
	launches, stops := prov.launches.Load(), prov.stops.Load()
	before := serversState(t, rt)
	time.Sleep(2 * time.Second) // 20 supervision ticks
	after := serversState(t, rt)
	if !slices.Equal(before, after) {
		t.Errorf("held pool: servers state changed:\nbefore %v\nafter  %v", before, after)
	}
	if l, s := prov.launches.Load()-launches, prov.stops.Load()-stops; l != 0 || s != 0 {
		t.Errorf("held pool: %d launches, %d stops, want none", l, s)
	}
	if now, _ := fl.Members(ctx, "web"); len(now) != 2 {
		t.Errorf("held pool: members %+v, want the 2 (one dead) untouched", now)
	}
	if !strings.Contains(logs.String(), "pool held") {
		t.Errorf("held pool: plan not logged:\n%s", logs.String())
	}
	// Acting again, the dead server is replaced.
	acting.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for prov.stops.Load() == stops || prov.launches.Load() == launches {
		if time.Now().After(deadline) {
			t.Fatal("acting again: dead server not replaced within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitServing(t, rt, 2)
	cancel()
	<-runDone
	t.Logf("HOLD: state while held %v; replaced once acting", before)
}

// TestHandoverUnderLoadHAProxy: under load through real HAProxy, a fleet
// pool's run ends (Close: handover) and a new run adopts its servers: no
// request fails, and HAProxy holds exactly the pool's servers, all up, no
// leftover or DOWN entry.
func TestHandoverUnderLoadHAProxy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	state := filepath.Join(t.TempDir(), "fleet.json")
	rt, front := haproxyWith(t, nil)
	limits := map[string]actuator.Limits{"web": {Min: 2, Max: 4, Weight: 10}}

	start := func(fl *fleet.Fleet) (*actuator.Pools, context.CancelFunc, chan error) {
		p := actuator.NewPools(rt, fl, limits)
		p.Interval = 200 * time.Millisecond
		p.Log = slog.New(slog.DiscardHandler)
		if err := p.Adopt(ctx); err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(rctx) }()
		return p, stop, done
	}
	fl1 := testFleet(state)
	p1, stop1, done1 := start(fl1)
	if err := p1.Scale(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	waitServing(t, rt, 2)
	ms1, _ := fl1.Members(ctx, "web")

	const rate, dur = 40.0, 10 * time.Second
	summary := make(chan loadgen.Summary, 1)
	go func() {
		s, err := loadgen.Run(ctx, loadgen.Config{
			Targets:  []loadgen.Weighted{{URL: front + "/job?ms=20", Weight: 1}},
			Schedule: loadgen.Constant(rate, dist.Fixed, dur),
			Duration: dur, Timeout: 10 * time.Second, Seed: 1,
		})
		if err != nil {
			t.Errorf("load: %v", err)
		}
		summary <- s
	}()
	time.Sleep(3 * time.Second)
	stop1()
	<-done1
	if err := fl1.Close(); err != nil { // lbtune stops: handover
		t.Fatal(err)
	}
	time.Sleep(time.Second) // lbtune is down for a second
	fl2 := testFleet(state)
	_, stop2, done2 := start(fl2)
	last := fl2 // the fleet whose servers the test stops at the end
	t.Cleanup(func() { _ = last.StopAll(context.Background()) })
	s := <-summary

	ms2, _ := fl2.Members(ctx, "web")
	names := func(ms []actuator.Member) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		slices.Sort(out)
		return out
	}
	got := serversState(t, rt)
	t.Logf("HANDOVER: %d requests at %.0f req/s across a stop and an adopting start, %d failed %v; servers before %v, adopted %v; show servers state %v",
		s.Requests, rate, s.Failures, s.FailuresByKind, names(ms1), names(ms2), got)
	if s.Requests < int(rate*dur.Seconds()*0.8) {
		t.Errorf("only %d requests sent", s.Requests)
	}
	if s.Failures != 0 {
		t.Errorf("%d of %d requests failed across the handover: %v", s.Failures, s.Requests, s.FailuresByKind)
	}
	if !slices.Equal(names(ms1), names(ms2)) {
		t.Errorf("adopted %v, want the servers handed over %v", names(ms2), names(ms1))
	}
	if len(got) != 2 {
		t.Errorf("show servers state has %d entries, want the 2 adopted: %v", len(got), got)
	}
	for _, row := range got {
		if f := strings.Fields(row); len(f) < 4 || f[2] != "2" || f[3] != "0" { // op_state 2 = running, admin_state 0 = ready
			t.Errorf("entry not up and ready: %q", row)
		}
	}

	// lbtune dies (kill -9: no Close) and a server dies meanwhile: the
	// next start adopts the live one from the records written at every
	// change, deregisters the dead one and launches a replacement.
	stop2()
	<-done2
	if err := syscall.Kill(pidListening(t, ms2[0].Addr), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitServing(t, rt, 1)
	fl3 := testFleet(state)
	_, stop3, done3 := start(fl3)
	last = fl3
	defer func() { stop3(); <-done3 }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = serversState(t, rt)
		up := 0
		for _, row := range got {
			if f := strings.Fields(row); f[2] == "2" && f[3] == "0" {
				up++
			}
		}
		if len(got) == 2 && up == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a crash and a dead server: show servers state %v, want 2 entries up, the dead one gone", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, row := range got {
		if strings.HasPrefix(row, ms2[0].Name+" ") {
			t.Errorf("dead server %s still registered: %v", ms2[0].Name, got)
		}
	}
	ms3, _ := fl3.Members(ctx, "web")
	t.Logf("HANDOVER: after kill -9 of lbtune and of server %s: members %v; show servers state %v", ms2[0].Name, names(ms3), got)
}
