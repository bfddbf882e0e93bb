package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// Fleet runs local server processes for several pools.
//
// Without a StateFile every process it starts is stopped by Stop, StopAll
// or Close, and dies with this process (no process outlives it). With a
// StateFile the servers are handed over instead (see the package doc).
type Fleet struct {
	tmu       sync.RWMutex // guards templates (AddTemplate)
	templates map[string]Template
	// Log receives one line per action; nil means slog.Default().
	Log *slog.Logger
	// StateFile, when set (before the first Launch or Adopt), turns on
	// handover: servers run detached (own session, output to /dev/null,
	// not killed when lbtune dies), every launch and stop rewrites this
	// file with one Record per server (atomically: temporary file, then
	// rename), Close hands the servers over instead of stopping them, and
	// Adopt takes over those a previous run recorded.
	StateFile string
	client    *http.Client
	now       func() time.Time

	mu      sync.Mutex
	procs   map[string]map[string]*proc // pool -> name -> process
	pending map[string][]Record         // recorded by a previous run, not adopted yet
	loaded  bool                        // pending was read from StateFile
	closed  bool
}

// Record is one server handed over to the next run: what the StateFile
// holds per server.
type Record struct {
	Pool string `json:"pool"`
	Name string `json:"name"`
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
	// StartTicks is the process's start time (/proc/PID/stat field 22):
	// a pid reused by another process does not match.
	StartTicks uint64    `json:"start_ticks"`
	Started    time.Time `json:"started"`
}

// stateFile is the StateFile's JSON.
type stateFile struct {
	Servers []Record `json:"servers"`
}

// proc is one running server, started here or adopted.
type proc struct {
	member   actuator.Member
	pool     string
	pid      int           // also its process group: it leads its own group or session
	ticks    uint64        // start time, see Record.StartTicks
	done     chan struct{} // closed when the process has exited (and been reaped if ours)
	exit     error         // set before done is closed
	stop     context.CancelFunc
	mu       sync.Mutex
	fails    int  // consecutive failed health checks
	stopping bool // Stop called: exit is expected
	handed   bool // handed over: this run no longer watches it
}

