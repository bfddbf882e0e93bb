package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/agent"
)

// MaxWeight is the largest weight HAProxy accepts on the runtime API.
const MaxWeight = 256

// ErrRefused marks a runtime command that HAProxy answered with anything but
// an empty reply or a known success text. The wrapping error quotes the
// command and HAProxy's answer.
var ErrRefused = errors.New("haproxy refused command")

// ErrNoServer marks a command on a server HAProxy does not know ("No such
// server."); it wraps ErrRefused too.
var ErrNoServer = errors.New("no such server")

// ErrDrainTimeout marks a drain whose sessions did not reach zero in time.
var ErrDrainTimeout = errors.New("drain timed out with sessions still active")

// successTexts are the non-empty answers that mean a command was accepted.
var successTexts = map[string]bool{
	"New server registered.": true,
	"Server deleted.":        true,
}

// State is a server administrative state accepted by `set server ... state`.
type State string

// The states the tuner sets.
const (
	StateReady State = "ready" // takes new traffic
	StateDrain State = "drain" // finishes its sessions, takes no new ones
	StateMaint State = "maint" // out of service; required before del server
)

// Runtime talks to one HAProxy through its admin stats socket. Its zero value
// is not usable; set Socket. Each command uses its own connection, so a
// Runtime is safe for concurrent use.
type Runtime struct {
	// Socket is the path of the `stats socket ... level admin` unix socket.
	Socket string
	// Timeout bounds one command (dial, write, read); 0 means 5s.
	Timeout time.Duration
	// PollInterval is how often Drain polls `show stat`; 0 means 100ms.
	PollInterval time.Duration
	// CheckArgs are the health-check settings given to servers added at
	// runtime, which do not inherit default-server; "" means DefaultCheckArgs.
	CheckArgs string
	// DrainTimeout bounds RemoveServer's wait for sessions; 0 means 30s.
	DrainTimeout time.Duration
	// Log receives one line per action taken; nil means slog.Default().
	Log *slog.Logger

	// algos caches the backends' balancing algorithms (Balancing), read
	// at algosAt.
	algoMu  sync.Mutex
	algos   map[string]string
	algosAt time.Time
}

// AlgorithmTTL is how long Balancing serves the backends' algorithms from
// its cache. HAProxy changes a backend's algorithm only on a reload with a
// new config, so a minute after the operator follows the advice the
// daemon sees it.
const AlgorithmTTL = time.Minute

// Balancing returns backend pool's balancing algorithm ("roundrobin",
// "leastconn", ...) from the algo column of `show stat` (HAProxy 2.6 has
// it), cached for AlgorithmTTL and read again for a backend the cache does
// not have; a failed read drops the cache. HAProxy cannot change the
// algorithm at runtime, so Runtime only reports it (Auto is false): the
// advice is the operator's to follow (`balance leastconn` and a reload).
func (r *Runtime) Balancing(ctx context.Context, pool string) (agent.Balancing, error) {
	r.algoMu.Lock()
	defer r.algoMu.Unlock()
	if a, ok := r.algos[pool]; ok && time.Since(r.algosAt) < AlgorithmTTL {
		return agent.Balancing{Algorithm: a}, nil
	}
	r.algos = nil
	out, err := r.Exec(ctx, "show stat")
	if err != nil {
		return agent.Balancing{}, fmt.Errorf("haproxy balancing of %s: %w", pool, err)
	}
	algos, err := ParseAlgorithms(strings.NewReader(out))
	if err != nil {
		return agent.Balancing{}, fmt.Errorf("haproxy balancing of %s: %w", pool, err)
	}
	a, ok := algos[pool]
	if !ok {
		return agent.Balancing{}, fmt.Errorf("haproxy balancing of %s: no such backend in show stat: %w", pool, agent.ErrNoBalancing)
	}
	r.algos, r.algosAt = algos, time.Now()
	return agent.Balancing{Algorithm: a}, nil
}

