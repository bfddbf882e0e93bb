package testbed

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/testbed/backend"
	"github.com/lbtune/lbtune/testbed/dist"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

// asBackend makes the test binary serve as an lbtune backend when the
// testbed re-executes it ("<test binary> backend --listen ..."), so the
// integration test does not depend on building cmd/lbtune.
const asBackend = "LBTUNE_TESTBED_TEST_BACKEND"

func TestMain(m *testing.M) {
	if os.Getenv(asBackend) == "1" && len(os.Args) > 1 && os.Args[1] == "backend" {
		os.Exit(serveBackend(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func serveBackend(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	var f backend.Flags
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := f.Config()
	if err == nil {
		err = f.Serve(ctx, c, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		return 1
	}
	return 0
}

func requireBinaries(t *testing.T) {
	t.Helper()
	for _, b := range []string{"/usr/sbin/haproxy", "/usr/sbin/nginx"} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("%s is missing (apt-get install -y haproxy nginx): %v", b, err)
		}
	}
}

func testConfig(t *testing.T) Config {
	t.Setenv(asBackend, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.StateDir = t.TempDir()
	c.Backend.Command = self
	// Small, fast pools: the test checks plumbing, not capacity.
	c.Backend.LightMs, c.Backend.MediumMs, c.Backend.HeavyMs = 1, 2, 4
	c.Pools = []PoolConfig{
		{Name: "light", Min: 1, Max: 20, Servers: 2, Concurrency: 8, Speeds: []float64{2, 1}, Weight: 10},
		{Name: "medium", Min: 1, Max: 15, Servers: 1, Concurrency: 4, Weight: 10},
		{Name: "heavy", Min: 1, Max: 10, Servers: 1, Concurrency: 4, Weight: 10},
	}
	return c
}

// TestUpLoadDown is the end-to-end check: up, 200 req/s through
// HAProxy and through NGINX with no failure, a second up refused, down
// leaves no process behind.
func TestUpLoadDown(t *testing.T) {
	requireBinaries(t)
	c := testConfig(t)
	ctx := context.Background()
	st, err := Up(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	procs := st.Processes()
	t.Cleanup(func() { _, _ = Down(context.Background(), c.StateDir) })
	if len(procs) != 6 {
		t.Fatalf("%d processes, want 2 balancers + 4 backends", len(procs))
	}
	for _, p := range procs {
		if !p.Alive {
			t.Fatalf("%s pid %d not running after up", p.Name, p.PID)
		}
	}
	if got := st.Sources(); len(got) != 2 || !strings.HasPrefix(got[0], "haproxy+unix://") || !strings.HasPrefix(got[1], "nginxlog+udp://127.0.0.1:") {
		t.Fatalf("sources %v", got)
	}

	t.Run("second up refused", func(t *testing.T) {
		_, err := Up(ctx, c, nil)
		if !errors.Is(err, ErrRunning) {
			t.Fatalf("second Up: %v, want ErrRunning", err)
		}
	})
	for _, tc := range []struct{ name, addr string }{{"haproxy", st.HAProxy.Addr}, {"nginx", st.NGINX.Addr}} {
		t.Run("load through "+tc.name, func(t *testing.T) {
			targets, err := loadgen.ParseMix("/light=60,/medium=30,/heavy=10", "http://"+tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			servers := map[string]int{}
			sum, err := loadgen.Run(ctx, loadgen.Config{
				Targets: targets, Schedule: loadgen.Constant(200, dist.Exponential, 3*time.Second), Duration: 3 * time.Second, Seed: 1,
				Records: func(r loadgen.Record) error { servers[r.Server]++; return nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Failures != 0 || sum.Requests < 400 {
				t.Fatalf("%d requests, %d failures %v", sum.Requests, sum.Failures, sum.FailuresByKind)
			}
			if sum.P50Ms <= 0 || sum.P99Ms < sum.P50Ms || sum.P99Ms > 2000 {
				t.Fatalf("implausible percentiles p50 %.2f p99 %.2f", sum.P50Ms, sum.P99Ms)
			}
			// Every backend got some of the traffic: the pools are wired.
			for _, b := range st.Backends {
				if servers[b.Name] == 0 {
					t.Errorf("backend %s got no request (%v)", b.Name, servers)
				}
			}
		})
	}

	t.Run("explore changes weights in both balancers", func(t *testing.T) {
		hp := &haproxy.Runtime{Socket: st.HAProxy.Socket}
		for _, tc := range []struct {
			name string
			// weightOf reads the weight the balancer now uses for a server.
			weightOf func(c Change) int
		}{
			{name: "haproxy", weightOf: func(c Change) int {
				s, err := hp.ServerStat(ctx, c.Pool, c.Server)
				if err != nil {
					t.Fatal(err)
				}
				return s.Weight
			}},
			{name: "nginx", weightOf: func(c Change) int {
				// The live include file NGINX was reloaded with: "server ADDR weight=N; # NAME".
				b, err := os.ReadFile(st.NGINX.Include)
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(string(b), "\n") {
					var w int
					if i := strings.Index(line, "weight="); i >= 0 && strings.HasSuffix(line, "# "+c.Server) {
						if _, err := fmt.Sscanf(line[i:], "weight=%d;", &w); err == nil {
							return w
						}
					}
				}
				return -1
			}},
		} {
			setter, source, err := st.WeightSetter(tc.name, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			e := NewExplorer(st, setter, 300*time.Millisecond, 30, rand.NewPCG(5, 5))
			ectx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			var out bytes.Buffer
			h := datasets.Header{Format: datasets.Format, Version: datasets.FileVersion, Source: source, Created: time.Now().UTC()}
			err = ExploreDataset(ectx, &out, h, st, e, tc.name)
			cancel()
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			// The dataset file: the header, two initial events per
			// backend, then the changes.
			r, err := datasets.NewReader(&out, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			var evs []datasets.Event
			for {
				en, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil || en.Event == nil {
					t.Fatalf("%s: entry %+v, %v; want events only", tc.name, en, err)
				}
				evs = append(evs, *en.Event)
			}
			if r.Header().Source != source || len(evs) <= 2*len(st.Backends) {
				t.Fatalf("%s: source %q, %d events; want %q and more than the %d initial ones", tc.name, r.Header().Source, len(evs), source, 2*len(st.Backends))
			}
			if ev := evs[1]; ev.Kind != "weight" || ev.Detail != "initial" || ev.Value != float64(st.Backends[0].Weight) {
				t.Errorf("%s: second event %+v, want the first backend's initial weight", tc.name, ev)
			}
			ev := evs[len(evs)-1]
			last := Change{Pool: ev.Pool, Server: ev.Server, New: int(ev.Value)}
			if ev.Kind != "weight" || !strings.HasSuffix(ev.Detail, " via "+tc.name) {
				t.Errorf("%s: last event %+v, want a weight change via %s", tc.name, ev, tc.name)
			}
			if got := tc.weightOf(last); got != last.New {
				t.Errorf("%s: %s/%s weight %d, want %d", tc.name, last.Pool, last.Server, got, last.New)
			}
		}
	})

	if _, _, err := st.WeightSetter("envoy", nil); err == nil {
		t.Error("WeightSetter(envoy): no error")
	}

	down, err := Down(ctx, c.StateDir)
	if err != nil {
		t.Fatalf("Down: %v", err)
	}
	for _, p := range down.Processes() {
		if p.Alive {
			t.Errorf("%s pid %d still running after down", p.Name, p.PID)
		}
	}
	if _, err := LoadState(c.StateDir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("state after down: %v, want ErrNotRunning", err)
	}
	if _, err := Down(ctx, c.StateDir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("second Down: %v, want ErrNotRunning", err)
	}
}

// TestUpStandby starts a pool with two of its three servers on standby:
// HAProxy shows them in maintenance and sends every request to the one in
// service, without a failure.
func TestUpStandby(t *testing.T) {
	requireBinaries(t)
	c := testConfig(t)
	c.Balancers = []string{"haproxy"}
	c.Pools = []PoolConfig{{Name: "light", Min: 1, Max: 3, Servers: 3, Standby: 2, Concurrency: 4, Weight: 10}}
	ctx := context.Background()
	st, err := Up(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = Down(context.Background(), c.StateDir) })
	rows, err := (&haproxy.Runtime{Socket: st.HAProxy.Socket}).Servers(ctx, "light")
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, r := range rows {
		status[r.Server] = r.Status
	}
	if len(status) != 3 || status["light-1"] == "MAINT" || status["light-2"] != "MAINT" || status["light-3"] != "MAINT" {
		t.Fatalf("server status %v, want light-1 in service and light-2, light-3 in MAINT", status)
	}
	targets, err := loadgen.ParseMix("/light=1", "http://"+st.HAProxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]int{}
	sum, err := loadgen.Run(ctx, loadgen.Config{
		Targets: targets, Schedule: loadgen.Constant(100, dist.Exponential, time.Second), Duration: time.Second, Seed: 1,
		Records: func(r loadgen.Record) error { servers[r.Server]++; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failures != 0 || sum.Requests < 50 || servers["light-1"] != sum.Requests {
		t.Fatalf("%d requests, %d failures, by server %v: want all on light-1, none failed", sum.Requests, sum.Failures, servers)
	}
}

// TestLeastConnHeterogeneous: on servers of speeds 1:2:4 (2 slots, 100 ms
// jobs at speed 1: 20, 40 and 80 req/s) at 70% of the pool's 140 req/s,
// the same seeded arrivals through a real HAProxy at equal weights: under
// roundrobin the slow server gets a third of 98 req/s against its 20 and
// queues without bound; leastconn sends it what it can take. Leastconn's
// p95 must be under half of roundrobin's, none of its requests may fail,
// and it must give the fastest server the largest share (docs/RESULTS.md,
// issue 18 section 5, has the full comparison).
func TestLeastConnHeterogeneous(t *testing.T) {
	requireBinaries(t)
	run := func(balance string) (loadgen.Summary, map[string]int) {
		t.Helper()
		c := testConfig(t)
		c.Balancers = []string{"haproxy"}
		c.HAProxy.LogRequests = false
		c.Backend.LightMs, c.Backend.Queue = 100, 100
		c.Pools = []PoolConfig{{Name: "web", Min: 3, Max: 3, Servers: 3, Concurrency: 2, Speeds: []float64{1, 2, 4},
			Weights: []int{100}, Balance: balance}}
		ctx := context.Background()
		st, err := Up(ctx, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := Down(context.Background(), c.StateDir); err != nil {
				t.Errorf("down: %v", err)
			}
		}()
		cfg, err := os.ReadFile(st.HAProxy.Config)
		if err != nil {
			t.Fatal(err)
		}
		if want := "balance " + balance; !strings.Contains(string(cfg), want) {
			t.Fatalf("haproxy.cfg lacks %q", want)
		}
		targets, err := loadgen.ParseMix("/light=1", "http://"+st.HAProxy.Addr)
		if err != nil {
			t.Fatal(err)
		}
		servers := map[string]int{}
		const d = 10 * time.Second
		sum, err := loadgen.Run(ctx, loadgen.Config{
			Targets: targets, Schedule: loadgen.Constant(98, dist.Exponential, d), Duration: d, Seed: 7,
			Timeout: 10 * time.Second, Workers: 16, MaxWorkers: 256,
			Records: func(r loadgen.Record) error { servers[r.Server]++; return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		return sum, servers
	}
	rr, rrBy := run(haproxy.BalanceRoundRobin)
	lc, lcBy := run(haproxy.BalanceLeastConn)
	t.Logf("roundrobin: %d requests, %d failed, p95 %.0f ms, by server %v", rr.Requests, rr.Failures, rr.P95Ms, rrBy)
	t.Logf("leastconn:  %d requests, %d failed, p95 %.0f ms, by server %v", lc.Requests, lc.Failures, lc.P95Ms, lcBy)
	if lc.Requests < 800 || rr.Requests < 800 {
		t.Fatalf("too few requests sent (%d, %d of about 980): the client fell behind", rr.Requests, lc.Requests)
	}
	if lc.Failures != 0 {
		t.Errorf("leastconn: %d of %d requests failed", lc.Failures, lc.Requests)
	}
	if lc.P95Ms >= 0.5*rr.P95Ms {
		t.Errorf("leastconn p95 %.0f ms is not under half of roundrobin's %.0f ms", lc.P95Ms, rr.P95Ms)
	}
	if lcBy["web-3"] <= lcBy["web-1"] {
		t.Errorf("leastconn sent the fast server (web-3, speed 4) %d requests, the slow one (web-1) %d", lcBy["web-3"], lcBy["web-1"])
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
		check   func(Config) bool
	}{
		{name: "empty means defaults", doc: "", check: func(c Config) bool { return len(c.Pools) == 3 && c.Pools[2].Max == 10 }},
		{name: "example parses", doc: Example(), check: func(c Config) bool { return c.Pools[0].Max == 20 && c.Pools[1].Max == 15 }},
		{name: "haproxy only", doc: "balancers: [haproxy]\n", check: func(c Config) bool { return c.Has("haproxy") && !c.Has("nginx") }},
		{name: "unknown key", doc: "balancer: [haproxy]\n", wantErr: "balancer"},
		{name: "bad balancer", doc: "balancers: [envoy]\n", wantErr: "envoy"},
		{name: "servers above max", doc: "pools: [{name: a, min: 1, max: 2, servers: 3, concurrency: 1, weight: 1}]\n", wantErr: "servers (3) <= max (2)"},
		{name: "bad weight", doc: "pools: [{name: a, min: 1, max: 2, servers: 1, weight: 0}]\n", wantErr: "weight"},
		{name: "weights", doc: "pools: [{name: a, max: 3, servers: 3, speeds: [1, 2, 4], weights: [25, 50, 100], balance: leastconn}]\n",
			check: func(c Config) bool { return c.Pools[0].Balance == "leastconn" && c.Pools[0].Weights[2] == 100 }},
		{name: "bad weights", doc: "pools: [{name: a, max: 2, servers: 2, weights: [1, 257]}]\n", wantErr: "weights: 257 outside 1..256"},
		{name: "bad balance", doc: "pools: [{name: a, max: 2, servers: 2, weight: 1, balance: source}]\n", wantErr: `balance "source": want roundrobin or leastconn`},
		{name: "bad speed", doc: "pools: [{name: a, min: 1, max: 2, servers: 1, weight: 1, speeds: [0]}]\n", wantErr: "speed"},
		{name: "repeated pool", doc: "pools: [{name: a, max: 1, servers: 1, weight: 1}, {name: a, max: 1, servers: 1, weight: 1}]\n", wantErr: "repeated"},
		{name: "bad work", doc: "backend: {work: gpu}\n", wantErr: "gpu"},
		{name: "standby", doc: "balancers: [haproxy]\npools: [{name: a, max: 6, servers: 6, standby: 4, weight: 1}]\n", check: func(c Config) bool { return c.Pools[0].Standby == 4 }},
		{name: "standby every server", doc: "pools: [{name: a, max: 2, servers: 2, standby: 2, weight: 1}]\n", wantErr: "standby 2 must be in 0..servers-1 (1)"},
		{name: "negative standby", doc: "pools: [{name: a, max: 2, servers: 2, standby: -1, weight: 1}]\n", wantErr: "standby -1"},
		{name: "standby without haproxy", doc: "balancers: [nginx]\npools: [{name: a, max: 2, servers: 2, standby: 1, weight: 1}]\n", wantErr: "standby servers need the haproxy balancer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("config %+v", c)
			}
		})
	}
}

func TestRenderHAProxyRoutesPools(t *testing.T) {
	c := DefaultConfig()
	st := &State{HAProxy: &HAProxyState{Socket: "/x/s.sock", Addr: "127.0.0.1:1", StatsAddr: "127.0.0.1:2", Syslog: "127.0.0.1:4"},
		Backends: []BackendState{{Pool: "light", Name: "light-1", Addr: "127.0.0.1:3", Weight: 7}}}
	cfg := renderHAProxy(c, st)
	for _, want := range []string{"stats socket /x/s.sock mode 600 level admin", "balance roundrobin", "use_backend heavy if { path_beg /heavy }",
		"default_backend light", "server light-1 127.0.0.1:3 weight 7", "option httplog",
		"log stdout format raw local0 info", "log 127.0.0.1:4 local0 info"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q:\n%s", want, cfg)
		}
	}
}
