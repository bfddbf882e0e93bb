package tuner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/actuator/fleet"
	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/actuator/nginx"
	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/tuner/config"
)

// buildActuator builds the agent.Applier of one configured actuator. A
// fleet also returns its supervision loop (run) and its Close (stop: every
// server process it started ends with the daemon).
func (d *Daemon) buildActuator(cfg *config.Config, a config.Actuator, log *slog.Logger) (agent.Applier, error) {
	switch {
	case a.Fleet != nil:
		templates := map[string]fleet.Template{}
		for _, p := range cfg.Pools {
			if p.Actuator == a.Name {
				templates[p.Name] = fleetTemplate(p)
			}
		}
		fl := fleet.New(templates)
		fl.Log = log.With("actuator", a.Name)
		// Handover: Close leaves the servers serving and records them here;
		// the next start adopts them (Pools.Adopt, before supervision).
		fl.StateFile = fleetStateFile(cfg.Store.Path, a.Name)
		d.closers = append(d.closers, fl.Close)
		fa := d.poolsOver(cfg, a, a.Fleet.Balancer, fl, log)
		fa.addTemplate = func(p config.Pool) { fl.AddTemplate(p.Name, fleetTemplate(p)) }
		return fa, nil
	case a.AWS != nil:
		prov, err := awsProvider(cfg, a, log)
		if err != nil {
			return nil, err
		}
		return d.poolsOver(cfg, a, a.AWS.Balancer, prov, log), nil
	case a.NGINX != nil:
		return &weightsOnly{kind: "nginx", name: a.Name, weights: d.nginxOf(&a, log)}, nil
	case a.HAProxy != nil:
		rt := &haproxy.Runtime{Socket: a.HAProxy.Socket, Log: log.With("actuator", a.Name)}
		if a.HAProxy.Standby {
			return haproxy.NewStandby(rt), nil
		}
		return &weightsOnly{kind: "haproxy", name: a.Name, weights: rt}, nil
	}
	return nil, fmt.Errorf("actuator %s: %s actuators are not wired into lbtune run yet (fleet with an haproxy or nginx balancer, haproxy and nginx are)", a.Name, a.Kind())
}

// poolsOver returns actuator.Pools over the named balancer actuator and a
// server provider (local processes, EC2, an Auto Scaling group) for the
// pools using actuator a; its supervision loop runs with the daemon.
func (d *Daemon) poolsOver(cfg *config.Config, a config.Actuator, balancer string, prov actuator.Provider, log *slog.Logger) *fleetApplier {
	b := cfg.Actuator(balancer)
	var bal actuator.Balancer
	if b.HAProxy != nil {
		bal = &haproxy.Runtime{Socket: b.HAProxy.Socket, Log: log.With("actuator", b.Name)}
	} else {
		bal = d.nginxOf(b, log)
	}
	limits := map[string]actuator.Limits{}
	for _, p := range cfg.Pools {
		if p.Actuator == a.Name {
			limits[p.Name] = limitsOf(p)
		}
	}
	pools := actuator.NewPools(bal, prov, limits)
	pools.Log = log.With("actuator", a.Name)
	pools.Acting = d.acting
	d.starters = append(d.starters, pools.Adopt)
	d.runners = append(d.runners, pools.Run)
	return &fleetApplier{Pools: pools, balancer: bal, provider: prov}
}

// fleetTemplate is how a fleet starts one server of pool p.
func fleetTemplate(p config.Pool) fleet.Template {
	return fleet.Template{Command: selfCommand(strings.Fields(p.Template.Command))}
}

// limitsOf is pool p's size limits and new servers' weight.
func limitsOf(p config.Pool) actuator.Limits {
	return actuator.Limits{Min: p.Template.Min, Max: p.Template.Max, Weight: max(1, p.Template.MaxWeight/2)}
}

