package actuator_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/actuator/fleet"
	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/actuator/nginx"
	"github.com/lbtune/lbtune/testbed/dist"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

// The proof's size. The go test runs a short version; scripts/proof-drain.sh
// sets LBTUNE_PROOF_CYCLES=50 LBTUNE_PROOF_WEIGHTS=20 for the full one.
func proofSize(t *testing.T) (cycles, weights int, rate float64) {
	cycles, weights, rate = 10, 5, 100
	if testing.Short() {
		cycles, weights = 3, 2
	}
	for name, dst := range map[string]*int{"LBTUNE_PROOF_CYCLES": &cycles, "LBTUNE_PROOF_WEIGHTS": &weights} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("%s=%q: want a count", name, v)
			}
			*dst = n
		}
	}
	if v := os.Getenv("LBTUNE_PROOF_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			t.Fatalf("LBTUNE_PROOF_RATE=%q: want req/s", v)
		}
		rate = r
	}
	return cycles, weights, rate
}

var backendBin string

// The balancers and providers plug into Pools.
var (
	_ actuator.Balancer = (*haproxy.Runtime)(nil)
	_ actuator.Balancer = (*nginx.NGINX)(nil)
	_ actuator.Provider = (*fleet.Fleet)(nil)
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "actuator-proof")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	backendBin = filepath.Join(dir, "backend")
	if out, err := exec.Command("go", "build", "-o", backendBin, "./fleet/testdata/backend").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build test backend: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess runs argv in the foreground and stops it (SIGTERM, then
// SIGKILL) in t.Cleanup.
func startProcess(t *testing.T, argv ...string) {
	t.Helper()
	if _, err := os.Stat(argv[0]); err != nil {
		t.Fatalf("%s missing (install it; CI does): %v", argv[0], err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", argv[0], out.String())
		}
	})
}

// balancerSetup starts a real balancer for pool "web" in front of first
// (a server already running) and returns the Balancer and the front URL.
type balancerSetup func(t *testing.T, first actuator.Member) (actuator.Balancer, string)

func setupHAProxy(t *testing.T, first actuator.Member) (actuator.Balancer, string) {
	dir := t.TempDir()
	front := freeAddr(t)
	c := haproxy.Config{Socket: filepath.Join(dir, "admin.sock"), Backends: []haproxy.Backend{{
		Name: "web", Bind: front,
		Servers: []haproxy.ConfigServer{{Name: first.Name, Addr: first.Addr, Weight: 10}},
	}}}
	var buf bytes.Buffer
	if err := haproxy.RenderConfig(&buf, c); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "/usr/sbin/haproxy", "-f", cfg, "-db")
	r := &haproxy.Runtime{Socket: c.Socket, PollInterval: 20 * time.Millisecond, DrainTimeout: 10 * time.Second}
	waitFor(t, func() error { _, err := r.Exec(context.Background(), "show info"); return err })
	return r, "http://" + front
}

func setupNginx(t *testing.T, first actuator.Member) (actuator.Balancer, string) {
	dir := t.TempDir()
	front := freeAddr(t)
	f := nginx.Files{Bin: "/usr/sbin/nginx", Prefix: dir, MainConf: filepath.Join(dir, "nginx.conf"),
		ErrorLog: filepath.Join(dir, "error.log"), PIDFile: filepath.Join(dir, "nginx.pid"),
		Include: filepath.Join(dir, "upstreams.conf")}
	ups := []nginx.Upstream{{Name: "web", Zone: "64k", Servers: []nginx.UpstreamServer{
		{Name: first.Name, Address: first.Addr, Weight: 10}}}}
	var buf bytes.Buffer
	if err := nginx.RenderUpstreams(&buf, ups); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Include, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	main := fmt.Sprintf(`%s
worker_processes 2;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[3]s;
    server {
        listen %[4]s;
        location / {
            proxy_pass http://web;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
        }
    }
}
`, user, dir, f.Include, front)
	if err := os.WriteFile(f.MainConf, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, f.Bin, "-p", dir, "-e", f.ErrorLog, "-c", f.MainConf)
	n := nginx.New(f, ups)
	n.DrainTimeout = 10 * time.Second
	waitFor(t, func() error { _, err := n.MasterPID(); return err })
	return n, "http://" + front
}

func waitFor(t *testing.T, try func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := try()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProofDrain: under constant load through a real balancer, scale out
// and in `cycles` times and change weights `weights` times: no request
// fails. Then kill -9 a backend: it is replaced within 10 s and the pool
// stays at its size.
func TestProofDrain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup balancerSetup
	}{
		{"haproxy", setupHAProxy},
		{"nginx", setupNginx},
	} {
		t.Run(tc.name, func(t *testing.T) { runProof(t, tc.setup) })
	}
}