// DefaultCheckArgs are the check settings of dynamically added servers; they
// match RenderConfig's default-server line.
const DefaultCheckArgs = "check inter 1s fall 2 rise 1"

func (r *Runtime) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Exec sends one command and returns HAProxy's raw answer.
func (r *Runtime) Exec(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", r.Socket)
	if err != nil {
		return "", fmt.Errorf("haproxy %q: dial %s: %w", cmd, r.Socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy %q: write: %w", cmd, err)
	}
	// Without "prompt", HAProxy answers one command and closes the connection.
	out, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("haproxy %q: read: %w", cmd, err)
	}
	return string(out), nil
}

// Command sends an action command and checks the answer: empty or a known
// success text is accepted; anything else is an error wrapping ErrRefused
// (and ErrNoServer for "No such server.") that quotes command and answer.
func (r *Runtime) Command(ctx context.Context, cmd string) error {
	out, err := r.Exec(ctx, cmd)
	if err != nil {
		return err
	}
	return checkAnswer(cmd, out)
}

// checkAnswer classifies one command's answer.
func checkAnswer(cmd, out string) error {
	ans := strings.TrimSpace(out)
	if ans == "" || successTexts[ans] {
		return nil
	}
	if ans == "No such server." {
		return fmt.Errorf("%w: %w: %q answered %q", ErrRefused, ErrNoServer, cmd, ans)
	}
	return fmt.Errorf("%w: %q answered %q", ErrRefused, cmd, ans)
}

// validName reports whether s can be used as a backend or server name in a
// runtime command (no spaces, slashes or separators).
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n/;#\\")
}

func checkNames(backend, server string) error {
	if !validName(backend) || !validName(server) {
		return fmt.Errorf("haproxy: invalid backend/server name %q/%q", backend, server)
	}
	return nil
}

// SetWeight sets backend/server's weight to w (0..MaxWeight), validated
// before anything is sent.
func (r *Runtime) SetWeight(ctx context.Context, backend, server string, w int) error {
	if err := checkNames(backend, server); err != nil {
		return err
	}
	if w < 0 || w > MaxWeight {
		return fmt.Errorf("haproxy: weight %d for %s/%s outside 0..%d", w, backend, server, MaxWeight)
	}
	if err := r.Command(ctx, fmt.Sprintf("set server %s/%s weight %d", backend, server, w)); err != nil {
		return err
	}
	r.log().Info("haproxy weight set", "backend", backend, "server", server, "weight", w)
	return nil
}

// SetState sets backend/server's administrative state.
func (r *Runtime) SetState(ctx context.Context, backend, server string, s State) error {
	if err := checkNames(backend, server); err != nil {
		return err
	}
	switch s {
	case StateReady, StateDrain, StateMaint:
	default:
		return fmt.Errorf("haproxy: unknown state %q for %s/%s", s, backend, server)
	}
	if err := r.Command(ctx, fmt.Sprintf("set server %s/%s state %s", backend, server, s)); err != nil {
		return err
	}
	r.log().Info("haproxy state set", "backend", backend, "server", server, "state", string(s))
	return nil
}

// AddServer adds server at addr (host:port) to backend with weight w and
// puts it in service: `add server` (HAProxy 2.6 starts it in maintenance
// with checks off), then `enable health` and `enable server`. If enabling
// fails, the half-added server is deleted again and both errors returned.
func (r *Runtime) AddServer(ctx context.Context, backend, server, addr string, w int) error {
	if err := checkNames(backend, server); err != nil {
		return err
	}
	if !validName(addr) {
		return fmt.Errorf("haproxy: invalid address %q for %s/%s", addr, backend, server)
	}
	if w < 0 || w > MaxWeight {
		return fmt.Errorf("haproxy: weight %d for %s/%s outside 0..%d", w, backend, server, MaxWeight)
	}
	check := r.CheckArgs
	if check == "" {
		check = DefaultCheckArgs
	}
	if err := r.Command(ctx, fmt.Sprintf("add server %s/%s %s weight %d %s", backend, server, addr, w, check)); err != nil {
		return err
	}
	for _, cmd := range []string{"enable health %s/%s", "enable server %s/%s"} {
		if err := r.Command(ctx, fmt.Sprintf(cmd, backend, server)); err != nil {
			// It is still in maintenance: delete it so no half-added server stays.
			derr := r.Command(ctx, fmt.Sprintf("del server %s/%s", backend, server))
			return errors.Join(err, derr)
		}
	}
	r.log().Info("haproxy server added", "backend", backend, "server", server, "addr", addr, "weight", w)
	return nil
}

