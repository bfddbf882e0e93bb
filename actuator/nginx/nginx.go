package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrValidation marks a rendered config that `nginx -t` refused; the live
// include file was restored and NGINX was not reloaded.
var ErrValidation = errors.New("nginx -t refused the config")

// ErrReload marks a reload that NGINX did not carry out (no new workers
// appeared); the live include file was restored.
var ErrReload = errors.New("nginx reload failed")

// Files says where a running NGINX and its managed include file are.
type Files struct {
	// Bin is the nginx binary; "" means "nginx" from PATH.
	Bin string
	// Prefix is NGINX's -p prefix; "" omits -p.
	Prefix string
	// MainConf is the main configuration file (-c); it must include Include
	// inside its http block.
	MainConf string
	// ErrorLog is passed as -e to nginx -t so the test does not touch the
	// compiled-in default log; "" omits -e.
	ErrorLog string
	// PIDFile holds the master's pid (the `pid` directive's file).
	PIDFile string
	// Include is the managed include file this package rewrites.
	Include string
}

// NGINX manages the upstream blocks of a running NGINX: every change renders
// all managed upstreams, writes the include file atomically, validates it
// with nginx -t, reloads gracefully (SIGHUP to the master) and restores the
// previous file when validation or reload fails. Methods are safe for
// concurrent use; changes are applied one at a time.
type NGINX struct {
	files Files
	// ReloadTimeout bounds the wait for new workers after SIGHUP; 0 means 10s.
	ReloadTimeout time.Duration
	// DrainTimeout bounds RemoveServer's wait for old workers (and so the
	// requests in flight on the removed server); 0 means 30s.
	DrainTimeout time.Duration
	// Log receives one line per action; nil means slog.Default().
	Log *slog.Logger

	mu  sync.Mutex // serialises changes to ups and the include file
	ups []Upstream // the managed upstreams as last applied
}

// New returns an NGINX managing ups (the upstreams it currently runs, or
// those to write on the first Apply) in the NGINX described by f.
func New(f Files, ups []Upstream) *NGINX {
	return &NGINX{files: f, ups: cloneUpstreams(ups)}
}

func (n *NGINX) log() *slog.Logger {
	if n.Log != nil {
		return n.Log
	}
	return slog.Default()
}

// Upstreams returns a copy of the managed upstreams as last applied.
func (n *NGINX) Upstreams() []Upstream {
	n.mu.Lock()
	defer n.mu.Unlock()
	return cloneUpstreams(n.ups)
}

// Apply makes ups the managed upstreams: render, write, validate, reload,
// rolling back on failure. It returns the pids of the workers that were
// running before the reload; they finish their in-flight requests and exit.
func (n *NGINX) Apply(ctx context.Context, ups []Upstream) (oldWorkers []int, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applyLocked(ctx, ups)
}

func (n *NGINX) applyLocked(ctx context.Context, ups []Upstream) ([]int, error) {
	var buf bytes.Buffer
	if err := RenderUpstreams(&buf, ups); err != nil {
		return nil, fmt.Errorf("render %s: %w", n.files.Include, err)
	}
	old, err := os.ReadFile(n.files.Include)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read live %s: %w", n.files.Include, err)
	}
	hadOld := err == nil
	restore := func(cause error) error {
		var rerr error
		if hadOld {
			rerr = writeAtomic(n.files.Include, old)
		} else {
			rerr = os.Remove(n.files.Include)
		}
		if rerr != nil {
			return errors.Join(cause, fmt.Errorf("restore %s: %w", n.files.Include, rerr))
		}
		n.log().Warn("nginx change rolled back", "include", n.files.Include, "cause", cause)
		return cause
	}
	if err := writeAtomic(n.files.Include, buf.Bytes()); err != nil {
		return nil, err
	}
	start := time.Now()
	if out, err := n.test(ctx); err != nil {
		return nil, restore(fmt.Errorf("%w: %v: %s", ErrValidation, err, strings.TrimSpace(string(out))))
	}
	validated := time.Since(start)
	oldWorkers, err := n.reload(ctx)
	if err != nil {
		return nil, restore(err)
	}
	n.ups = cloneUpstreams(ups)
	n.log().Info("nginx reloaded", "include", n.files.Include,
		"validate", validated.Round(time.Microsecond), "total", time.Since(start).Round(time.Microsecond))
	return oldWorkers, nil
}

