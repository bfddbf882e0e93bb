package tuner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbtune/lbtune/actuator/fleet"
	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/tuner/config"
)

var (
	backendOnce sync.Once
	backendBin  string
	backendErr  error
)

// testBackend builds actuator/fleet/testdata/backend once per test binary.
func testBackend(t *testing.T) string {
	t.Helper()
	backendOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lbtune-tuner-backend")
		if err != nil {
			backendErr = err
			return
		}
		backendBin = filepath.Join(dir, "backend")
		out, err := exec.Command("go", "build", "-o", backendBin, "../actuator/fleet/testdata/backend").CombinedOutput()
		if err != nil {
			backendErr = fmt.Errorf("build backend: %v: %s", err, out)
		}
	})
	if backendErr != nil {
		t.Fatal(backendErr)
	}
	return backendBin
}

// startProc starts the test backend on addr, killed at cleanup.
func startProc(t *testing.T, bin, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "-listen", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	waitFor(t, func() bool { return httpOK("http://" + addr + "/healthz") })
	return cmd
}

// startHAProxyFor renders c into dir, starts HAProxy and returns a Runtime.
func startHAProxyFor(t *testing.T, dir string, c haproxy.Config) *haproxy.Runtime {
	t.Helper()
	const bin = "/usr/sbin/haproxy"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("haproxy binary %s missing (install the haproxy package; CI does): %v", bin, err)
	}
	c.Socket = filepath.Join(dir, "admin.sock")
	var buf bytes.Buffer
	if err := haproxy.RenderConfig(&buf, c); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	r := &haproxy.Runtime{Socket: c.Socket, PollInterval: 20 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	waitFor(t, func() bool {
		_, err := r.Exec(context.Background(), "show info")
		return err == nil
	})
	return r
}

func httpOK(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// serverConfig is what lbtune may change of a server in HAProxy: its
// name, address, admin state and weight (not its health, HAProxy's own).
func serverConfig(t *testing.T, r *haproxy.Runtime, backend string) string {
	t.Helper()
	out, err := r.Exec(context.Background(), "show servers state "+backend)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 8 || strings.HasPrefix(l, "#") {
			continue
		}
		// be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight
		rows = append(rows, strings.Join([]string{f[3], f[4], f[6], f[7]}, " "))
	}
	sort.Strings(rows)
	return strings.Join(rows, "\n")
}

// procsOf counts running processes whose executable is bin.
func procsOf(bin string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), bin+"\x00") {
			n++
		}
	}
	return n
}