func (p *proc) record() Record {
	return Record{Pool: p.pool, Name: p.member.Name, Addr: p.member.Addr, PID: p.pid, StartTicks: p.ticks, Started: p.member.Started}
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

// template returns pool's template.
func (f *Fleet) template(pool string) (Template, bool) {
	f.tmu.RLock()
	defer f.tmu.RUnlock()
	t, ok := f.templates[pool]
	return t, ok
}

// AddTemplate adds (or replaces) the template of pool, for a pool started
// while the fleet runs (`lbtune template up`).
func (f *Fleet) AddTemplate(pool string, t Template) {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	f.templates[pool] = t.withDefaults()
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
	t, ok := f.template(pool)
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
	// Stdin, Stdout and Stderr stay nil: /dev/null, never a pipe to lbtune
	// that would break (SIGPIPE) once lbtune is gone.
	if f.StateFile != "" {
		// Own session (and process group): detached from lbtune's terminal
		// and signals, it outlives lbtune and is handed over.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// Own process group: signals reach the server's children too.
		// Pdeathsig: if this process dies, the kernel kills the server.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
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
	pid := cmd.Process.Pid
	ticks, _ := startTicks(pid)
	p := &proc{
		member: actuator.Member{Name: addr, Addr: addr, Started: f.now(), Healthy: true},
		pool:   pool, pid: pid, ticks: ticks, done: make(chan struct{}), stop: cancel,
	}
	if f.procs[pool] == nil {
		f.procs[pool] = map[string]*proc{}
	}
	f.procs[pool][addr] = p
	f.persistLocked()
	f.mu.Unlock()
	go func() {
		p.exit = cmd.Wait()
		close(p.done)
		p.mu.Lock()
		expected := p.stopping || p.handed
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
	f.log().Info("fleet server started", "pool", pool, "server", addr, "pid", pid)
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
	t, ok := f.template(pool)
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
	tp, _ := f.template(pool)
	grace := tp.StopGrace
	err := p.terminate(ctx, grace)
	f.mu.Lock()
	delete(f.procs[pool], m.Name)
	f.persistLocked()
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
	pgid := p.pid
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

// Close ends this run of the fleet and refuses further launches. Without
// a StateFile it stops every server (StopAll); with one it hands them over
// (Handover): they keep serving for the next run to adopt.
func (f *Fleet) Close() error {
	if f.StateFile != "" {
		_, err := f.Handover()
		return err
	}
	return f.StopAll(context.Background())
}

// StopAll stops every server of every pool (SIGTERM, then SIGKILL after
// the grace period), refuses further launches and, with a StateFile,
// leaves it without them. The caller drains them from the balancer first.
func (f *Fleet) StopAll(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	var all []func() error
	for pool, ps := range f.procs {
		for _, p := range ps {
			all = append(all, func() error { return f.Stop(ctx, pool, p.member) })
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

// Handover ends this run without stopping anything: health checks stop,
// further launches are refused, and the servers, still serving and still
// registered in the balancer, are returned as Records and written to the
// StateFile (if set) together with the records not adopted yet. The next
// run's Adopt takes them over. After Close or StopAll it does nothing.
// Call it once supervision (actuator.Pools.Run) has returned and no Scale
// is in progress: a server still booting is handed over unregistered, and
// the next run's Adopt registers it.
func (f *Fleet) Handover() ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, nil // handed over or stopped already
	}
	f.closed = true
	lerr := f.loadLocked()
	var out []Record
	for _, ps := range f.procs {
		for _, p := range ps {
			p.mu.Lock()
			p.handed = true
			p.mu.Unlock()
			p.stop()
			select {
			case <-p.done: // exited: nothing to hand over
			default:
				out = append(out, p.record())
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	err := lerr
	if err == nil {
		err = f.writeState(append(slices.Clone(out), f.pendingRecords()...))
	}
	f.procs = map[string]map[string]*proc{}
	for _, r := range out {
		f.log().Info("fleet server handed over", "pool", r.Pool, "server", r.Name, "pid", r.PID)
	}
	return out, err
}

// Adopt takes over pool's servers recorded in the StateFile by a previous
// run (see actuator.Adopter). A recorded process that is still the same
// process (pid and start time) and answers its health check (HealthFails
// tries, HealthInterval apart) is adopted: watched and stopped like one
// launched here, its Started kept. The others are gone: a live one that
// fails its checks is stopped; the StateFile is rewritten without them.
// Without a StateFile there is nothing to adopt.
func (f *Fleet) Adopt(ctx context.Context, pool string) (adopted, gone []actuator.Member, err error) {
	t, ok := f.template(pool)
	if !ok {
		return nil, nil, fmt.Errorf("fleet adopt: pool %q: %w", pool, actuator.ErrUnknownPool)
	}
	if f.StateFile == "" {
		return nil, nil, nil
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, nil, ErrClosed
	}
	lerr := f.loadLocked()
	recs := f.pending[pool]
	delete(f.pending, pool)
	f.mu.Unlock()
	for _, r := range recs {
		m := actuator.Member{Name: r.Name, Addr: r.Addr, Started: r.Started, Healthy: true}
		if !sameProcess(r.PID, r.StartTicks) {
			m.Healthy, m.Reason = false, "process gone"
			gone = append(gone, m)
			continue
		}
		hctx, cancel := context.WithCancel(context.Background())
		p := &proc{member: m, pool: pool, pid: r.PID, ticks: r.StartTicks, done: make(chan struct{}), stop: cancel}
		go f.poll(p, t)
		if err := f.checkRetry(ctx, p, t); err != nil {
			p.member.Healthy, p.member.Reason = false, fmt.Sprintf("failed health check: %v", err)
			p.mu.Lock()
			p.stopping = true
			p.mu.Unlock()
			if terr := p.terminate(ctx, t.StopGrace); terr != nil {
				f.log().Warn("fleet stop of a failing recorded server", "pool", pool, "server", m.Name, "err", terr)
			}
			gone = append(gone, p.member)
			continue
		}
		f.mu.Lock()
		if f.procs[pool] == nil {
			f.procs[pool] = map[string]*proc{}
		}
		f.procs[pool][m.Name] = p
		f.mu.Unlock()
		go f.watch(hctx, p, t)
		adopted = append(adopted, m)
		f.log().Info("fleet server adopted", "pool", pool, "server", m.Name, "pid", r.PID)
	}
	for _, m := range gone {
		f.log().Info("fleet recorded server gone", "pool", pool, "server", m.Name, "reason", m.Reason)
	}
	f.mu.Lock()
	f.persistLocked()
	f.mu.Unlock()
	return adopted, gone, lerr
}

// checkRetry health-checks p up to HealthFails times, HealthInterval apart.
func (f *Fleet) checkRetry(ctx context.Context, p *proc, t Template) error {
	var err error
	for i := range t.HealthFails {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-p.done:
				return fmt.Errorf("%w: %v", ErrExited, p.exit)
			case <-time.After(t.HealthInterval):
			}
		}
		cctx, cancel := context.WithTimeout(ctx, t.HealthTimeout)
		err = f.check(cctx, p.member.Addr, t.HealthPath)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// poll watches an adopted process, which is not this process's child:
// every HealthInterval (at most 100ms) it checks the pid is still the same
// live process, and closes p.done when it is not.
func (f *Fleet) poll(p *proc, t Template) {
	every := min(t.HealthInterval, 100*time.Millisecond)
	for {
		time.Sleep(every)
		p.mu.Lock()
		handed := p.handed
		p.mu.Unlock()
		if handed {
			return // the next run watches it
		}
		if sameProcess(p.pid, p.ticks) {
			continue
		}
		p.exit = errors.New("adopted process gone")
		close(p.done)
		p.mu.Lock()
		expected := p.stopping || p.handed
		p.mu.Unlock()
		if !expected {
			f.log().Warn("fleet server exited", "pool", p.pool, "server", p.member.Name, "err", p.exit)
		}
		return
	}
}

// loadLocked reads the StateFile's records once into f.pending. A missing
// file is no record; an unreadable one is renamed *.bad, logged and
// returned as the error. Called with f.mu held.
func (f *Fleet) loadLocked() error {
	if f.loaded || f.StateFile == "" {
		return nil
	}
	f.loaded = true
	f.pending = map[string][]Record{}
	b, err := os.ReadFile(f.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var st stateFile
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		_ = os.Rename(f.StateFile, f.StateFile+".bad")
		f.log().Error("fleet state file unreadable; set aside", "file", f.StateFile, "err", err)
		return fmt.Errorf("fleet state %s: %w", f.StateFile, err)
	}
	for _, r := range st.Servers {
		f.pending[r.Pool] = append(f.pending[r.Pool], r)
	}
	return nil
}

// pendingRecords lists the records not adopted yet. Called with f.mu held.
func (f *Fleet) pendingRecords() []Record {
	var out []Record
	for _, rs := range f.pending {
		out = append(out, rs...)
	}
	return out
}

// persistLocked rewrites the StateFile with the servers running and the
// records not adopted yet; a failure is logged. Called with f.mu held.
func (f *Fleet) persistLocked() {
	if f.StateFile == "" {
		return
	}
	if err := f.loadLocked(); err != nil {
		return // keep what could not be read out of the way, write nothing over it
	}
	var recs []Record
	for _, ps := range f.procs {
		for _, p := range ps {
			recs = append(recs, p.record())
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Started.Before(recs[j].Started) })
	if err := f.writeState(append(recs, f.pendingRecords()...)); err != nil {
		f.log().Error("fleet state not written", "file", f.StateFile, "err", err)
	}
}

// writeState writes recs to the StateFile atomically (temporary file in
// the same directory, fsync, rename). Without a StateFile it does nothing.
func (f *Fleet) writeState(recs []Record) error {
	if f.StateFile == "" {
		return nil
	}
	if recs == nil {
		recs = []Record{}
	}
	b, err := json.MarshalIndent(stateFile{Servers: recs}, "", "  ")
	if err != nil {
		return fmt.Errorf("fleet state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.StateFile), filepath.Base(f.StateFile)+".tmp*")
	if err != nil {
		return fmt.Errorf("fleet state: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.StateFile)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("fleet state %s: %w", f.StateFile, err)
	}
	return nil
}

// startTicks reads the start time of pid (/proc/PID/stat field 22, clock
// ticks since boot).
func startTicks(pid int) (uint64, error) {
	_, ticks, err := procStat(pid)
	return ticks, err
}

// procStat returns pid's state letter and start time from /proc/PID/stat.
func procStat(pid int) (state string, ticks uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	return parseStat(string(b))
}

// parseStat parses the state and start time of one /proc/PID/stat line;
// the command name in parentheses may hold spaces and parentheses.
func parseStat(s string) (state string, ticks uint64, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, errors.New("proc stat: no command name")
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return "", 0, fmt.Errorf("proc stat: %d fields", len(fields)+2)
	}
	ticks, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("proc stat starttime: %w", err)
	}
	return fields[0], ticks, nil
}

// sameProcess reports whether pid is alive (not a zombie) and, if ticks is
// not 0, started at ticks.
func sameProcess(pid int, ticks uint64) bool {
	if pid <= 0 {
		return false
	}
	state, t, err := procStat(pid)
	if err != nil || state == "Z" || state == "X" {
		return false
	}
	return ticks == 0 || t == ticks
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

// StopRecorded stops every server stateFile records: what a stopped lbtune
// handed over to its next start, when no next start is coming (lbtune ab
// after each run, tests). It adopts them as a next start would (one that
// fails its checks is stopped there) and stops the rest; it does not touch
// any balancer. A missing file stops nothing.
func StopRecorded(ctx context.Context, stateFile string) error {
	f := New(nil)
	f.StateFile = stateFile
	f.Log = slog.New(slog.DiscardHandler)
	f.mu.Lock()
	err := f.loadLocked()
	pools := make([]string, 0, len(f.pending))
	for p := range f.pending {
		pools = append(pools, p)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for _, p := range pools {
		f.AddTemplate(p, Template{Command: []string{"true"}, StopGrace: 5 * time.Second})
		if _, _, err := f.Adopt(ctx, p); err != nil {
			return fmt.Errorf("stop recorded servers of %s: %w", p, err)
		}
	}
	return f.StopAll(ctx)
}
