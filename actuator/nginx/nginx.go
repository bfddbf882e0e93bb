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
// include file was never touched and NGINX was not reloaded.
var ErrValidation = errors.New("nginx -t refused the config")

// ErrReload marks a change NGINX did not load within ReloadTimeout (no new
// worker appeared after the signal): the previous include file was put
// back and NGINX signalled again to load it, so the file, the running
// config and Upstreams all hold the previous upstreams (the error says
// whether that second reload was confirmed too).
var ErrReload = errors.New("nginx reload failed")

// Files says where a running NGINX and its managed include file are.
type Files struct {
	// Bin is the nginx binary; "" means "nginx" from PATH.
	Bin string
	// Prefix is NGINX's -p prefix; "" omits -p.
	Prefix string
	// MainConf is the main configuration file (-c); it must include Include
	// (inside its http block), directly, through other includes or through
	// a glob such as conf.d/*.conf. Changes are validated against a copy of
	// it written next to it, so its directory must be writable.
	MainConf string
	// ErrorLog is passed as -e to nginx -t so the test does not touch the
	// compiled-in default log; "" omits -e.
	ErrorLog string
	// PIDFile holds the master's pid (the `pid` directive's file).
	PIDFile string
	// Include is the managed include file this package rewrites.
	Include string
}

// NGINX manages the upstream blocks of a running NGINX. Every change runs
// the sequence in the package doc: render a staged copy, nginx -t against
// it, rename it over the include, reload and confirm, and on a reload that
// does not take, restore and reload the previous file. Methods are safe
// for concurrent use; changes are applied one at a time, and lbtune must be
// the only writer of the include file.
type NGINX struct {
	files Files
	// ReloadTimeout bounds each wait for the master to start new workers
	// after a signal; 0 means 10s.
	ReloadTimeout time.Duration
	// DrainTimeout bounds RemoveServer's wait for old workers (and so the
	// requests in flight on the removed server); 0 means 30s.
	DrainTimeout time.Duration
	// Log receives one line per action; nil means slog.Default().
	Log *slog.Logger

	mu  sync.Mutex // serialises changes to ups and the include file
	ups []Upstream // the managed upstreams: what the include file holds
}

// failpoint, when set (tests only), is called between the steps of a
// change with the step just done: "staged", "validated", "renamed",
// "signalled". A test kills the process there to prove each window safe.
var failpoint func(step string)

func reached(step string) {
	if failpoint != nil {
		failpoint(step)
	}
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

// Applied returns the weights of the servers of upstream pool as the
// include file and the running NGINX have them (after a successful change
// or a rollback, the three agree), keyed by address (what NGINX's access
// log and vts call a peer). Servers marked down (being drained) are left
// out. The result is nil when pool is not managed. The access log cannot
// see weights; this is where observations of NGINX pools get them.
func (n *NGINX) Applied(pool string) map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range n.ups {
		if u.Name != pool {
			continue
		}
		out := make(map[string]int, len(u.Servers))
		for _, s := range u.Servers {
			if !s.Down {
				out[s.Address] = s.Weight
			}
		}
		return out
	}
	return nil
}

// Apply makes ups the managed upstreams (see the package doc for the
// sequence). It returns the pids of the workers that were running before
// the reload; they finish their in-flight requests and exit.
func (n *NGINX) Apply(ctx context.Context, ups []Upstream) (oldWorkers []int, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applyLocked(ctx, ups)
}

func (n *NGINX) reloadTimeout() time.Duration {
	if n.ReloadTimeout > 0 {
		return n.ReloadTimeout
	}
	return 10 * time.Second
}