// fleetDaemon writes lbtune.yaml for one HAProxy-backed fleet pool "web"
// and returns the running daemon and its stop function.
func fleetDaemon(t *testing.T, dir, socket, bin, mode string, min, max int) (*Daemon, func()) {
	t.Helper()
	cfg := fmt.Sprintf(`api: {listen: %q, token_file: lbtune.token}
store: {path: lbtune.db}
intervals: {scrape: 1s, scrape_timeout: 500ms, decide: 1s}
mode: %s
sources:
  - {name: haproxy, uri: "haproxy+unix://%s"}
actuators:
  - name: haproxy
    haproxy: {socket: %q}
  - name: local
    fleet: {balancer: haproxy}
pools:
  - name: web
    source: haproxy
    actuator: local
    template: {min: %d, max: %d, command: "%s -listen {addr}", target_seconds: 0.5, max_weight: 256}
`, freeAddr(t), mode, socket, socket, min, max, bin)
	if err := os.WriteFile(filepath.Join(dir, "lbtune.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lbtune.token"), []byte("test-token-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(filepath.Join(dir, "lbtune.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(c, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Run did not return 20 s after cancel")
			}
			// The daemon handed its servers over to a next start that is
			// not coming: stop them, so no test leaves processes behind.
			sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer scancel()
			if err := fleet.StopRecorded(sctx, filepath.Join(dir, "lbtune.db.fleet-local.json")); err != nil {
				t.Errorf("stop handed-over servers: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// TestShadowFleetChangesNothing runs a shadow daemon over a fleet pool
// for about 10 s, one of its servers killed: nothing is started or
// stopped, HAProxy's servers keep their configuration, and every decision
// is recorded as a dry run.
func TestShadowFleetChangesNothing(t *testing.T) {
	bin := testBackend(t)
	dir := t.TempDir()
	a1, a2 := freeAddr(t), freeAddr(t)
	p1 := startProc(t, bin, a1)
	startProc(t, bin, a2)
	rt := startHAProxyFor(t, dir, haproxy.Config{Backends: []haproxy.Backend{{Name: "web", Bind: freeAddr(t),
		Servers: []haproxy.ConfigServer{{Name: "s1", Addr: a1, Weight: 100}, {Name: "s2", Addr: a2, Weight: 100}}}}})
	before := serverConfig(t, rt, "web")
	d, stop := fleetDaemon(t, dir, rt.Socket, bin, "shadow", 3, 5)

	time.Sleep(3 * time.Second)
	_ = p1.Process.Kill()
	time.Sleep(7 * time.Second)

	if n := procsOf(bin); n != 1 {
		t.Errorf("%d backend processes run, want 1 (the one not killed): the shadow daemon started some", n)
	}
	if after := serverConfig(t, rt, "web"); after != before {
		t.Errorf("HAProxy servers changed in shadow mode:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Node operations are refused in shadow mode.
	for _, req := range []api.NodeRequest{{Op: "launch", Pool: "web"}, {Op: "add", Pool: "web", Address: freeAddr(t)}, {Op: "rm", Pool: "web", Name: "s2"}} {
		if _, err := d.Node(context.Background(), req); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "pool web is in shadow mode") {
			t.Errorf("node %s in shadow mode: %v, want a conflict saying the pool is in shadow mode", req.Op, err)
		}
	}
	if _, err := d.Scale(context.Background(), "web", 1); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "pool web is in shadow mode") {
		t.Errorf("scale in shadow mode: %v", err)
	}
	// /v1/policy reads the backend's algorithm from HAProxy; two equal
	// servers get no advice.
	pol, err := d.Policy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b := pol.Pools[0].Balance; b == nil || b.Algorithm != "roundrobin" || b.Auto || b.Advice != "" || b.Error != "" {
		t.Errorf("policy balance %+v, want roundrobin, not auto, no advice", b)
	}
	ds, err := d.Decisions(context.Background(), "web", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if len(ds) < 3 {
		t.Fatalf("%d decisions recorded in ~10 s, want several", len(ds))
	}
	dry := 0
	for _, dec := range ds {
		if dec.Outcome == agent.OutcomeDryRun {
			dry++
		}
		// Before two snapshots the controller decides nothing at all.
		noData := dec.Outcome == agent.OutcomeNoop && strings.Contains(dec.Reason, "not enough data")
		if dec.Outcome != agent.OutcomeDryRun && !noData {
			t.Errorf("decision at %s: outcome %q, want %q (%s)", dec.Time, dec.Outcome, agent.OutcomeDryRun, dec.Reason)
		}
	}
	if n := procsOf(bin); n != 1 {
		t.Errorf("after stop: %d backend processes, want 1", n)
	}
	if after := serverConfig(t, rt, "web"); after != before {
		t.Errorf("HAProxy servers changed by the shadow daemon's shutdown:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if dry < 3 {
		t.Errorf("%d dry-run decisions of %d, want several", dry, len(ds))
	}
	t.Logf("%d decisions, %d dry runs (the others: no data yet); HAProxy servers:\n%s", len(ds), dry, before)
}

// TestFleetLimitsWithStaticServers: a pool with 2 static servers and a
// fleet of min 1 max 3. Supervision launches nothing (2 serve >= min), a
// node add or launch beyond max is refused as a conflict naming the
// limit, scale -1 never adds a server, and serving stays <= 3 throughout.
func TestFleetLimitsWithStaticServers(t *testing.T) {
	bin := testBackend(t)
	dir := t.TempDir()
	a1, a2, a3, a4 := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	startProc(t, bin, a1)
	startProc(t, bin, a2)
	startProc(t, bin, a3)
	startProc(t, bin, a4)
	rt := startHAProxyFor(t, dir, haproxy.Config{Backends: []haproxy.Backend{{Name: "web", Bind: freeAddr(t),
		Servers: []haproxy.ConfigServer{{Name: "s1", Addr: a1, Weight: 100}, {Name: "s2", Addr: a2, Weight: 100}}}}})
	d, stop := fleetDaemon(t, dir, rt.Socket, bin, "manual", 1, 3)
	fa := d.actuators["local"].(*fleetApplier)
	ctx := context.Background()

	var most atomic.Int64
	sctx, scancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sctx.Err() == nil {
			if c, err := fa.Count(sctx, "web"); err == nil && int64(c.Serving()+c.Booting) > most.Load() {
				most.Store(int64(c.Serving() + c.Booting))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	if n := procsOf(bin); n != 4 {
		t.Errorf("supervision started servers with 2 static serving >= min 1: %d backend processes, want 4", n)
	}
	// An address that is not HOST:PORT never reaches HAProxy (HAProxy
	// registered "<<" as a server with no address).
	before := serverConfig(t, rt, "web")
	for _, addr := range []string{"<<", "h\v:80", "127.0.0.1:0", "127.0.0.1", "bad host:80"} {
		_, err := d.Node(ctx, api.NodeRequest{Op: "add", Pool: "web", Name: "bad", Address: addr})
		if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "address") {
			t.Errorf("node add %q: %v, want a bad request naming the address", addr, err)
		}
	}
	if after := serverConfig(t, rt, "web"); after != before {
		t.Errorf("HAProxy servers changed by refused adds:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := d.Node(ctx, api.NodeRequest{Op: "add", Pool: "web", Name: "s3", Address: a3}); err != nil {
		t.Fatalf("node add s3 (3rd of max 3): %v", err)
	}
	_, err := d.Node(ctx, api.NodeRequest{Op: "add", Pool: "web", Name: "s4", Address: a4})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "max 3") {
		t.Errorf("node add beyond max: %v, want a conflict naming max 3", err)
	}
	_, err = d.Node(ctx, api.NodeRequest{Op: "launch", Pool: "web"})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "max 3") {
		t.Errorf("node launch beyond max: %v, want a conflict naming max 3", err)
	}
	// Wait for data with 3 servers, then scale -1: it never adds.
	waitFor(t, func() bool {
		st, _ := d.State(ctx)
		l := st.Pools[0].Latest
		return l != nil && l.Servers == 3
	})
	for range 2 {
		dec, err := d.Scale(ctx, "web", -1)
		if err != nil {
			t.Fatalf("scale -1: %v", err)
		}
		t.Logf("scale -1: %s %s (%s)", dec.Outcome, dec.Reason, dec.Error)
		if c, err := fa.Count(ctx, "web"); err != nil || c.Serving() > 3 {
			t.Errorf("after scale -1: %+v %v", c, err)
		}
	}
	time.Sleep(2 * time.Second)
	if n := procsOf(bin); n != 4 {
		t.Errorf("%d backend processes after scale -1, want 4: something was launched", n)
	}
	scancel()
	wg.Wait()
	if m := most.Load(); m > 3 {
		t.Errorf("serving + booting reached %d, above max 3", m)
	}
	stop()
}

// TestTemplateUpDownFleet: `template up` of a fleet pool not configured
// at start launches its minimum; `template down` takes it to zero (below
// min) and stops its processes.
func TestTemplateUpDownFleet(t *testing.T) {
	bin := testBackend(t)
	dir := t.TempDir()
	a1 := freeAddr(t)
	startProc(t, bin, a1)
	rt := startHAProxyFor(t, dir, haproxy.Config{Backends: []haproxy.Backend{
		{Name: "web", Bind: freeAddr(t), Servers: []haproxy.ConfigServer{{Name: "s1", Addr: a1, Weight: 100}}},
		{Name: "api", Bind: freeAddr(t)},
	}})
	d, stop := fleetDaemon(t, dir, rt.Socket, bin, "manual", 1, 3)
	ctx := context.Background()
	spec := []byte(fmt.Sprintf("name: api\nsource: haproxy\nactuator: local\nmode: manual\ntemplate: {min: 2, max: 3, command: \"%s -listen {addr}\", target_seconds: 0.5, max_weight: 256}\n", bin))
	msg, err := d.Template(ctx, "up", spec)
	if err != nil {
		t.Fatalf("template up: %v", err)
	}
	t.Log(msg)
	fa := d.actuators["local"].(*fleetApplier)
	if c, err := fa.Count(ctx, "api"); err != nil || c.Serving() != 2 {
		t.Fatalf("after template up: %+v %v, want 2 serving", c, err)
	}
	if n := procsOf(bin); n != 3 {
		t.Errorf("%d backend processes, want 3 (1 static + 2 launched)", n)
	}
	time.Sleep(1500 * time.Millisecond) // supervision ticks: keeps 2
	msg, err = d.Template(ctx, "down", spec)
	if err != nil {
		t.Fatalf("template down: %v", err)
	}
	t.Log(msg)
	if c, err := fa.Count(ctx, "api"); err != nil || c.Serving() != 0 {
		t.Errorf("after template down: %+v %v, want 0 serving", c, err)
	}
	time.Sleep(1500 * time.Millisecond) // supervision holds the pool: nothing relaunched
	if n := procsOf(bin); n != 1 {
		t.Errorf("%d backend processes after template down, want 1 (the static one)", n)
	}
	stop()
}
