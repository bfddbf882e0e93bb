package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lbtune/lbtune/actuator/haproxy"
)

// StateFile is the state file's name inside the state directory.
const StateFile = "state.json"

// ErrRunning is returned by Up when the state directory already holds a
// testbed with live processes.
var ErrRunning = errors.New("a testbed is already running")

// ErrNotRunning is returned by Down and Status when there is no state file.
var ErrNotRunning = errors.New("no testbed state")

// State is what Up started: every PID, address and file, and the source
// URIs to record from. It is saved as JSON in the state directory.
type State struct {
	Version int           `json:"version"`
	Started time.Time     `json:"started"`
	Dir     string        `json:"dir"`
	HAProxy *HAProxyState `json:"haproxy,omitempty"`
	NGINX   *NGINXState   `json:"nginx,omitempty"`
	// Pools carry each pool's limits and the command that starts one more
	// backend of it (append --listen ADDR --name NAME).
	Pools    []PoolState    `json:"pools"`
	Backends []BackendState `json:"backends"`
}

// HAProxyState is the running HAProxy.
type HAProxyState struct {
	PID       int    `json:"pid"`
	Bin       string `json:"bin"`
	Addr      string `json:"addr"`
	StatsAddr string `json:"stats_addr"`
	Socket    string `json:"socket"`
	Config    string `json:"config"`
	Log       string `json:"log"`
	// Source is the collector URI of its admin socket.
	Source string `json:"source"`
	// StatsURL is the CSV stats page (haproxy+http source).
	StatsURL string `json:"stats_url"`
	// Syslog is the UDP address HAProxy sends its request log to ("" when
	// requests are not logged); LogSource is the collector URI listening
	// there (haproxylog+udp).
	Syslog    string `json:"syslog,omitempty"`
	LogSource string `json:"log_source,omitempty"`
}

// NGINXState is the running NGINX; its fields are what actuator/nginx.Files needs.
type NGINXState struct {
	PID      int    `json:"pid"`
	Bin      string `json:"bin"`
	Addr     string `json:"addr"`
	Prefix   string `json:"prefix"`
	Config   string `json:"config"`
	Include  string `json:"include"`
	PIDFile  string `json:"pid_file"`
	ErrorLog string `json:"error_log"`
	// Syslog is the UDP address NGINX sends its access log to.
	Syslog string `json:"syslog"`
	// Source is the collector URI listening there.
	Source string `json:"source"`
}

// PoolState is one pool's limits and launch command.
type PoolState struct {
	Name        string `json:"name"`
	Min         int    `json:"min"`
	Max         int    `json:"max"`
	Concurrency int    `json:"concurrency"`
	// Balance is the pool's balancing algorithm ("" = roundrobin).
	Balance string   `json:"balance,omitempty"`
	Command []string `json:"command"`
}

// BackendState is one running job backend.
type BackendState struct {
	Pool        string  `json:"pool"`
	Name        string  `json:"name"`
	Addr        string  `json:"addr"`
	PID         int     `json:"pid"`
	Concurrency int     `json:"concurrency"`
	Speed       float64 `json:"speed"`
	Weight      int     `json:"weight"`
	Log         string  `json:"log"`
}

// Sources returns the collector source URIs of the running balancers.
func (s *State) Sources() []string {
	var out []string
	if s.HAProxy != nil {
		out = append(out, s.HAProxy.Source)
	}
	if s.NGINX != nil {
		out = append(out, s.NGINX.Source)
	}
	return out
}

// Process is one process of a testbed and whether it runs.
type Process struct {
	Role  string `json:"role"` // haproxy, nginx or backend
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Addr  string `json:"addr"`
	Alive bool   `json:"alive"`
	want  string // cmdline marker that identifies the process
}

// Processes lists the state's processes, balancers first, with liveness.
func (s *State) Processes() []Process {
	var ps []Process
	if h := s.HAProxy; h != nil {
		ps = append(ps, Process{Role: "haproxy", Name: "haproxy", PID: h.PID, Addr: h.Addr, want: h.Config})
	}
	if n := s.NGINX; n != nil {
		ps = append(ps, Process{Role: "nginx", Name: "nginx", PID: n.PID, Addr: n.Addr, want: n.Config})
	}
	for _, b := range s.Backends {
		ps = append(ps, Process{Role: "backend", Name: b.Name, PID: b.PID, Addr: b.Addr, want: "\x00" + b.Name + "\x00"})
	}
	for i := range ps {
		ps[i].Alive = alive(ps[i].PID, ps[i].want)
	}
	return ps
}

