package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbtune/lbtune/actuator"
)

// Template says how to run one pool's servers.
type Template struct {
	// Command is the argv of one server; "{port}" and "{addr}" in any
	// argument are replaced by the chosen port and 127.0.0.1:port, and
	// "{pool}" by the pool name. Example:
	// ["lbtune", "backend", "--listen", "{addr}"].
	Command []string
	// Dir and Env are the process's working directory and extra environment.
	Dir string
	Env []string
	// HealthPath is polled over HTTP; 200 means healthy. "" means "/healthz".
	HealthPath string
	// ReadyTimeout bounds the wait for the first healthy answer; 0 means 10s.
	ReadyTimeout time.Duration
	// HealthInterval is the period of health checks once running; 0 means 500ms.
	HealthInterval time.Duration
	// HealthTimeout bounds one health check; 0 means 1s. A busy machine
	// answers slowly: keep it well above the service time.
	HealthTimeout time.Duration
	// HealthFails consecutive failed checks mark a server unhealthy; 0 means 3.
	HealthFails int
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL; 0 means 5s.
	StopGrace time.Duration
}

func (t Template) withDefaults() Template {
	if t.HealthPath == "" {
		t.HealthPath = "/healthz"
	}
	if t.ReadyTimeout <= 0 {
		t.ReadyTimeout = 10 * time.Second
	}
	if t.HealthInterval <= 0 {
		t.HealthInterval = 500 * time.Millisecond
	}
	if t.HealthTimeout <= 0 {
		t.HealthTimeout = time.Second
	}
	if t.HealthFails <= 0 {
		t.HealthFails = 3
	}
	if t.StopGrace <= 0 {
		t.StopGrace = 5 * time.Second
	}
	return t
}

// ErrExited marks a server process that exited before it was stopped.
var ErrExited = errors.New("server process exited")

// ErrClosed marks a Fleet after Close.
var ErrClosed = errors.New("fleet closed")

var _ actuator.Provider = (*Fleet)(nil)

// Fleet runs local server processes for several pools. Every process it
// starts is stopped by Stop or Close; none outlives Close.
type Fleet struct {
	templates map[string]Template
	// Log receives one line per action; nil means slog.Default().
	Log    *slog.Logger
	client *http.Client
	now    func() time.Time

	mu     sync.Mutex
	procs  map[string]map[string]*proc // pool -> name -> process
	closed bool
}

// proc is one running server.
type proc struct {
	member   actuator.Member
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited and been reaped
	exit     error         // set before done is closed
	stop     context.CancelFunc
	mu       sync.Mutex
	fails    int  // consecutive failed health checks
	stopping bool // Stop called: exit is expected
}

// New returns a Fleet running pools from templates.
func New(templates map[string]Template) *Fleet {
	ts := make(map[string]Template, len(templates))
	for k, t := range templates {
		ts[k] = t.withDefaults()
	}
	return &Fleet{
		templates: ts,
		client:    &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		now:       time.Now,
		procs:     map[string]map[string]*proc{},
	}
}

func (f *Fleet) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}

// Launch starts one server of pool on a free loopback port and returns once
// it answers its health check. A process that exits early (e.g. the port
// was taken meanwhile) is retried on another port, up to 3 attempts.
func (f *Fleet) Launch(ctx context.Context, pool string) (actuator.Member, error) {
	t, ok := f.templates[pool]
	if !ok {
		return actuator.Member{}, fmt.Errorf("fleet launch: pool %q: %w", pool, actuator.ErrUnknownPool)
	}
	if len(t.Command) == 0 {
		return actuator.Member{}, fmt.Errorf("fleet launch %s: empty command template", pool)
	}
	var errs []error
	for attempt := 0; attempt < 3; attempt++ {
		m, err := f.launchOnce(ctx, pool, t)
		if err == nil {
			return m, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, ErrExited) || ctx.Err() != nil {
			break
		}
	}
	return actuator.Member{}, fmt.Errorf("fleet launch %s: %w", pool, errors.Join(errs...))
}