// Validate runs nginx -t on the configuration as it is on disk.
func (n *NGINX) Validate(ctx context.Context) error {
	if out, err := n.test(ctx); err != nil {
		return fmt.Errorf("%w: %v: %s", ErrValidation, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *NGINX) test(ctx context.Context) ([]byte, error) {
	bin := n.files.Bin
	if bin == "" {
		bin = "nginx"
	}
	args := []string{"-t", "-q"}
	if n.files.Prefix != "" {
		args = append(args, "-p", n.files.Prefix)
	}
	if n.files.ErrorLog != "" {
		args = append(args, "-e", n.files.ErrorLog)
	}
	args = append(args, "-c", n.files.MainConf)
	return exec.CommandContext(ctx, bin, args...).CombinedOutput()
}

// reload sends SIGHUP to the master and waits until a worker that was not
// there before runs and the old workers have stopped accepting: from then
// on every new request sees the new config. A master that cannot apply the
// new config keeps its old workers, which is reported as ErrReload.
func (n *NGINX) reload(ctx context.Context) ([]int, error) {
	master, err := n.MasterPID()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReload, err)
	}
	before, err := children(master)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReload, err)
	}
	if err := syscall.Kill(master, syscall.SIGHUP); err != nil {
		return nil, fmt.Errorf("%w: signal master %d: %w", ErrReload, master, err)
	}
	timeout := n.ReloadTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		now, err := children(master)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrReload, err)
		}
		// The master starts new workers, sleeps 100ms, then tells the old
		// ones to quit; only then do they stop accepting (their title turns
		// to "worker process is shutting down"). Done = a new worker runs
		// and no old worker still accepts.
		if slices.ContainsFunc(now, func(pid int) bool { return !slices.Contains(before, pid) }) &&
			!slices.ContainsFunc(before, acceptingWorker) {
			return before, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: no new worker of master %d after %s (see the NGINX error log)", ErrReload, master, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrReload, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// acceptingWorker reports whether pid is an NGINX worker still accepting
// connections: alive and not titled "... is shutting down".
func acceptingWorker(pid int) bool {
	if !processAlive(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return !bytes.Contains(b, []byte("shutting down"))
}

// MasterPID reads the master's pid from the pid file.
func (n *NGINX) MasterPID() (int, error) {
	b, err := os.ReadFile(n.files.PIDFile)
	if err != nil {
		return 0, fmt.Errorf("read nginx pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("nginx pid file %s holds %q, not a pid", n.files.PIDFile, b)
	}
	return pid, nil
}

// WaitExited waits until none of pids is running (old workers finished
// their in-flight requests) or timeout passes; it returns those still alive.
func WaitExited(ctx context.Context, pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var alive []int
		for _, pid := range pids {
			if processAlive(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return alive
		}
		pids = alive
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// processAlive reports whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, state, ok := statFields(b)
	return ok && state != "Z" && state != "X"
}

// children lists the pids whose parent is ppid (Linux /proc).
func children(ppid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		if p, state, ok := statFields(b); ok && p == ppid && state != "Z" {
			out = append(out, pid)
		}
	}
	return out, nil
}

// statFields extracts ppid and state from /proc/<pid>/stat ("pid (comm) S ppid ...").
func statFields(b []byte) (ppid int, state string, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// writeAtomic replaces path with data: write a temp file in the same
// directory, fsync, rename over path.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

func cloneUpstreams(ups []Upstream) []Upstream {
	out := make([]Upstream, len(ups))
	for i, u := range ups {
		u.Servers = slices.Clone(u.Servers)
		out[i] = u
	}
	return out
}