// applyLocked runs one change; n.mu is held.
func (n *NGINX) applyLocked(ctx context.Context, ups []Upstream) ([]int, error) {
	inc := n.files.Include
	var buf bytes.Buffer
	if err := RenderUpstreams(&buf, ups); err != nil {
		return nil, fmt.Errorf("render %s: %w", inc, err)
	}
	old, err := os.ReadFile(inc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read live %s: %w", inc, err)
	}
	hadOld := err == nil
	n.removeStale()

	// 1. Stage: the new file next to the include, fsynced; the include
	// itself is untouched.
	start := time.Now()
	staged, err := writeStaged(inc, buf.Bytes())
	if err != nil {
		return nil, err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(staged)
		}
	}()
	reached("staged")

	// 2. Validate: nginx -t on a copy of the config tree reading the staged
	// file in place of the include.
	if err := n.validateStaged(ctx, staged); err != nil {
		return nil, err
	}
	validated := time.Since(start)
	reached("validated")

	// 3. Commit: rename over the include (atomic: any reader, NGINX's
	// own included, sees the old file or the validated new one).
	if err := os.Rename(staged, inc); err != nil {
		return nil, fmt.Errorf("rename staged %s over %s: %w", staged, inc, err)
	}
	renamed = true
	if err := syncDir(filepath.Dir(inc)); err != nil {
		n.log().Warn("nginx include directory not synced", "dir", filepath.Dir(inc), "err", err)
	}
	reached("renamed")

	// 4. Reload and confirm: the master started new workers.
	oldWorkers, loaded, rerr := n.reload(ctx, "signalled")
	if rerr == nil {
		n.ups = cloneUpstreams(ups)
		n.log().Info("nginx reloaded", "include", inc,
			"validate", validated.Round(time.Microsecond), "total", time.Since(start).Round(time.Microsecond))
		return oldWorkers, nil
	}
	if loaded {
		// Roll forward: the master runs the new config (new workers are
		// up), only the old ones have not yet stopped accepting. The file
		// holds it too, so record it.
		n.ups = cloneUpstreams(ups)
		n.log().Warn("nginx loaded the new config but old workers still accept; keeping it",
			"include", inc, "err", rerr)
		return oldWorkers, nil
	}
	// 5. Roll back: the master has not loaded the new config. Put the old
	// file back and signal again, so whatever the master reads next is the
	// file lbtune records: the last signal is always sent after the file
	// already equals n.ups.
	return nil, n.rollback(ctx, old, hadOld, rerr)
}

// rollback restores the include to old (or removes it when there was
// none), signals the master to load it, and waits for that reload; n.ups
// keeps the old upstreams. It returns cause joined with what went wrong.
func (n *NGINX) rollback(ctx context.Context, old []byte, hadOld bool, cause error) error {
	inc := n.files.Include
	var rerr error
	if hadOld {
		rerr = writeAtomic(inc, old)
	} else {
		rerr = os.Remove(inc)
	}
	if rerr != nil {
		return errors.Join(cause, fmt.Errorf("restore %s (it holds the new, validated config; NGINX may load it): %w", inc, rerr))
	}
	// The caller's context may be what ended the wait; the rollback
	// still gets its own bounded wait.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.reloadTimeout()+time.Second)
	defer cancel()
	if _, loaded, err := n.reload(rctx, ""); err != nil && !loaded {
		n.log().Error("nginx change rolled back but the reload of the previous file is not confirmed",
			"include", inc, "cause", cause, "err", err)
		return errors.Join(cause, fmt.Errorf("previous %s restored; its reload is not confirmed either (NGINX loads it when it handles the signal): %w", inc, err))
	}
	n.log().Warn("nginx change rolled back and the previous file reloaded", "include", inc, "cause", cause)
	return fmt.Errorf("%w; previous %s restored and reloaded", cause, inc)
}