// fleetStateFile is where fleet actuator name hands its servers over to
// the next run: next to the store.
func fleetStateFile(store, name string) string {
	return fmt.Sprintf("%s.fleet-%s.json", store, name)
}

// acting tells actuator.Pools whether it may supervise pool (launch to
// min, replace, trim): only when the pool decides for real (auto, manual,
// fallback-only) and is not paused. Shadow, paused and unknown pools (not
// started yet, or taken down) are held.
func (d *Daemon) acting(pool string) bool {
	p, err := d.findPool(pool)
	if err != nil {
		return false
	}
	p.recMu.Lock()
	defer p.recMu.Unlock()
	return p.mode != config.ModeShadow && p.mode != "" && !p.paused
}

// nginxOf returns the one NGINX manager of actuator a, created on first
// use. An include file that already exists and parses is adopted as it is
// (its weights, max_fails and down flags are what NGINX runs); otherwise the
// configured upstreams are written (validated, reloaded) when the daemon
// starts, unless a pool on it starts in shadow mode (see New).
func (d *Daemon) nginxOf(a *config.Actuator, log *slog.Logger) *nginx.NGINX {
	if n, ok := d.nginx[a.Name]; ok {
		return n
	}
	var ups []nginx.Upstream
	for _, u := range a.NGINX.Upstreams {
		up := nginx.NewUpstream(u.Name, u.Method)
		up.Zone = "64k"
		for _, s := range u.Servers {
			up.Servers = append(up.Servers, nginx.UpstreamServer{Address: s, Weight: 10})
		}
		// A fleet's upstream may start with no server: it is parked (one
		// line marked down) until the fleet's first server joins.
		ups = append(ups, nginx.Park(up))
	}
	if d.nginx == nil {
		d.nginx, d.nginxAdopted = map[string]*nginx.NGINX{}, map[string]bool{}
	}
	if cur, err := nginx.ReadUpstreams(a.NGINX.Include); err == nil && len(cur) > 0 {
		ups = cur
		d.nginxAdopted[a.Name] = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		log.Warn("nginx include not adopted: the configured upstreams will replace it", "actuator", a.Name, "include", a.NGINX.Include, "err", err)
	}
	n := nginx.New(nginx.Files{Prefix: a.NGINX.Prefix, MainConf: a.NGINX.Conf, PIDFile: a.NGINX.PIDFile, Include: a.NGINX.Include}, ups)
	n.Log = log.With("actuator", a.Name)
	d.nginx[a.Name] = n
	return n
}

// fleetApplier is a provider's Pools: decisions, supervision and the node
// operations (launch, add, rm), each checked against the pool's limits.
type fleetApplier struct {
	*actuator.Pools
	balancer actuator.Balancer
	provider actuator.Provider
	// addTemplate tells the provider how to start servers of a pool added
	// at runtime (a fleet's command); nil when it needs nothing.
	addTemplate func(config.Pool)
}

// Balancing reports the balancer's algorithm for pool.
func (f *fleetApplier) Balancing(ctx context.Context, pool string) (agent.Balancing, error) {
	return balancingOf(ctx, f.balancer, pool)
}

// ServingServers reports which servers of pool the balancer serves from,
// when it can tell (nil otherwise).
func (f *fleetApplier) ServingServers(ctx context.Context, pool string) (map[string]bool, error) {
	return servingOf(ctx, f.balancer, pool)
}

// SetBalance has the balancer switch pool's algorithm (NGINX method auto).
func (f *fleetApplier) SetBalance(ctx context.Context, pool, algorithm string) error {
	return setBalanceOf(ctx, f.balancer, pool, algorithm)
}

// AddPool makes pool p known to the provider and to Pools, with its
// limits (`template up` of a pool not configured at start).
func (f *fleetApplier) AddPool(p config.Pool) {
	if f.addTemplate != nil {
		f.addTemplate(p)
	}
	f.Pools.AddPool(p.Name, limitsOf(p))
}