func (f *Fleet) launchOnce(ctx context.Context, pool string, t Template) (actuator.Member, error) {
	port, err := freePort()
	if err != nil {
		return actuator.Member{}, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := strings.NewReplacer("{port}", strconv.Itoa(port), "{addr}", addr, "{pool}", pool)
	argv := make([]string, len(t.Command))
	for i, a := range t.Command {
		argv[i] = r.Replace(a)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = t.Dir
	cmd.Env = append(os.Environ(), t.Env...)
	// Own process group: signals reach the server's children too. Pdeathsig:
	// if this process dies, the kernel kills the server (no orphans).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return actuator.Member{}, ErrClosed
	}
	if err := cmd.Start(); err != nil {
		f.mu.Unlock()
		return actuator.Member{}, fmt.Errorf("start %q: %w", argv, err)
	}
	hctx, cancel := context.WithCancel(context.Background())
	p := &proc{
		member: actuator.Member{Name: addr, Addr: addr, Started: f.now(), Healthy: true},
		cmd:    cmd, done: make(chan struct{}), stop: cancel,
	}
	if f.procs[pool] == nil {
		f.procs[pool] = map[string]*proc{}
	}
	f.procs[pool][addr] = p
	f.mu.Unlock()
	go func() {
		p.exit = cmd.Wait()
		close(p.done)
		p.mu.Lock()
		expected := p.stopping
		p.mu.Unlock()
		if !expected {
			f.log().Warn("fleet server exited", "pool", pool, "server", addr, "err", p.exit)
		}
	}()

	if err := f.waitReady(ctx, p, t); err != nil {
		_ = f.Stop(context.Background(), pool, p.member)
		return actuator.Member{}, err
	}
	go f.watch(hctx, p, t)
	f.log().Info("fleet server started", "pool", pool, "server", addr, "pid", cmd.Process.Pid)
	return p.member, nil
}

// waitReady polls the health check until it answers 200, the process
// exits, ReadyTimeout passes or ctx ends.
func (f *Fleet) waitReady(ctx context.Context, p *proc, t Template) error {
	ctx, cancel := context.WithTimeout(ctx, t.ReadyTimeout)
	defer cancel()
	for {
		cctx, cancelCheck := context.WithTimeout(ctx, t.HealthTimeout)
		err := f.check(cctx, p.member.Addr, t.HealthPath)
		cancelCheck()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w before ready: %s: %v", ErrExited, p.member.Addr, p.exit)
		case <-ctx.Done():
			return fmt.Errorf("server %s not ready: %w", p.member.Addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// check does one health check.
func (f *Fleet) check(ctx context.Context, addr, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health %s: status %d", addr, resp.StatusCode)
	}
	return nil
}

// watch health-checks p every HealthInterval until ctx ends or it exits.
func (f *Fleet) watch(ctx context.Context, p *proc, t Template) {
	tick := time.NewTicker(t.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.done:
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, t.HealthTimeout)
		err := f.check(cctx, p.member.Addr, t.HealthPath)
		cancel()
		p.mu.Lock()
		if err != nil && ctx.Err() == nil {
			p.fails++
			if p.fails == t.HealthFails {
				f.log().Warn("fleet server failing health checks", "server", p.member.Addr, "fails", p.fails, "err", err)
			}
		} else if err == nil {
			p.fails = 0
		}
		p.mu.Unlock()
	}
}

// Members lists pool's servers, oldest first. A server whose process
// exited, or that failed HealthFails checks in a row, is not Healthy.
func (f *Fleet) Members(ctx context.Context, pool string) ([]actuator.Member, error) {
	t, ok := f.templates[pool]
	if !ok {
		return nil, fmt.Errorf("fleet members: pool %q: %w", pool, actuator.ErrUnknownPool)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]actuator.Member, 0, len(f.procs[pool]))
	for _, p := range f.procs[pool] {
		m := p.member
		select {
		case <-p.done:
			m.Healthy, m.Reason = false, fmt.Sprintf("process exited: %v", p.exit)
		default:
			p.mu.Lock()
			if p.fails >= t.HealthFails {
				m.Healthy, m.Reason = false, fmt.Sprintf("%d failed health checks", p.fails)
			}
			p.mu.Unlock()
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// Stop stops m: SIGTERM to its process group, SIGKILL after StopGrace,
// then forgets it. Stopping a process that already exited only forgets it.
// The caller drains it from the balancer first.
func (f *Fleet) Stop(ctx context.Context, pool string, m actuator.Member) error {
	f.mu.Lock()
	p, ok := f.procs[pool][m.Name]
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("fleet stop %s/%s: not running here", pool, m.Name)
	}
	grace := f.templates[pool].StopGrace
	err := p.terminate(ctx, grace)
	f.mu.Lock()
	delete(f.procs[pool], m.Name)
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("fleet stop %s/%s: %w", pool, m.Name, err)
	}
	f.log().Info("fleet server stopped", "pool", pool, "server", m.Name)
	return nil
}

// terminate sends SIGTERM to the process group, waits up to grace, then
// SIGKILL, and waits until the process is reaped.
func (p *proc) terminate(ctx context.Context, grace time.Duration) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.stop()
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
		killGroup(pgid) // the leader is gone; stray children must go too
		return nil
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		killGroup(pgid)
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	killGroup(pgid)
	<-p.done
	if ctx.Err() != nil {
		return fmt.Errorf("killed after %w", ctx.Err())
	}
	return nil
}

// killGroup sends SIGKILL to the process group pgid, ignoring "no such process".
func killGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }

// Close stops every server of every pool (SIGTERM, then SIGKILL after the
// grace period) and refuses further launches.
func (f *Fleet) Close() error {
	f.mu.Lock()
	f.closed = true
	var all []func() error
	for pool, ps := range f.procs {
		for _, p := range ps {
			all = append(all, func() error { return f.Stop(context.Background(), pool, p.member) })
		}
	}
	f.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, stop := range all {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = stop() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