func runProof(t *testing.T, setup balancerSetup) {
	cycles, weightChanges, rate := proofSize(t)
	const pool, minServers, maxServers = "web", 2, 4
	fl := fleet.New(map[string]fleet.Template{pool: {
		Command:        []string{backendBin, "-listen", "{addr}"},
		HealthInterval: 100 * time.Millisecond, HealthFails: 3, StopGrace: 5 * time.Second,
	}})
	t.Cleanup(func() { _ = fl.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	first, err := fl.Launch(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	bal, front := setup(t, first)
	pools := actuator.NewPools(bal, fl, map[string]actuator.Limits{pool: {Min: minServers, Max: maxServers, Weight: 10}})
	pools.Interval = 200 * time.Millisecond
	if err := pools.Scale(ctx, pool, minServers); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- pools.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-runDone })

	// Load: constant rate for as long as the actions take (cancelled when
	// they are done; bounded at 10 minutes, several times a full run's
	// length, in case the test hangs); 30 ms jobs, so a drained server
	// usually has requests in flight.
	const loadBound = 10 * time.Minute
	load := func(ctx context.Context) <-chan loadgen.Summary {
		out := make(chan loadgen.Summary, 1)
		go func() {
			s, err := loadgen.Run(ctx, loadgen.Config{
				Targets:  []loadgen.Weighted{{URL: front + "/job?ms=30", Weight: 1}},
				Schedule: loadgen.Constant(rate, dist.Fixed, loadBound),
				Duration: loadBound, Timeout: 10 * time.Second, Seed: 1,
			})
			if err != nil {
				t.Errorf("load: %v", err)
			}
			out <- s
		}()
		return out
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	summary := load(loadCtx)
	time.Sleep(500 * time.Millisecond)

	// Scale cycles with weight changes spread over them.
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	var outTimes, inTimes []time.Duration
	done := 0
	for i := range max(cycles, weightChanges) {
		if i < cycles {
			n := minServers + 1 + rng.IntN(maxServers-minServers)
			t0 := time.Now()
			if err := pools.Scale(ctx, pool, n); err != nil {
				t.Fatalf("cycle %d scale out to %d: %v", i, n, err)
			}
			outTimes = append(outTimes, time.Since(t0))
			// Let the new servers take requests (30 ms jobs) so that some
			// are in flight on the servers drained next.
			time.Sleep(200 * time.Millisecond)
			t0 = time.Now()
			if err := pools.Scale(ctx, pool, minServers); err != nil {
				t.Fatalf("cycle %d scale in: %v", i, err)
			}
			inTimes = append(inTimes, time.Since(t0))
		}
		if i < weightChanges {
			ms, err := fl.Members(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			w := map[string]int{}
			for _, m := range ms {
				w[m.Name] = 1 + rng.IntN(100)
			}
			if err := pools.SetWeights(ctx, pool, w); err != nil {
				t.Fatalf("weight change %d: %v", i, err)
			}
			done++
		}
	}
	elapsed := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	stopLoad()
	s := <-summary
	t.Logf("PROOF %s: %d scale cycles (out avg %s, in avg %s), %d weight changes in %s; load %.0f req/s: %d requests, %d failed %v",
		t.Name(), cycles, avg(outTimes), avg(inTimes), done, elapsed.Round(time.Millisecond), rate, s.Requests, s.Failures, s.FailuresByKind)
	if s.Requests == 0 {
		t.Fatal("no requests were sent")
	}
	if s.Failures != 0 {
		t.Errorf("%d of %d requests failed during scaling: %v", s.Failures, s.Requests, s.FailuresByKind)
	}

	// kill -9 one backend under load: replaced, pool back at min and kept there.
	killCtx, stopKill := context.WithCancel(ctx)
	killSummary := load(killCtx)
	time.Sleep(300 * time.Millisecond)
	ms, err := fl.Members(ctx, pool)
	if err != nil || len(ms) != minServers {
		t.Fatalf("members before kill: %d, %v; want %d", len(ms), err, minServers)
	}
	victim := ms[0]
	pid := pidListening(t, victim.Addr)
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var replaced time.Duration
	for replaced == 0 && time.Since(killed) < 15*time.Second {
		cur, _ := fl.Members(ctx, pool)
		healthy := 0
		for _, m := range cur {
			if m.Healthy && m.Name != victim.Name {
				healthy++
			}
		}
		if healthy >= minServers {
			replaced = time.Since(killed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if replaced == 0 {
		t.Fatal("killed backend not replaced within 15 s")
	}
	// Afterwards the pool never drops below min (sampled for 2 s).
	lowest := maxServers
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		cur, _ := fl.Members(ctx, pool)
		healthy := 0
		for _, m := range cur {
			if m.Healthy {
				healthy++
			}
		}
		lowest = min(lowest, healthy)
	}
	stopKill()
	ks := <-killSummary
	t.Logf("PROOF %s: kill -9 of %s: replaced in %s, lowest healthy size afterwards %d (min %d); load during kill: %d requests, %d failed %v",
		t.Name(), victim.Name, replaced.Round(time.Millisecond), lowest, minServers, ks.Requests, ks.Failures, ks.FailuresByKind)
	if replaced > 10*time.Second {
		t.Errorf("replacement took %s, want < 10 s", replaced)
	}
	if lowest < minServers {
		t.Errorf("pool fell to %d healthy servers after the replacement, min is %d", lowest, minServers)
	}
}

func avg(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return (sum / time.Duration(len(ds))).Round(time.Millisecond)
}

// pidListening finds the pid of the process listening on addr via /proc.
func pidListening(t *testing.T, addr string) int {
	t.Helper()
	out, err := exec.Command("ss", "-Htlnp", "sport = :"+addr[len("127.0.0.1:"):]).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var pid int
	if i := bytes.Index(out, []byte("pid=")); i >= 0 {
		fmt.Sscanf(string(out[i+4:]), "%d", &pid)
	}
	if pid == 0 {
		t.Fatalf("no pid listening on %s: %s", addr, out)
	}
	return pid
}