// Down takes pool to zero, below its Min (`template down`; the caller has
// paused the pool, so supervision holds it): each server the provider runs
// is drained from the balancer, then stopped. Static servers (configured
// in the balancer, `node add`) are not the provider's: they stay, and the
// returned count says how many still serve.
func (f *fleetApplier) Down(ctx context.Context, pool string) (stillServing int, err error) {
	ms, err := f.provider.Members(ctx, pool)
	if err != nil {
		return 0, fmt.Errorf("list servers of %s: %w", pool, err)
	}
	var errs []error
	for _, m := range ms {
		if rerr := f.balancer.RemoveServer(ctx, pool, m.Name); rerr != nil && m.Healthy {
			errs = append(errs, fmt.Errorf("drain %s: %w (left running)", m.Name, rerr))
			continue
		}
		if serr := f.provider.Stop(ctx, pool, m); serr != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", m.Name, serr))
		}
	}
	c, cerr := f.Count(ctx, pool)
	return c.Serving(), errors.Join(append(errs, cerr)...)
}

// weighter sets weights in a balancer.
type weighter interface {
	SetWeights(ctx context.Context, pool string, weights map[string]int) error
}

// balanceReporter is a balancer that knows its pools' balancing
// algorithms (the agent controller's optional Applier method).
type balanceReporter interface {
	Balancing(ctx context.Context, pool string) (agent.Balancing, error)
}

// balanceSetter is a balancer that follows the balance advice for its
// auto pools (NGINX method auto).
type balanceSetter interface {
	SetBalance(ctx context.Context, pool, algorithm string) error
}

// servingReporter is a balancer that knows which servers of a pool it
// sends new requests to (HAProxy's runtime API).
type servingReporter interface {
	ServingServers(ctx context.Context, pool string) (map[string]bool, error)
}

// servingOf asks b which servers of pool serve; nil, nil when b cannot
// tell.
func servingOf(ctx context.Context, b any, pool string) (map[string]bool, error) {
	if sr, ok := b.(servingReporter); ok {
		return sr.ServingServers(ctx, pool)
	}
	return nil, nil
}

// balancingOf asks b for pool's algorithm when it can tell.
func balancingOf(ctx context.Context, b any, pool string) (agent.Balancing, error) {
	if br, ok := b.(balanceReporter); ok {
		return br.Balancing(ctx, pool)
	}
	return agent.Balancing{}, fmt.Errorf("balancing of %s: %w", pool, agent.ErrNoBalancing)
}

// setBalanceOf has b switch pool's algorithm when it can.
func setBalanceOf(ctx context.Context, b any, pool, algorithm string) error {
	if bs, ok := b.(balanceSetter); ok {
		return bs.SetBalance(ctx, pool, algorithm)
	}
	return fmt.Errorf("set balance of %s to %s: the balancer cannot change its algorithm", pool, algorithm)
}

// weightsOnly applies weights through a balancer that cannot start
// servers by itself; a scale decision fails with an error saying so.
type weightsOnly struct {
	kind, name string
	weights    weighter
}

// Balancing reports the balancer's algorithm for pool.
func (w *weightsOnly) Balancing(ctx context.Context, pool string) (agent.Balancing, error) {
	return balancingOf(ctx, w.weights, pool)
}

// ServingServers reports which servers of pool the balancer serves from,
// when it can tell (nil otherwise).
func (w *weightsOnly) ServingServers(ctx context.Context, pool string) (map[string]bool, error) {
	return servingOf(ctx, w.weights, pool)
}

// SetBalance has the balancer switch pool's algorithm (NGINX method auto).
func (w *weightsOnly) SetBalance(ctx context.Context, pool, algorithm string) error {
	return setBalanceOf(ctx, w.weights, pool, algorithm)
}

// SetWeights forwards to the balancer.
func (w *weightsOnly) SetWeights(ctx context.Context, pool string, weights map[string]int) error {
	return w.weights.SetWeights(ctx, pool, weights)
}