// Validate runs nginx -t on the configuration as it is on disk.
func (n *NGINX) Validate(ctx context.Context) error {
	if out, err := n.test(ctx, n.files.MainConf); err != nil {
		return fmt.Errorf("%w: %v: %s", ErrValidation, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// validateStaged runs nginx -t on a copy of the main config (and of the
// files on the way to the include) that reads staged instead of the
// include. The copies sit in the main config's directory, which is where
// NGINX resolves relative paths from, and are removed afterwards.
func (n *NGINX) validateStaged(ctx context.Context, staged string) error {
	if n.files.MainConf == "" {
		return fmt.Errorf("%w: no main config (-c) to validate %s against", ErrValidation, n.files.Include)
	}
	main, written, err := stageConfig(n.files.MainConf, n.files.Include, staged)
	if err != nil {
		return fmt.Errorf("%w: stage config for nginx -t: %w", ErrValidation, err)
	}
	defer func() {
		for _, p := range written {
			_ = os.Remove(p)
		}
	}()
	if out, err := n.test(ctx, main); err != nil {
		return fmt.Errorf("%w: %v: %s", ErrValidation, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *NGINX) test(ctx context.Context, mainConf string) ([]byte, error) {
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
	args = append(args, "-c", mainConf)
	return exec.CommandContext(ctx, bin, args...).CombinedOutput()
}

// removeStale deletes staged files and config copies that a killed lbtune
// left behind (only names this package makes).
func (n *NGINX) removeStale() {
	pats := []string{stagedPrefix(n.files.Include) + "*"}
	if n.files.MainConf != "" {
		if main, err := filepath.Abs(n.files.MainConf); err == nil {
			pats = append(pats, filepath.Join(filepath.Dir(main), checkFilePattern))
		}
	}
	for _, pat := range pats {
		ms, _ := filepath.Glob(pat)
		for _, m := range ms {
			if err := os.Remove(m); err == nil {
				n.log().Info("nginx stale staged file removed", "file", m)
			}
		}
	}
}

// stagedPrefix is the path prefix of the staged copies of include: a dot
// file in the same directory (so the rename is atomic and no glob include
// picks it up).
func stagedPrefix(include string) string {
	return filepath.Join(filepath.Dir(include), "."+filepath.Base(include)+".lbtune-staged-")
}

// writeStaged writes data to a new staged copy of include, fsynced, and
// returns its path.
func writeStaged(include string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(include), filepath.Base(stagedPrefix(include))+"*")
	if err != nil {
		return "", fmt.Errorf("stage %s: %w", include, err)
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
	if werr != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("stage %s: %w", include, werr)
	}
	return tmp, nil
}

// syncDir fsyncs a directory so a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// reload sends SIGHUP to the master and waits until a worker that was not
// there before runs and the old workers have stopped accepting: from then
// on every new request sees the new config. It returns the old workers.
// On failure, loaded says whether the master did start new workers (so it
// runs the config it read after the signal) before the wait ended. step,
// if not "", is passed to the failpoint once the signal is sent.
func (n *NGINX) reload(ctx context.Context, step string) (oldWorkers []int, loaded bool, err error) {
	master, err := n.MasterPID()
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrReload, err)
	}
	before, err := children(master)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrReload, err)
	}
	if err := syscall.Kill(master, syscall.SIGHUP); err != nil {
		return nil, false, fmt.Errorf("%w: signal master %d: %w", ErrReload, master, err)
	}
	if step != "" {
		reached(step)
	}
	timeout := n.reloadTimeout()
	deadline := time.Now().Add(timeout)
	for {
		now, err := children(master)
		if err != nil {
			return nil, loaded, fmt.Errorf("%w: %w", ErrReload, err)
		}
		// The master reads the config, starts new workers, sleeps 100ms,
		// then tells the old ones to quit; only then do they stop accepting
		// (their title turns to "worker process is shutting down"). Done =
		// a new worker runs and no old worker still accepts. A master that
		// cannot load the config keeps its old workers and starts none.
		loaded = loaded || slices.ContainsFunc(now, func(pid int) bool { return !slices.Contains(before, pid) })
		if loaded && !slices.ContainsFunc(before, acceptingWorker) {
			return before, true, nil
		}
		if time.Now().After(deadline) {
			if loaded {
				return before, true, fmt.Errorf("%w: old workers of master %d still accept after %s", ErrReload, master, timeout)
			}
			return nil, false, fmt.Errorf("%w: no new worker of master %d after %s (see the NGINX error log)", ErrReload, master, timeout)
		}
		select {
		case <-ctx.Done():
			if loaded {
				return before, true, fmt.Errorf("%w: %w", ErrReload, ctx.Err())
			}
			return nil, false, fmt.Errorf("%w: %w", ErrReload, ctx.Err())
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