// DeleteServer takes backend/server out at once (`disable server`, which
// puts it in maintenance) and deletes it. HAProxy 2.6 refuses `del server`
// while connections are attached ("Server still has connections attached
// to it, cannot remove it."), so that answer is retried every PollInterval
// for up to Timeout before it is returned as the error. It does not wait
// for sessions: use Drain for that.
func (r *Runtime) DeleteServer(ctx context.Context, backend, server string) error {
	if err := checkNames(backend, server); err != nil {
		return err
	}
	if err := r.Command(ctx, fmt.Sprintf("disable server %s/%s", backend, server)); err != nil {
		return err
	}
	deadline := time.Now().Add(r.timeout())
	for {
		err := r.Command(ctx, fmt.Sprintf("del server %s/%s", backend, server))
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "still has connections") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(r.poll()):
		}
	}
	r.log().Info("haproxy server deleted", "backend", backend, "server", server)
	return nil
}

// Drain removes backend/server without failing a request: state drain (no
// new sessions), poll `show stat` until its current sessions (scur) reach 0
// or timeout passes, then maintenance and `del server`. On timeout the
// sessions left are cut (`shutdown sessions server`, those requests fail),
// the server is removed anyway (it must go), and the returned error wraps
// ErrDrainTimeout with the number of sessions cut.
func (r *Runtime) Drain(ctx context.Context, backend, server string, timeout time.Duration) error {
	if err := r.SetState(ctx, backend, server, StateDrain); err != nil {
		return err
	}
	start := time.Now()
	left, waitErr := r.waitIdle(ctx, backend, server, timeout)
	if waitErr != nil && !errors.Is(waitErr, ErrDrainTimeout) {
		return waitErr
	}
	if waitErr != nil {
		// Out of time: no new traffic (maint), cut what is left, then delete.
		if err := r.SetState(ctx, backend, server, StateMaint); err != nil {
			return errors.Join(waitErr, err)
		}
		if err := r.Command(ctx, fmt.Sprintf("shutdown sessions server %s/%s", backend, server)); err != nil {
			return errors.Join(waitErr, err)
		}
		r.log().Warn("haproxy drain timed out; sessions cut", "backend", backend, "server", server, "sessions", left, "timeout", timeout)
	}
	if err := r.DeleteServer(ctx, backend, server); err != nil {
		return errors.Join(waitErr, err)
	}
	r.log().Info("haproxy server drained", "backend", backend, "server", server,
		"waited", time.Since(start).Round(time.Millisecond), "sessions_cut", left)
	return waitErr
}

func (r *Runtime) timeout() time.Duration {
	if r.Timeout <= 0 {
		return 5 * time.Second
	}
	return r.Timeout
}

func (r *Runtime) poll() time.Duration {
	if r.PollInterval <= 0 {
		return 100 * time.Millisecond
	}
	return r.PollInterval
}

