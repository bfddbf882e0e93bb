package ab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbtune/lbtune/actuator/fleet"
	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/actuator/nginx"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/testbed"
	"github.com/lbtune/lbtune/testbed/dist"
	"github.com/lbtune/lbtune/testbed/loadgen"
	"github.com/lbtune/lbtune/tuner"
	"github.com/lbtune/lbtune/tuner/config"
)

// poolName is the one pool of an A/B run.
const poolName = "web"

// runReal runs one policy on a fresh HAProxy + fleet pool + daemon and
// scores it from the load generator's records.
func runReal(ctx context.Context, plan *Plan, c Config, policy, root string) (Result, error) {
	dir := filepath.Join(root, dirName(policy))
	// Every run starts fresh: no store, fleet state or records of an
	// earlier run in the same --out directory.
	if err := os.RemoveAll(dir); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	lb, err := startBalancer(ctx, c, dir)
	if err != nil {
		return Result{}, err
	}
	// Stopped last (deferred first): the daemon takes the pool down
	// through it.
	defer lb.stop()
	front := lb.addr

	logf, err := os.Create(filepath.Join(dir, "lbtune.log"))
	if err != nil {
		return Result{}, err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, nil))
	cfgPath := filepath.Join(dir, "lbtune.yaml")
	if err := os.WriteFile(cfgPath, []byte(daemonConfig(plan, c, policy, lb)), 0o600); err != nil {
		return Result{}, err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return Result{}, fmt.Errorf("daemon config: %w", err)
	}
	d, err := tuner.New(cfg, log, time.Now)
	if err != nil {
		return Result{}, fmt.Errorf("daemon: %w", err)
	}
	dctx, dstop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx, nil) }()
	stopped := false
	stopDaemon := func() error {
		if stopped {
			return nil
		}
		stopped = true
		// Take the pool to zero first: a stopping daemon hands its servers
		// over to the next start, and an A/B run leaves nothing running.
		// Each server's drain is an nginx -t and a reload (or a runtime
		// command) and a wait for its requests: 30 s was too little for 8
		// NGINX drains on a CI machine running every package at once.
		down, cancelDown := context.WithTimeout(context.Background(), 2*time.Minute)
		msg, derr := d.Template(down, "down", []byte(poolSpec(plan, c, policy)))
		cancelDown()
		log.Info("ab: pool down", "result", msg, "err", derr)
		dstop()
		var werr error
		select {
		case werr = <-done:
		case <-time.After(30 * time.Second):
			werr = errors.New("daemon did not stop 30 s after cancel")
		}
		// Whatever the daemon handed over (a failed drain) is stopped here.
		stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancelStop()
		return errors.Join(derr, werr, fleet.StopRecorded(stopCtx, cfg.Store.Path+".fleet-fleet.json"))
	}
	defer stopDaemon()

	// Start at the scenario's starting size (manual); the policy takes
	// over after the pre-roll (below).
	if err := warmUp(ctx, d, plan); err != nil {
		return Result{}, err
	}
	url := "http://" + front + "/light"
	// Pre-roll (still manual): the trace's first rate for a policy window,
	// so the policy's first decisions see traffic, as in the simulator,
	// whose trace flows from t = 0, and not the warm-up's idle intervals
	// (the threshold fallback took them for a quiet pool and went 3 -> 1
	// at its first decision; the pool then overloaded).
	pre := preRoll(plan)
	psum, err := loadgen.Run(ctx, loadgen.Config{
		Targets: []loadgen.Weighted{{URL: url, Weight: 1}}, Schedule: pre, Duration: pre.Length(),
		Timeout: 10 * time.Second, MaxWorkers: 1024, Seed: c.Seed + 2,
	})
	if err != nil {
		return Result{}, fmt.Errorf("pre-roll load: %w", err)
	}
	log.Info("ab: pre-roll done", "requests", psum.Requests, "wall", pre.Length())

	// Decisions are stamped on the pool's (scaled) clock: the warm-up's
	// are told apart by time, not by the wall clock.
	warm, err := d.Decisions(ctx, poolName, time.Time{}, 0)
	if err != nil {
		return Result{}, fmt.Errorf("decisions: %w", err)
	}
	var warmEnd time.Time
	for _, dd := range warm {
		if dd.Time.After(warmEnd) {
			warmEnd = dd.Time
		}
	}
	if err := d.SetMode(ctx, poolName, config.ModeAuto); err != nil {
		return Result{}, fmt.Errorf("switch to auto: %w", err)
	}

	recPath := filepath.Join(dir, "load.jsonl")
	recFile, err := os.Create(recPath)
	if err != nil {
		return Result{}, err
	}
	defer recFile.Close()
	bw := bufio.NewWriter(recFile)
	rw, err := loadgen.NewRecordWriter(bw, loadgen.FormatOf(recPath))
	if err != nil {
		return Result{}, err
	}
	sc := newScorer(plan)
	var recMu sync.Mutex

	start := time.Now()
	samp := newSampler(plan, start)
	sctx, sstop := context.WithCancel(ctx)
	var swg sync.WaitGroup
	swg.Add(1)
	go func() {
		defer swg.Done()
		samp.run(sctx, d, start, func(frac float64) {
			if c.Progress != nil {
				c.Progress(policy, frac)
			}
		})
	}()
	c.Log.Info("ab run", "policy", policy, "wall", plan.Wall.Round(time.Second), "dir", dir)
	sum, lerr := loadgen.Run(ctx, loadgen.Config{
		Targets:    []loadgen.Weighted{{URL: url, Weight: 1}},
		Schedule:   schedule(plan),
		Duration:   plan.Wall,
		Timeout:    10 * time.Second,
		MaxWorkers: 1024,
		Seed:       c.Seed + 1,
		Records: func(r loadgen.Record) error {
			recMu.Lock()
			defer recMu.Unlock()
			sc.add(start, r)
			return rw.Write(r)
		},
	})
	sstop()
	swg.Wait()
	wall := time.Since(start)
	if lerr != nil {
		return Result{}, fmt.Errorf("load: %w", lerr)
	}
	if err := rw.Flush(); err != nil {
		return Result{}, err
	}
	if err := bw.Flush(); err != nil {
		return Result{}, err
	}
	ds, err := d.Decisions(ctx, poolName, time.Time{}, 0)
	if err != nil {
		return Result{}, fmt.Errorf("decisions: %w", err)
	}
	if err := stopDaemon(); err != nil {
		return Result{}, fmt.Errorf("stop daemon: %w", err)
	}
	r := sc.result(policy)
	r.ServerHours = samp.serverHours()
	r.Actions, r.Reversals = samp.actions, samp.reversals
	r.WallSeconds = wall.Seconds()
	r.scored, r.sampled = sc, samp
	r.Decisions = map[string]int{}
	for _, dd := range ds {
		if !dd.Time.After(warmEnd) {
			continue
		}
		r.Decisions[dd.Policy+"/"+string(dd.Outcome)]++
	}
	if sum.Requests != r.Requests {
		c.Log.Warn("ab: record count differs from the load summary", "records", r.Requests, "summary", sum.Requests)
	}
	return r, nil
}

