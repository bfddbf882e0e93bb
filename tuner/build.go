package tuner

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner/config"
)

// New opens the store and builds every source, actuator and pool of cfg,
// restoring each pool's persisted state (mode, pause, decision ids, last
// applied servers, simulated clock). wall is the wall clock (time.Now).
// Nothing runs until Run, which closes the store.
func New(cfg *config.Config, log *slog.Logger, wall func() time.Time) (_ *Daemon, err error) {
	token, created, err := config.EnsureToken(cfg.API.TokenFile)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("created the API token file (random token, mode 0600): mutating API calls and lbtune mode/scale/node need it", "token_file", cfg.API.TokenFile)
	}
	// What config check warns about (the token file exists by now).
	ws, _ := cfg.Check()
	for _, w := range ws {
		log.Warn(w)
	}
	store, err := datasets.OpenWith(cfg.Store.Path, datasets.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if err != nil {
			_ = store.Close()
		}
	}()
	// Check every page before any loop reads or writes one: a damaged
	// store stops the start with the recovery commands (ErrCorrupt)
	// instead of panicking later (docs/BENCHMARKS.md: the cost).
	checkStart := time.Now()
	rep, err := store.Verify()
	if err != nil {
		return nil, fmt.Errorf("check store: %w", err)
	}
	log.Info("store checked", "path", cfg.Store.Path, "pages", rep.Pages, "snapshots", rep.Snapshots, "took", time.Since(checkStart).Round(time.Millisecond))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &Daemon{
		Version: "dev", cfg: cfg, store: store, reg: reg, metrics: api.NewMetrics(reg), log: log,
		started: wall(), token: token, loops: map[string]*sourceLoop{}, clocks: map[string]*collector.ScaledClock{}, wall: wall,
	}
	d.learnEpsilon = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lbtune_agent_epsilon", Help: "Current exploration rate of each pool's online-learning agent.",
	}, []string{"pool"})
	d.records = newRecordWriter(store, d.metrics, log.With("component", "records"))
	reg.MustRegister(d.learnEpsilon, &api.PoolCollector{Pools: d.poolStatus, Version: func() string { return d.Version }})
	if d.policies, d.trained, d.model, err = loadPolicies(cfg, store, log); err != nil {
		return nil, err
	}
	d.actuators = map[string]agent.Applier{}
	for _, a := range cfg.Actuators {
		ap, err := d.buildActuator(cfg, a, log)
		if err != nil {
			return nil, err
		}
		d.actuators[a.Name] = ap
	}
	// NGINX: an include file that exists was adopted as it is. Otherwise
	// write the configured upstreams now (staged, nginx -t, rename,
	// confirmed reload), so weights start from a known file; but never
	// while a pool on it starts in shadow mode: shadow changes nothing.
	for name, n := range d.nginx {
		if d.nginxAdopted[name] {
			log.Info("nginx include adopted as it is", "actuator", name)
			continue
		}
		if d.shadowOn(cfg, name) {
			log.Warn("nginx include missing or not adopted; not written: a pool on this actuator starts in shadow mode", "actuator", name)
			continue
		}
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
		if s.TimeScale > 1 {
			clk := &collector.ScaledClock{Base: wall(), Scale: s.TimeScale, Wall: wall}
			src = &collector.TimeScaled{Source: src, Clock: clk}
			d.clocks[s.Name] = clk
			log.Warn("source runs on a scaled clock (an experiment, not production)", "source", s.Name, "time_scale", s.TimeScale)
		}
		if !collector.KnowsServerStates(src) {
			src = &servingSource{Source: src, d: d, uri: s.URI}
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
func (d *Daemon) addLoop(name string, src collector.Source) *collector.Loop {
	interval, timeout := d.cfg.Intervals.Scrape, d.cfg.Intervals.ScrapeTimeout
	s, ofPool := src.(*sim.Live)
	if ofPool {
		interval, timeout = simScrape(interval, s.Speedup()), min(timeout, simScrape(interval, s.Speedup()))
	}
	l := &collector.Loop{Source: src, Interval: interval, Timeout: timeout, Appender: d.store, Logger: d.log.With("source", name)}
	d.mu.Lock()
	d.loops[name] = &sourceLoop{loop: l, ofPool: ofPool}
	d.mu.Unlock()
	return l
}

// newPool builds one pool: its clock, source, applier, guard, policies and
// controller, restored from its persisted state when there is one.
func (d *Daemon) newPool(pc config.Pool, wall func() time.Time) (_ *Pool, err error) {
	st, resumed, err := loadPoolState(d.store, pc.Name)
	if err == nil && resumed { // a new pool has no state to check (it logged an ERROR per pool)
		err = st.check()
	}
	if err != nil {
		// A state an older version (or a bad write) left: the pool starts
		// afresh rather than the daemon not at all.
		d.log.Error("stored pool state skipped: it does not validate; the pool starts afresh", "pool", pc.Name, "err", err)
		st, resumed = PoolState{Seq: st.Seq}, false
	}
	p := &Pool{
		d: d, name: pc.Name, cfg: pc, clock: wall, period: d.cfg.DecidePeriod(&pc), scrape: d.cfg.Intervals.Scrape,
		manual: &manualPolicy{}, log: d.log.With("pool", pc.Name),
		template: agent.Template{
			Min: pc.Template.Min, Max: pc.Template.Max, TargetP95: pc.Template.Target(),
			ServiceRate: pc.Template.ServiceRate, MaxWeight: pc.Template.MaxWeight,
		},
	}
	if pc.Sim != nil {
		// Resume after the last persisted clock, past anything stored since.
		margin := d.cfg.Intervals.Decide + 2*d.cfg.Intervals.Scrape
		onPhase := func(at time.Time, rps float64) {
			ev := datasets.Event{Time: at, Kind: loadEventKind, Pool: pc.Name, Value: rps}
			if err := d.store.AppendEvent(ev); err != nil {
				p.log.Warn("record load phase", "err", err)
			}
		}
		// The last snapshot stored before a restart: the resumed simulation
		// continues its counters, so rates stay true across a kill -9.
		var last *collector.Snapshot
		if resumed {
			from := st.SimStart.Add(st.SimElapsed - 10*time.Minute)
			_ = d.store.Range("sim:"+pc.Name, from, time.Time{}, func(s collector.Snapshot) error {
				last = &s
				return nil
			})
		}
		s, err := newSim(pc, st, resumed, margin, wall, onPhase, last)
		if err != nil {
			return nil, err
		}
		p.sim, p.applier, p.clock, p.source = s, s, s.Now, s.String()
		p.scrape = time.Duration(float64(simScrape(d.cfg.Intervals.Scrape, pc.Sim.Speedup)) * pc.Sim.Speedup)
		if p.template.ServiceRate == 0 {
			p.template.ServiceRate = s.ServiceRate()
		}
		p.loop = d.addLoop(s.String(), s)
		defer func() {
			if err != nil { // no loop left behind for a pool not built
				d.mu.Lock()
				delete(d.loops, p.source)
				d.mu.Unlock()
			}
		}()
	} else {
		p.source = d.cfg.Source(pc.Source).URI
		p.applier = d.actuators[pc.Actuator]
		p.applied = d.appliedWeights(pc.Actuator)
		if clk := d.clocks[pc.Source]; clk != nil {
			// Intervals are in the scaled clock's time, as a simulated pool's.
			p.clock = clk.Now
			p.period = max(time.Duration(float64(d.cfg.Intervals.Decide)/clk.Scale), 10*time.Millisecond)
			p.scrape = time.Duration(float64(d.cfg.Intervals.Scrape) * clk.Scale)
		}
	}
	p.guard = agent.NewGuard(d.cfg.Guard.Agent(), p.clock)
	if p.auto, p.fallback, err = d.policies(pc, p.template); err != nil {
		return nil, fmt.Errorf("pool %s: %w", pc.Name, err)
	}
	if h, err := agent.WarmSeason(context.Background(), p.auto, d.store, p.source, pc.Name, p.clock()); err != nil {
		p.log.Warn("warm the seasonal forecast from the store", "err", err)
	} else if h > 0 {
		p.log.Info("seasonal forecast warmed from the store", "history", h)
	}
	if sw, ok := p.auto.(*agent.Switch); ok && d.cfg.Model.Learning.Enabled && d.trained != nil {
		p.learner = &learner{agent: sw.Agent(), cfg: d.cfg.Model.Learning, saved: p.clock()}
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

// shadowOn reports whether a pool applied through actuator name (directly,
// or as the balancer of a fleet or aws actuator) starts in shadow mode.
func (d *Daemon) shadowOn(cfg *config.Config, name string) bool {
	for _, pc := range cfg.Pools {
		mode := pc.Mode
		if mode == "" {
			mode = cfg.Mode
		}
		if mode != config.ModeShadow {
			continue
		}
		if pc.Actuator == name {
			return true
		}
		if a := cfg.Actuator(pc.Actuator); a != nil {
			if (a.Fleet != nil && a.Fleet.Balancer == name) || (a.AWS != nil && a.AWS.Balancer == name) {
				return true
			}
		}
	}
	return false
}

// appliedWeights returns the weights-by-address the NGINX actuator behind
// actuator name (directly or as a fleet's balancer) has applied, or nil when
// the balancer reports its weights itself (HAProxy).
func (d *Daemon) appliedWeights(name string) func(pool string) map[string]int {
	a := d.cfg.Actuator(name)
	if a == nil {
		return nil
	}
	if a.Fleet != nil {
		name = a.Fleet.Balancer
	} else if a.AWS != nil {
		name = a.AWS.Balancer
	}
	if n, ok := d.nginx[name]; ok {
		return n.Applied
	}
	return nil
}
