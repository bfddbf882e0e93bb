package tuner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/lbtune/lbtune/actuator/nginx"
	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner/config"
)

// Daemon is the running tuner (`lbtune run`): one collector loop per
// source, one decision loop per pool, the store they meet in, and the
// state the HTTP API shows and operators change. New builds it, Run runs
// it until its context ends.
type Daemon struct {
	// Version is the lbtune version /v1/state reports; set it before Run.
	Version string

	cfg     *config.Config
	store   *datasets.Store
	reg     *prometheus.Registry
	metrics *api.Metrics
	log     *slog.Logger
	started time.Time
	token   string
	// model describes the loaded model for /v1/model; nil when none.
	model json.RawMessage
	// trained is the loaded model and policy; nil when none.
	trained *trainedModel
	// policies builds each pool's policies (policy.go).
	policies policyFactory
	// actuators are the configured actuators, by name.
	actuators map[string]agent.Applier
	// nginx are the NGINX managers, by actuator name.
	nginx map[string]*nginx.NGINX
	// nginxAdopted names the NGINX actuators whose include file already
	// existed and was adopted as it is (never rewritten at start).
	nginxAdopted map[string]bool
	// runners are actuator loops (fleet supervision) run with the daemon;
	// closers stop what actuators started, after every loop has stopped.
	runners []func(context.Context) error
	// starters run once, in order, before any loop (a fleet adopting the
	// servers the previous run handed over); an error is logged.
	starters []func(context.Context) error
	closers  []func() error
	// wall is the wall clock.
	wall func() time.Time
	// learnEpsilon is each learning pool's exploration rate (/metrics).
	learnEpsilon *prometheus.GaugeVec
	// records writes the pools' decision records behind their loops.
	records *recordWriter

	mu sync.Mutex // guards loops and pools (template up/down change them)
	// loops are the collector loops, by source name.
	loops map[string]*sourceLoop
	// clocks are the scaled clocks of time-scaled sources, by source name.
	clocks map[string]*collector.ScaledClock
	pools  []*Pool
	// spawn starts a goroutine under the daemon's errgroup (set by Run).
	spawn func(func() error)
	// runCtx is the daemon's context, for pools started later.
	runCtx context.Context
}

var (
	_ api.Reader   = (*Daemon)(nil)
	_ api.Operator = (*Daemon)(nil)
)

// sourceLoop is one collector loop and its reported error count.
type sourceLoop struct {
	loop *collector.Loop
	// ofPool marks a simulated pool's loop, started and stopped with it.
	ofPool   bool
	reported uint64 // scrape errors already added to the metric
	// kinds are the failed scrapes by kind (scrapeErrorKind).
	kinds map[string]uint64
}

// Run serves the HTTP API and dashboard on cfg.API.Listen and runs every
// loop until ctx ends (SIGINT/SIGTERM), then shuts down in order (see the
// numbered steps below) and returns. ready, when not nil, is called with
// the API's address once everything runs. Run closes the store: a Daemon
// runs once.
func (d *Daemon) Run(ctx context.Context, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", d.cfg.API.Listen)
	if err != nil {
		_ = d.store.Close()
		return fmt.Errorf("api: %w", err)
	}
	srv := api.NewHTTPServer(d.cfg.API.Listen, api.Handler(api.Options{
		Reader: d, Operator: d, Token: d.token, Gatherer: d.reg, Logger: d.log.With("component", "api"),
	}))

	g, gctx := errgroup.WithContext(ctx)
	// 1. The API: serve until the context ends, then stop accepting and
	// let in-flight requests finish (5 s at most).
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	// 2. Actuators take over what the previous run left (before any
	// decision or supervision), then the collector loops, the decision loops, the simulators and the
	// fleets' supervision; each returns nil when gctx ends.
	for _, st := range d.starters {
		if serr := st(gctx); serr != nil {
			d.log.Warn("actuator start", "err", serr)
		}
	}
	// The record writer runs until step 3b: it outlives every loop that
	// queues records.
	d.records.start()
	d.runLoops(gctx, g.Go)

	names := []string{}
	for _, p := range d.poolList() {
		names = append(names, fmt.Sprintf("%s (%s)", p.name, p.mode))
	}
	d.log.Info("lbtune running", "api", "http://"+ln.Addr().String(), "pools", strings.Join(names, ", "), "store", d.cfg.Store.Path)
	if ready != nil {
		ready(ln.Addr())
	}

	// 3. Wait for every loop to stop: nothing writes to the store after.
	err = g.Wait()
	// 3b. Write the decision records still queued, before the states
	// below (a queued state must not overwrite the final one).
	d.records.stop()
	// 4. Persist each pool's state and learned policy.
	for _, p := range d.poolList() {
		p.mu.Lock()
		if perr := p.persist(); perr != nil {
			d.log.Warn("persist pool state", "pool", p.name, "err", perr)
		}
		if serr := p.saveLearned(p.clock()); serr != nil {
			d.log.Warn("save learned policy", "pool", p.name, "err", serr)
		}
		p.mu.Unlock()
	}
	// 5. Stop what actuators started (a fleet's server processes).
	for _, c := range d.closers {
		if cerr := c(); cerr != nil {
			d.log.Warn("stop actuator", "err", cerr)
		}
	}
	// 6. Close the store, last, so it is never closed under a writer.
	if cerr := d.store.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	d.log.Info("lbtune stopped")
	return err
}