// Scale refuses: a balancer alone has no servers to start.
func (w *weightsOnly) Scale(_ context.Context, pool string, n int) error {
	return fmt.Errorf("scale %s to %d: actuator %s (%s) only sets weights: use a fleet or aws actuator to start servers", pool, n, w.name, w.kind)
}

// timedApplier times every action of an applier into the actuation
// metrics, counting its errors.
type timedApplier struct {
	agent.Applier
	metrics  *api.Metrics
	actuator string
}

// timed wraps a for the controller of pool, timing each action into the
// actuation metrics of actuator (its error counters start at 0, so the
// first error is a rise). An applier that counts
// booting servers and knows capacities (the simulator, fleets) keeps those
// methods visible, so the controller still finds them.
func timed(a agent.Applier, m *api.Metrics, pool, actuator string) agent.Applier {
	for _, action := range []string{"scale", "weights", "balance"} {
		m.ActuationErrors.WithLabelValues(pool, actuator, action)
	}
	t := timedApplier{Applier: a, metrics: m, actuator: actuator}
	if _, ok := a.(bootCounter); ok {
		if _, ok := a.(capacityReporter); ok {
			return &timedSized{timedApplier: t}
		}
	}
	return &t
}

// SetWeights times the applier's SetWeights.
func (t *timedApplier) SetWeights(ctx context.Context, pool string, w map[string]int) (err error) {
	defer t.observe(pool, "weights", time.Now(), &err)
	return t.Applier.SetWeights(ctx, pool, w)
}

// Scale times the applier's Scale.
func (t *timedApplier) Scale(ctx context.Context, pool string, n int) (err error) {
	defer t.observe(pool, "scale", time.Now(), &err)
	return t.Applier.Scale(ctx, pool, n)
}

// Balancing forwards to the applier when it can tell (agent.ErrNoBalancing
// otherwise: the simulator, AWS without a balancer).
func (t *timedApplier) Balancing(ctx context.Context, pool string) (agent.Balancing, error) {
	return balancingOf(ctx, t.Applier, pool)
}

// ServingServers forwards to the applier when it can tell (nil otherwise).
func (t *timedApplier) ServingServers(ctx context.Context, pool string) (map[string]bool, error) {
	return servingOf(ctx, t.Applier, pool)
}

// SetBalance times the applier's SetBalance.
func (t *timedApplier) SetBalance(ctx context.Context, pool, algorithm string) (err error) {
	defer t.observe(pool, "balance", time.Now(), &err)
	return setBalanceOf(ctx, t.Applier, pool, algorithm)
}

func (t *timedApplier) observe(pool, action string, start time.Time, err *error) {
	t.metrics.ObserveActuation(pool, t.actuator, action, time.Since(start), *err)
}

// capacityReporter reports servers' relative capacities.
type capacityReporter interface {
	Capacities(pool string) map[string]float64
}

// timedSized is timedApplier for appliers that count booting servers
// and know capacities.
type timedSized struct {
	timedApplier
}

// Booting forwards to the applier.
func (t *timedSized) Booting(pool string) int {
	return t.Applier.(bootCounter).Booting(pool)
}

// Capacities forwards to the applier.
func (t *timedSized) Capacities(pool string) map[string]float64 {
	return t.Applier.(capacityReporter).Capacities(pool)
}

// selfCommand resolves a template command that runs lbtune itself
// ("lbtune backend ...", as the example config writes it) to this very
// executable when no lbtune is on PATH, so the example runs as written from
// a build tree (./bin/lbtune).
func selfCommand(argv []string) []string {
	if len(argv) == 0 || argv[0] != "lbtune" {
		return argv
	}
	if _, err := exec.LookPath("lbtune"); err == nil {
		return argv
	}
	self, err := os.Executable()
	if err != nil {
		return argv
	}
	out := append([]string{self}, argv[1:]...)
	return out
}