// LoadState reads the state file of dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotRunning)
	}
	if err != nil {
		return nil, fmt.Errorf("read testbed state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("testbed state %s: %w", filepath.Join(dir, StateFile), err)
	}
	return &s, nil
}

func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode testbed state: %w", err)
	}
	path := filepath.Join(s.Dir, StateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write testbed state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write testbed state: %w", err)
	}
	return nil
}

// Up starts the testbed described by c: the backends of every pool, then
// HAProxy and/or NGINX in front of them, and writes the state file. It
// refuses (ErrRunning) when the state directory has a live testbed; on any
// failure it stops what it already started.
func Up(ctx context.Context, c Config, log *slog.Logger) (*State, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("testbed config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(c.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if old, err := LoadState(dir); err == nil {
		for _, p := range old.Processes() {
			if p.Alive {
				return nil, fmt.Errorf("%w in %s (%s pid %d); run 'lbtune testbed down' first", ErrRunning, dir, p.Name, p.PID)
			}
		}
		log.Warn("replacing stale testbed state: none of its processes runs", "dir", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	st := &State{Version: 1, Started: time.Now().UTC(), Dir: dir}
	fail := func(err error) (*State, error) {
		if derr := st.stop(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
		}
		return nil, err
	}

	// 1. Backends, pool by pool; each prints its address once listening.
	self := c.Backend.Command
	if self == "" {
		if self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find lbtune executable: %w", err)
		}
	}
	for _, p := range c.Pools {
		cmd := []string{self, "backend", "--work", c.Backend.Work, "--dist", c.Backend.Dist,
			"--light-ms", ftoa(c.Backend.LightMs), "--medium-ms", ftoa(c.Backend.MediumMs), "--heavy-ms", ftoa(c.Backend.HeavyMs),
			"--concurrency", strconv.Itoa(p.Concurrency), "--queue", strconv.Itoa(c.Backend.Queue)}
		st.Pools = append(st.Pools, PoolState{Name: p.Name, Min: p.Min, Max: p.Max, Concurrency: p.Concurrency, Balance: p.Balance, Command: cmd})
		for i := range p.Servers {
			speed := 1.0
			if len(p.Speeds) > 0 {
				speed = p.Speeds[i%len(p.Speeds)]
			}
			weight := p.Weight
			if len(p.Weights) > 0 {
				weight = p.Weights[i%len(p.Weights)]
			}
			b := BackendState{Pool: p.Name, Name: fmt.Sprintf("%s-%d", p.Name, i+1), Concurrency: p.Concurrency, Speed: speed, Weight: weight}
			if err := startBackend(ctx, dir, cmd, &b); err != nil {
				return fail(err)
			}
			st.Backends = append(st.Backends, b)
			log.Info("backend up", "name", b.Name, "addr", b.Addr, "pid", b.PID, "speed", speed, "concurrency", p.Concurrency)
		}
	}
	// Save early so that 'down' finds the backends even if a balancer fails.
	if err := st.save(); err != nil {
		return fail(err)
	}

	// 2. Balancers, each retried on a fresh port if another process took it.
	if c.Has("haproxy") {
		if err := retry(3, func() error { return startHAProxy(ctx, c, st) }); err != nil {
			return fail(err)
		}
		log.Info("haproxy up", "addr", st.HAProxy.Addr, "pid", st.HAProxy.PID, "source", st.HAProxy.Source)
		if err := putOnStandby(ctx, c, st, log); err != nil {
			return fail(err)
		}
		if err := st.save(); err != nil {
			return fail(err)
		}
	}
	if c.Has("nginx") {
		if err := retry(3, func() error { return startNGINX(ctx, c, st) }); err != nil {
			return fail(err)
		}
		log.Info("nginx up", "addr", st.NGINX.Addr, "pid", st.NGINX.PID, "source", st.NGINX.Source)
	}
	if err := st.save(); err != nil {
		return fail(err)
	}
	return st, nil
}

// putOnStandby puts the last Standby servers of each pool in maintenance
// over HAProxy's runtime API: running, out of service, ready to be put
// back by a tuner that scales by standby.
func putOnStandby(ctx context.Context, c Config, st *State, log *slog.Logger) error {
	rt := &haproxy.Runtime{Socket: st.HAProxy.Socket, Log: log}
	for _, p := range c.Pools {
		var names []string
		for _, b := range st.Backends {
			if b.Pool == p.Name {
				names = append(names, b.Name)
			}
		}
		for _, name := range names[len(names)-min(p.Standby, len(names)):] {
			if err := rt.SetState(ctx, p.Name, name, haproxy.StateMaint); err != nil {
				return fmt.Errorf("put %s on standby: %w", name, err)
			}
			log.Info("backend on standby", "name", name)
		}
	}
	return nil
}

func retry(n int, f func() error) error {
	var err error
	for range n {
		if err = f(); err == nil {
			return nil
		}
	}
	return err
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// startBackend runs one lbtune backend and reads its address from its stdout file.
func startBackend(ctx context.Context, dir string, cmd []string, b *BackendState) error {
	out := filepath.Join(dir, b.Name+".addr")
	b.Log = filepath.Join(dir, b.Name+".log")
	_ = os.Remove(out)
	argv := append(append([]string{}, cmd...), "--speed", ftoa(b.Speed), "--listen", "127.0.0.1:0", "--name", b.Name)
	pid, err := startDetached(argv, out, b.Log)
	if err != nil {
		return fmt.Errorf("backend %s: %w", b.Name, err)
	}
	b.PID = pid
	ok := waitFor(ctx, 10*time.Second, func() bool {
		data, err := os.ReadFile(out)
		if err != nil {
			return false
		}
		line, _, _ := strings.Cut(string(data), "\n")
		if strings.HasSuffix(string(data), "\n") && line != "" {
			b.Addr = strings.TrimSpace(line)
			return true
		}
		return false
	})
	if !ok || !dialable(b.Addr) {
		return fmt.Errorf("backend %s did not start within 10s (see %s)", b.Name, b.Log)
	}
	return nil
}

// startHAProxy renders, checks (haproxy -c) and starts HAProxy in the foreground.
func startHAProxy(ctx context.Context, c Config, st *State) error {
	port, sport := c.HAProxy.Port, c.HAProxy.StatsPort
	var err error
	if port == 0 {
		if port, err = freePort("tcp"); err != nil {
			return err
		}
	}
	if sport == 0 {
		if sport, err = freePort("tcp"); err != nil {
			return err
		}
	}
	h := &HAProxyState{
		Bin:       c.HAProxy.Bin,
		Addr:      fmt.Sprintf("127.0.0.1:%d", port),
		StatsAddr: fmt.Sprintf("127.0.0.1:%d", sport),
		Socket:    filepath.Join(st.Dir, "haproxy.sock"),
		Config:    filepath.Join(st.Dir, "haproxy.cfg"),
		Log:       filepath.Join(st.Dir, "haproxy.log"),
	}
	h.Source = "haproxy+unix://" + h.Socket
	h.StatsURL = "http://" + h.StatsAddr + "/stats;csv"
	if c.HAProxy.LogRequests {
		lport := c.HAProxy.SyslogPort
		if lport == 0 {
			if lport, err = freePort("udp"); err != nil {
				return err
			}
		}
		h.Syslog = fmt.Sprintf("127.0.0.1:%d", lport)
		h.LogSource = "haproxylog+udp://" + h.Syslog
	}
	st.HAProxy = h
	if err := os.WriteFile(h.Config, []byte(renderHAProxy(c, st)), 0o644); err != nil {
		return fmt.Errorf("write haproxy config: %w", err)
	}
	if out, err := exec.CommandContext(ctx, h.Bin, "-c", "-q", "-f", h.Config).CombinedOutput(); err != nil {
		st.HAProxy = nil
		return fmt.Errorf("haproxy -c %s: %w: %s", h.Config, err, firstLine(out))
	}
	_ = os.Remove(h.Socket)
	errLog := filepath.Join(st.Dir, "haproxy.err.log")
	if h.PID, err = startDetached([]string{h.Bin, "-db", "-f", h.Config}, h.Log, errLog); err != nil {
		st.HAProxy = nil
		return fmt.Errorf("haproxy: %w", err)
	}
	up := waitFor(ctx, 10*time.Second, func() bool {
		_, serr := os.Stat(h.Socket)
		return serr == nil && dialable(h.Addr) && dialable(h.StatsAddr)
	})
	if !up || !alive(h.PID, h.Config) {
		err := fmt.Errorf("haproxy did not come up on %s within 10s: %s", h.Addr, lastLine(errLog))
		_ = stopPID(ctx, h.PID, h.Config, 5*time.Second)
		st.HAProxy = nil
		return err
	}
	return nil
}

// startNGINX renders the upstream include and nginx.conf, checks them
// (nginx -t) and starts NGINX in the foreground (daemon off).
func startNGINX(ctx context.Context, c Config, st *State) error {
	port, sport := c.NGINX.Port, c.NGINX.SyslogPort
	var err error
	if port == 0 {
		if port, err = freePort("tcp"); err != nil {
			return err
		}
	}
	if sport == 0 {
		if sport, err = freePort("udp"); err != nil {
			return err
		}
	}
	prefix := filepath.Join(st.Dir, "nginx")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return fmt.Errorf("nginx prefix: %w", err)
	}
	n := &NGINXState{
		Bin:      c.NGINX.Bin,
		Addr:     fmt.Sprintf("127.0.0.1:%d", port),
		Prefix:   prefix,
		Config:   filepath.Join(prefix, "nginx.conf"),
		Include:  filepath.Join(prefix, "upstreams.conf"),
		PIDFile:  filepath.Join(prefix, "nginx.pid"),
		ErrorLog: filepath.Join(prefix, "error.log"),
		Syslog:   fmt.Sprintf("127.0.0.1:%d", sport),
	}
	n.Source = "nginxlog+udp://" + n.Syslog
	st.NGINX = n
	ups, err := renderNGINXUpstreams(st)
	if err != nil {
		st.NGINX = nil
		return err
	}
	if err := os.WriteFile(n.Include, ups, 0o644); err != nil {
		st.NGINX = nil
		return fmt.Errorf("write nginx upstreams: %w", err)
	}
	if err := os.WriteFile(n.Config, []byte(renderNGINX(c, st)), 0o644); err != nil {
		st.NGINX = nil
		return fmt.Errorf("write nginx config: %w", err)
	}
	args := []string{"-p", n.Prefix, "-e", n.ErrorLog, "-c", n.Config}
	if out, err := exec.CommandContext(ctx, n.Bin, append([]string{"-t", "-q"}, args...)...).CombinedOutput(); err != nil {
		st.NGINX = nil
		return fmt.Errorf("nginx -t %s: %w: %s", n.Config, err, firstLine(out))
	}
	if n.PID, err = startDetached(append([]string{n.Bin}, args...), filepath.Join(prefix, "stdout.log"), filepath.Join(prefix, "stderr.log")); err != nil {
		st.NGINX = nil
		return fmt.Errorf("nginx: %w", err)
	}
	if !waitFor(ctx, 10*time.Second, func() bool { return dialable(n.Addr) }) || !alive(n.PID, n.Config) {
		err := fmt.Errorf("nginx did not come up on %s within 10s: %s", n.Addr, lastLine(n.ErrorLog))
		_ = stopNGINX(ctx, n)
		st.NGINX = nil
		return err
	}
	return nil
}

// stopNGINX stops the master and verifies its workers are gone too.
func stopNGINX(ctx context.Context, n *NGINXState) error {
	workers := childrenOf(n.PID)
	err := stopPID(ctx, n.PID, n.Config, 10*time.Second)
	for _, w := range workers {
		if serr := stopPID(ctx, w, "nginx", 5*time.Second); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

// Down stops exactly the processes recorded in dir's state file, balancers
// first (so no request reaches a stopping backend), verifies they are gone
// and removes the state file.
func Down(ctx context.Context, dir string) (*State, error) {
	st, err := LoadState(dir)
	if err != nil {
		return nil, err
	}
	if err := st.stop(ctx); err != nil {
		return st, err
	}
	if err := os.Remove(filepath.Join(st.Dir, StateFile)); err != nil {
		return st, fmt.Errorf("remove state: %w", err)
	}
	return st, nil
}

func (st *State) stop(ctx context.Context) error {
	var errs []error
	if h := st.HAProxy; h != nil {
		if err := stopPID(ctx, h.PID, h.Config, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("haproxy: %w", err))
		}
	}
	if n := st.NGINX; n != nil {
		if err := stopNGINX(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("nginx: %w", err))
		}
	}
	for _, b := range st.Backends {
		if err := stopPID(ctx, b.PID, "\x00"+b.Name+"\x00", 30*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("backend %s: %w", b.Name, err))
		}
	}
	for _, p := range st.Processes() {
		if p.Alive {
			errs = append(errs, fmt.Errorf("%s pid %d still running", p.Name, p.PID))
		}
	}
	return errors.Join(errs...)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// lastLine returns the last non-empty line of a log file, for error messages.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	last := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			last = t
		}
	}
	return last
}