// runLoops starts every loop under spawn until ctx ends.
func (d *Daemon) runLoops(ctx context.Context, spawn func(func() error)) {
	d.runCtx, d.spawn = ctx, spawn
	d.mu.Lock()
	for _, l := range d.loops {
		if !l.ofPool { // a simulated pool runs its own, see startPool
			spawn(func() error { return l.loop.Run(ctx) })
		}
	}
	d.mu.Unlock()
	for _, p := range d.poolList() {
		d.startPool(ctx, p)
	}
	spawn(func() error {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tk.C:
				d.syncScrapeErrors()
			}
		}
	})
	for _, r := range d.runners {
		spawn(func() error { return r(ctx) })
	}
	if d.cfg.Store.Retention > 0 {
		spawn(func() error { return d.prune(ctx) })
	}
}

// startPool starts a pool's decision loop (and its simulator and its
// collector loop) under a context `template down` can cancel.
func (d *Daemon) startPool(ctx context.Context, p *Pool) {
	ctx, p.stop = context.WithCancel(ctx)
	if p.sim != nil {
		d.spawn(func() error { return p.sim.Run(ctx) })
		d.spawn(func() error { return p.loop.Run(ctx) })
	}
	d.spawn(func() error { return p.run(ctx) })
}

// prune drops snapshots, decisions, rewards and events older than the
// retention, once a minute. A simulated pool's records are stamped with its
// clock, which runs ahead of the wall clock, so they are kept at least as
// long.
func (d *Daemon) prune(ctx context.Context) error {
	tk := time.NewTicker(time.Minute)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			before := d.wall().Add(-d.cfg.Store.Retention)
			n, err := d.store.Prune(before)
			for _, b := range []datasets.Bucket{datasets.BucketDecisions, datasets.BucketRewards, datasets.BucketEvents} {
				if err != nil {
					break
				}
				var k int
				k, err = d.store.PruneRecords(b, before)
				n += k
			}
			if err != nil && ctx.Err() == nil {
				d.log.Warn("prune store", "err", err)
			} else if n > 0 {
				d.log.Info("pruned old snapshots and records", "count", n, "before", before)
			}
		}
	}
}

// findPool returns the named pool or an error wrapping api.ErrUnknownPool.
func (d *Daemon) findPool(name string) (*Pool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.pools {
		if p.name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("pool %q: %w", name, api.ErrUnknownPool)
}

// poolList returns a copy of the pool list.
func (d *Daemon) poolList() []*Pool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*Pool(nil), d.pools...)
}

// syncScrapeErrors adds new collector errors to the scrape error metrics.
// The errors since the last sync (a second ago, or a /metrics scrape)
// count as the kind of the latest one.
func (d *Daemon) syncScrapeErrors() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, l := range d.loops {
		st := l.loop.Stats()
		if st.Errors > l.reported {
			d.metrics.ScrapeErrors.WithLabelValues(name).Add(float64(st.Errors - l.reported))
			if l.kinds == nil {
				l.kinds = map[string]uint64{}
			}
			l.kinds[scrapeErrorKind(st.LastError)] += st.Errors - l.reported
			l.reported = st.Errors
		}
	}
}