// waitIdle polls show stat until backend/server has no current session.
func (r *Runtime) waitIdle(ctx context.Context, backend, server string, timeout time.Duration) (int, error) {
	poll := r.poll()
	deadline := time.Now().Add(timeout)
	for {
		st, err := r.ServerStat(ctx, backend, server)
		if err != nil {
			return 0, err
		}
		if st.Scur == 0 {
			return 0, nil
		}
		if time.Now().After(deadline) {
			return st.Scur, fmt.Errorf("%w: %s/%s has %d after %s", ErrDrainTimeout, backend, server, st.Scur, timeout)
		}
		select {
		case <-ctx.Done():
			return st.Scur, fmt.Errorf("drain %s/%s: %w", backend, server, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Stats returns the parsed server rows of `show stat`.
func (r *Runtime) Stats(ctx context.Context) ([]Stat, error) {
	out, err := r.Exec(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	rows, err := ParseStat(strings.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("haproxy show stat: %w", err)
	}
	return rows, nil
}

// ServerStat returns backend/server's row of `show stat`; the error wraps
// ErrNoServer when there is none.
func (r *Runtime) ServerStat(ctx context.Context, backend, server string) (Stat, error) {
	rows, err := r.Stats(ctx)
	if err != nil {
		return Stat{}, err
	}
	for _, s := range rows {
		if s.Proxy == backend && s.Server == server {
			return s, nil
		}
	}
	return Stat{}, fmt.Errorf("haproxy show stat: %s/%s: %w", backend, server, ErrNoServer)
}

// Servers returns the server rows of backend.
func (r *Runtime) Servers(ctx context.Context, backend string) ([]Stat, error) {
	rows, err := r.Stats(ctx)
	if err != nil {
		return nil, err
	}
	var out []Stat
	for _, s := range rows {
		if s.Proxy == backend {
			out = append(out, s)
		}
	}
	return out, nil
}

var _ actuator.Lister = (*Runtime)(nil)

// PoolServers lists the servers of backend pool with their state, for
// actuator.Pools to count what serves: a server serves when HAProxy sends
// it new traffic (Stat.Serving: up, not drained, not in maintenance).
func (r *Runtime) PoolServers(ctx context.Context, pool string) ([]actuator.ServerState, error) {
	rows, err := r.Servers(ctx, pool)
	if err != nil {
		return nil, err
	}
	out := make([]actuator.ServerState, len(rows))
	for i, s := range rows {
		out[i] = actuator.ServerState{Name: s.Server, Addr: s.Addr, Serving: s.Serving(), State: s.Status}
	}
	return out, nil
}

// ServingServers reports, for every server of backend pool, whether HAProxy
// sends it new requests: PoolServers (what actuator.Pools counts by) as a
// map, for the daemon to set a request log's server states by. A backend
// without servers is an error wrapping ErrNoServer.
func (r *Runtime) ServingServers(ctx context.Context, pool string) (map[string]bool, error) {
	rows, err := r.PoolServers(ctx, pool)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("haproxy show stat: backend %s: %w", pool, ErrNoServer)
	}
	out := make(map[string]bool, len(rows))
	for _, s := range rows {
		out[s.Name] = s.Serving
	}
	return out, nil
}

// SetWeights sets the weights of servers in backend pool, validating all of
// them before sending any; servers not named keep theirs. Every failure is
// reported (joined), not only the first.
func (r *Runtime) SetWeights(ctx context.Context, pool string, weights map[string]int) error {
	names := make([]string, 0, len(weights))
	for name, w := range weights {
		if err := checkNames(pool, name); err != nil {
			return err
		}
		if w < 0 || w > MaxWeight {
			return fmt.Errorf("haproxy: weight %d for %s/%s outside 0..%d", w, pool, name, MaxWeight)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		errs = append(errs, r.SetWeight(ctx, pool, name, weights[name]))
	}
	return errors.Join(errs...)
}

// RemoveServer drains server out of backend pool and deletes it (see
// Drain), waiting at most DrainTimeout for its sessions. A drain that timed
// out but removed the server is logged (Drain's warning) and not an error:
// the server is gone from HAProxy, so the caller may stop it.
func (r *Runtime) RemoveServer(ctx context.Context, pool, server string) error {
	timeout := r.DrainTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	err := r.Drain(ctx, pool, server, timeout)
	if errors.Is(err, ErrDrainTimeout) && !errors.Is(err, ErrRefused) {
		if _, serr := r.ServerStat(ctx, pool, server); errors.Is(serr, ErrNoServer) {
			return nil
		}
	}
	return err
}