// warmUp waits for the pool's first server, scales it to the plan's
// starting size in manual mode and waits until they all serve.
func warmUp(ctx context.Context, d *tuner.Daemon, plan *Plan) error {
	deadline := time.Now().Add(30*time.Second + time.Duration(plan.Start)*plan.WallBoot)
	for {
		c, err := d.Servers(ctx, poolName)
		if err == nil && c.Serving() >= 1 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: the pool's first server did not serve (%v)", err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	for c, _ := d.Servers(ctx, poolName); c.Serving()+c.Booting < plan.Start; c, _ = d.Servers(ctx, poolName) {
		if _, err := d.Node(ctx, api.NodeRequest{Op: "launch", Pool: poolName}); err != nil {
			return fmt.Errorf("warm-up: launch server %d of %d: %w", c.Serving()+c.Booting+1, plan.Start, err)
		}
	}
	for {
		c, err := d.Servers(ctx, poolName)
		if err == nil && c.Serving() >= plan.Start && c.Booting == 0 && observed(ctx, d) >= plan.Start {
			// The daemon's own data shows them too: a policy's first
			// decision (static holds what it sees then) starts from the
			// plan's size, as in the simulator.
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: %d of %d servers serve after %v (%v)", c.Serving(), plan.Start, 30*time.Second, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// observed is the pool's serving servers in the daemon's latest interval
// (0 before it has one).
func observed(ctx context.Context, d *tuner.Daemon) int {
	st, err := d.State(ctx)
	if err != nil {
		return 0
	}
	for _, p := range st.Pools {
		if p.Name == poolName && p.Latest != nil {
			return p.Latest.Servers
		}
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// schedule is the plan's trace as a wall-clock arrival schedule:
// each step lasts its trace length / speed-up at its rate x rate factor.
func schedule(plan *Plan) loadgen.Schedule {
	tr := plan.Trace
	s := loadgen.Schedule{}
	for i, v := range tr.Rates {
		end := tr.End
		if i+1 < len(tr.Times) {
			end = tr.Times[i+1]
		}
		d := time.Duration((end - tr.Times[i]) / plan.Speedup * float64(time.Second))
		if d <= 0 {
			continue
		}
		s.Phases = append(s.Phases, loadgen.Phase{Duration: d, Rate: v * plan.RateFactor, Dist: dist.Exponential})
	}
	return s
}

// preRoll is the load before the scored run: the trace's first rate (x
// the rate factor) for the policy's window of decisions and one more.
func preRoll(plan *Plan) loadgen.Schedule {
	n := max(plan.Scenario.Window, 1) + 1
	return loadgen.Schedule{Phases: []loadgen.Phase{{Duration: time.Duration(n) * plan.WallDecide,
		Rate: plan.Trace.Rates[0] * plan.RateFactor, Dist: dist.Exponential}}}
}

// daemonConfig is the lbtune.yaml of one real run: the balancer's source
// on a clock Speedup times faster than the wall clock, so the decision
// period, the guard and the policies run in trace time; the fleet's
// servers join the balancer's actuator.
func daemonConfig(plan *Plan, c Config, policy string, lb *balancer) string {
	model := ""
	if c.Model != "" && policy == "agent" { // the baselines need no model
		model = fmt.Sprintf("model: {path: %q}\n", c.Model)
	}
	return fmt.Sprintf(`# Written by lbtune ab for policy %s.
api: {listen: "127.0.0.1:0", token_file: lbtune.token}
store: {path: lbtune.db, retention: 0s}
%sintervals: {scrape: 1s, scrape_timeout: 800ms, decide: %v}
mode: manual
sources:
  - {name: %s, uri: %q, time_scale: %g}
actuators:
  - name: %s
    %s
  - name: fleet
    fleet: {balancer: %s}
pools:
  - %s`, policy, model, plan.Scenario.Interval, c.Balancer, lb.source, plan.Speedup, c.Balancer, lb.actuator, c.Balancer,
		strings.TrimPrefix(indent(poolSpec(plan, c, policy), "    "), "    "))
}

// poolSpec is the pool's YAML entry (the daemon's config and template down).
func poolSpec(plan *Plan, c Config, policy string) string {
	cmd := fmt.Sprintf("%s backend --listen {addr} --work sleep --dist exp --light-ms %.3f --concurrency %d --queue %d --boot-delay %v --seed %d",
		c.Exe, plan.wallServiceMs(), plan.Slots, plan.Queue, plan.WallBoot.Round(time.Millisecond), c.Seed+7)
	return fmt.Sprintf(`name: %s
source: %s
actuator: fleet
%s
template: {min: %d, max: %d, command: %q, target_seconds: %g, service_rate: %g, max_weight: 256}
`, poolName, c.Balancer, "policy: "+policy, plan.Min, plan.Max, cmd, plan.Target.Seconds(), plan.ServiceRate)
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(pre + l)
		}
	}
	return b.String()
}

// balancer is the real balancer of one run.
type balancer struct {
	// addr is where the clients send requests (host:port).
	addr string
	// source is the daemon's collector URI for it; actuator the body of
	// its actuator entry in the daemon's config (one YAML line).
	source, actuator string
	// stop stops it and everything it started.
	stop func()
}

// startBalancer starts c's balancer in dir, with the one pool and no
// server: the fleet's servers join it through the daemon's actuator.
func startBalancer(ctx context.Context, c Config, dir string) (*balancer, error) {
	front, err := freeAddr()
	if err != nil {
		return nil, err
	}
	switch c.Balancer {
	case "nginx":
		return startNGINX(ctx, c.NGINXBin, dir, front)
	default:
		socket := filepath.Join(dir, "admin.sock")
		stop, err := startHAProxy(ctx, c.HAProxyBin, dir, haproxy.Config{Socket: socket,
			Backends: []haproxy.Backend{{Name: poolName, Bind: front}}})
		if err != nil {
			return nil, err
		}
		return &balancer{addr: front, source: "haproxy+unix://" + socket,
			actuator: fmt.Sprintf("haproxy: {socket: %q}", socket), stop: stop}, nil
	}
}

// startNGINX runs nginx in the foreground (testbed.NGINXConf) in front of
// the pool's upstream, which starts parked (actuator/nginx.Parked: NGINX
// refuses an empty upstream): the daemon's NGINX actuator adopts that
// include file and renders the fleet's servers into it, each change
// validated (nginx -t) and reloaded gracefully. NGINX logs every request
// over UDP syslog to the daemon's nginxlog source (stock NGINX has no
// vts module). The master and its workers run in their own process group,
// stopped as one.
func startNGINX(ctx context.Context, bin, dir, front string) (*balancer, error) {
	syslog, err := freeUDPAddr()
	if err != nil {
		return nil, err
	}
	prefix := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return nil, err
	}
	n := &testbed.NGINXState{Bin: bin, Addr: front, Prefix: prefix,
		Config:  filepath.Join(prefix, "nginx.conf"),
		Include: filepath.Join(prefix, "upstreams.conf"),
		PIDFile: filepath.Join(prefix, "nginx.pid"), ErrorLog: filepath.Join(prefix, "error.log"),
		Syslog: syslog, Source: "nginxlog+udp://" + syslog}
	var inc bytes.Buffer
	if err := nginx.RenderUpstreams(&inc, []nginx.Upstream{nginx.Park(nginx.Upstream{Name: poolName, Zone: "64k"})}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.Include, inc.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.Config, []byte(testbed.NGINXConf(n, []string{poolName})), 0o644); err != nil {
		return nil, err
	}
	args := []string{"-p", n.Prefix, "-e", n.ErrorLog, "-c", n.Config}
	if out, err := exec.CommandContext(ctx, bin, append([]string{"-t", "-q"}, args...)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t %s: %w: %s", n.Config, err, strings.TrimSpace(string(out)))
	}
	out, err := os.Create(filepath.Join(prefix, "stdout.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited); out.Close() }()
	pgid := cmd.Process.Pid
	stop := func() {
		// Fast shutdown: the master stops its workers, waits for them and
		// exits. A master that does not is killed with its whole group
		// (workers, old workers still draining).
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pid, _ := os.ReadFile(n.PIDFile)
		if c, err := net.DialTimeout("tcp", front, 200*time.Millisecond); err == nil && len(pid) > 0 {
			c.Close()
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(n.ErrorLog)
			return nil, fmt.Errorf("nginx exited: %s", strings.TrimSpace(string(b)))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, errors.New("nginx did not listen within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	act := fmt.Sprintf("nginx: {conf: %q, include: %q, pid_file: %q, prefix: %q, upstreams: [{name: %s}]}",
		n.Config, n.Include, n.PIDFile, n.Prefix, poolName)
	return &balancer{addr: front, source: n.Source, actuator: act, stop: stop}, nil
}

// startHAProxy renders c into dir and runs haproxy in the foreground
// until the returned stop is called (or ctx ends).
func startHAProxy(ctx context.Context, bin, dir string, c haproxy.Config) (func(), error) {
	var buf bytes.Buffer
	if err := haproxy.RenderConfig(&buf, c); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start haproxy: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited); out.Close() }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	rt := &haproxy.Runtime{Socket: c.Socket, PollInterval: 20 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := rt.Exec(ctx, "show info"); err == nil {
			return stop, nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "haproxy.log"))
			return nil, fmt.Errorf("haproxy exited: %s", strings.TrimSpace(string(b)))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, errors.New("haproxy's admin socket did not answer within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeUDPAddr returns a free 127.0.0.1 UDP address.
func freeUDPAddr() (string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

// freeAddr returns a free 127.0.0.1 TCP address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
