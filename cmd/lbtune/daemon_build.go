package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner/config"
)

// newDaemon opens the store and builds every source, actuator and pool of
// cfg, restoring each pool's persisted state (mode, pause, decision ids,
// last applied servers, simulated clock). Nothing runs until run.
func newDaemon(cfg *config.Config, log *slog.Logger, wall func() time.Time) (_ *daemon, err error) {
	token, err := daemonReadToken(cfg.API.TokenFile)
	if err != nil {
		return nil, err
	}
	store, err := datasets.Open(cfg.Store.Path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if err != nil {
			_ = store.Close()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &daemon{
		cfg: cfg, store: store, reg: reg, metrics: api.NewMetrics(reg), log: log,
		started: wall(), token: token, loops: map[string]*daemonLoop{}, wall: wall,
	}
	d.learnEpsilon = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lbtune_agent_epsilon", Help: "Current exploration rate of each pool's online-learning agent.",
	}, []string{"pool"})
	reg.MustRegister(d.learnEpsilon)
	if d.policies, d.trained, d.model, err = daemonPolicies(cfg, store, log); err != nil {
		return nil, err
	}
	d.actuators = map[string]agent.Applier{}
	for _, a := range cfg.Actuators {
		ap, err := d.daemonActuator(cfg, a, log)
		if err != nil {
			return nil, err
		}
		d.actuators[a.Name] = ap
	}
	// NGINX: write the managed upstreams now (nginx -t, graceful reload,
	// the old file restored on failure), so weights start from a known file.
	for name, n := range d.nginx {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := n.Apply(ctx, n.Upstreams())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("actuator %s: write upstreams: %w", name, err)
		}
	}
	for _, s := range cfg.Sources {
		src, err := collector.Open(s.URI)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		d.addLoop(s.Name, src)
	}
	for _, pc := range cfg.Pools {
		p, err := d.newPool(pc, wall)
		if err != nil {
			return nil, err
		}
		d.pools = append(d.pools, p)
	}
	// Pools started by `template up` before a restart come back.
	if err := d.restoreTemplates(wall); err != nil {
		return nil, err
	}
	return d, nil
}

// addLoop adds the collector loop of one source.
func (d *daemon) addLoop(name string, src collector.Source) *collector.Loop {
	interval, timeout := d.cfg.Intervals.Scrape, d.cfg.Intervals.ScrapeTimeout
	if s, ok := src.(*daemonSim); ok {
		interval, timeout = daemonSimScrape(interval, s.speedup), min(timeout, daemonSimScrape(interval, s.speedup))
	}
	l := &collector.Loop{Source: src, Interval: interval, Timeout: timeout, Appender: d.store, Logger: d.log.With("source", name)}
	_, ofPool := src.(*daemonSim)
	d.mu.Lock()
	d.loops[name] = &daemonLoop{loop: l, ofPool: ofPool}
	d.mu.Unlock()
	return l
}

// daemonSimScrape is the wall-clock scrape interval of a simulated pool:
// one scrape interval of simulated time, but not more often than every
// 100 ms, which a store commit (an fsync) can sustain.
func daemonSimScrape(scrape time.Duration, speedup float64) time.Duration {
	return max(time.Duration(float64(scrape)/speedup), 100*time.Millisecond)
}

// newPool builds one pool: its clock, source, applier, guard, policies and
// controller, restored from its persisted state when there is one.
func (d *daemon) newPool(pc config.Pool, wall func() time.Time) (*daemonPool, error) {
	st, resumed, err := d.loadPoolState(pc.Name)
	if err != nil {
		return nil, err
	}
	p := &daemonPool{
		d: d, name: pc.Name, cfg: pc, clock: wall, period: d.cfg.Intervals.Decide, scrape: d.cfg.Intervals.Scrape,
		manual: &daemonManual{}, log: d.log.With("pool", pc.Name),
		template: agent.Template{
			Min: pc.Template.Min, Max: pc.Template.Max, TargetP95: pc.Template.Target(),
			ServiceRate: pc.Template.ServiceRate, MaxWeight: pc.Template.MaxWeight,
		},
	}
	if pc.Sim != nil {
		// Resume after the last persisted clock, past anything stored since.
		margin := d.cfg.Intervals.Decide + 2*d.cfg.Intervals.Scrape
		s, err := newDaemonSim(pc, st, resumed, margin, wall)
		if err != nil {
			return nil, err
		}
		p.sim, p.applier, p.clock, p.source = s, s, s.clock, s.String()
		s.onPhase = func(at time.Time, rps float64) {
			ev := datasets.Event{Time: at, Kind: "load", Pool: pc.Name, Value: rps}
			if err := d.store.AppendEvent(ev); err != nil {
				p.log.Warn("record load phase", "err", err)
			}
		}
		p.period = time.Duration(float64(d.cfg.Intervals.Decide) / pc.Sim.Speedup)
		p.scrape = time.Duration(float64(daemonSimScrape(d.cfg.Intervals.Scrape, pc.Sim.Speedup)) * pc.Sim.Speedup)
		if p.template.ServiceRate == 0 {
			p.template.ServiceRate = s.serviceRate()
		}
		p.loop = d.addLoop(s.String(), s)
	} else {
		p.source = d.cfg.Source(pc.Source).URI
		p.applier = d.actuators[pc.Actuator]
	}
	p.guard = agent.NewGuard(d.cfg.Guard.Agent(), p.clock)
	if p.auto, p.fallback, err = d.policies(pc, p.template); err != nil {
		return nil, fmt.Errorf("pool %s: %w", pc.Name, err)
	}
	if sw, ok := p.auto.(*agent.Switch); ok && d.cfg.Model.Learning.Enabled && d.trained != nil {
		p.learner = &daemonLearner{agent: sw.Agent(), cfg: d.cfg.Model.Learning, saved: p.clock()}
	}
	mode := d.cfg.PoolMode(&pc)
	if resumed {
		mode, p.paused, p.seq, p.servers, p.weights = st.Mode, st.Paused, st.Seq, st.Servers, st.Weights
		p.templateSpec = st.Template
		p.log.Info("resumed pool", "mode", mode, "paused", p.paused, "last_decision", p.seq, "servers", p.servers)
	}
	if err := p.setModeLocked(mode); err != nil {
		return nil, err
	}
	return p, p.persist()
}

// run runs every loop until ctx ends, then stops in order (see runDaemon).
func (d *daemon) runLoops(ctx context.Context, spawn func(func() error)) {
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
func (d *daemon) startPool(ctx context.Context, p *daemonPool) {
	ctx, p.stop = context.WithCancel(ctx)
	if p.sim != nil {
		d.spawn(func() error { return p.sim.run(ctx) })
		d.spawn(func() error { return p.loop.Run(ctx) })
	}
	d.spawn(func() error { return p.run(ctx) })
}

// prune drops snapshots, decisions, rewards and events older than the
// retention, once a minute. A simulated pool's records are stamped with its
// clock, which runs ahead of the wall clock, so they are kept at least as
// long.
func (d *daemon) prune(ctx context.Context) error {
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
