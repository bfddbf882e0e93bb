package api

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
)

// Metrics are the daemon's Prometheus metrics, registered on the
// Registerer given to NewMetrics (never the global default). The event
// metrics (counters, histograms) are fields; each pool's current state is
// read when /metrics is scraped, through the PoolCollector.
type Metrics struct {
	// Decisions counts decisions by pool, policy and outcome.
	Decisions *prometheus.CounterVec
	// Reward is the latest reward per pool (higher is better, <= 0).
	Reward *prometheus.GaugeVec
	// Cluster is the GMM cluster of the latest load state per pool (-1 unknown).
	Cluster *prometheus.GaugeVec
	// FallbackActive is 1 while a pool's decisions come from the threshold fallback.
	FallbackActive *prometheus.GaugeVec
	// BalanceAdvice is 1 for the balancing algorithm the agent advises a
	// pool (agent.AdviseBalance; label algorithm: leastconn or
	// roundrobin), with no series while it advises none.
	BalanceAdvice *prometheus.GaugeVec
	// ScrapeErrors counts failed scrapes per source.
	ScrapeErrors *prometheus.CounterVec
	// ActuationLatency is how long applying a decision took, per pool and
	// action (kept for existing dashboards; ActuationDuration adds the
	// actuator).
	ActuationLatency *prometheus.HistogramVec
	// Servers is the number of serving servers per pool.
	Servers *prometheus.GaugeVec

	// DecisionDuration is how long a pool's policy took to decide, per
	// pool (the policy's Decide, without reading data or actuating).
	DecisionDuration *prometheus.HistogramVec
	// ActuationDuration is how long applying a decision took, per pool,
	// actuator and action (scale, weights).
	ActuationDuration *prometheus.HistogramVec
	// ActuationErrors counts failed actuations per pool, actuator and
	// action.
	ActuationErrors *prometheus.CounterVec
	// SwitchDecisions counts the decisions of a pool's agent switch by who
	// decided and why: reason "agent" (the agent decided) or a fallback
	// reason (agent.SwitchUntrained, SwitchStale, SwitchOOD, SwitchUnsure,
	// SwitchError).
	SwitchDecisions *prometheus.CounterVec
	// DecisionLoop is how long one tick of a pool's decision loop took,
	// all pools together: reading the data, deciding, guarding, acting and
	// recording (the loop's cost as the pool count grows; make bench-fleet).
	DecisionLoop prometheus.Histogram
	// RecordQueue is how many decision records wait for the store (the
	// daemon writes them behind the decision loops).
	RecordQueue prometheus.Gauge
	// RecordQueueFull counts the ticks that found the record queue full
	// and waited for room (the store is behind).
	RecordQueueFull prometheus.Counter
	// RecordErrors counts decision records not stored: the store refused
	// them, or the tick ended while waiting for room. Each one is logged.
	RecordErrors prometheus.Counter
}

// LoopBuckets are the decision loop histogram's upper bounds in seconds:
// DecisionBuckets with finer steps between 10 and 100 ms (where the
// loop's p99 goal of 50 ms lies), then up to 10 s.
var LoopBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// DecisionBuckets are the decision duration histogram's upper bounds in
// seconds: a policy decides in well under a millisecond to tens of
// milliseconds, so 50 µs to 0.5 s.
var DecisionBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5}

// ActuationBuckets are the actuation duration histograms' upper bounds in
// seconds: 1 ms (a runtime API call) to about 4.4 minutes (a cloud
// instance's boot).
var ActuationBuckets = prometheus.ExponentialBuckets(0.001, 4, 10)

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbtune_decisions_total", Help: "Decisions made, by pool, policy and outcome (applied, dry-run, refused, noop, failed).",
		}, []string{"pool", "policy", "outcome"}),
		Reward: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbtune_reward", Help: "Latest reward per pool: -(latency penalty + error penalty + server cost).",
		}, []string{"pool"}),
		Cluster: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbtune_cluster", Help: "GMM cluster of the latest load state per pool (-1 when unknown).",
		}, []string{"pool"}),
		FallbackActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbtune_fallback_active", Help: "1 while the pool's decisions come from the threshold fallback.",
		}, []string{"pool"}),
		BalanceAdvice: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbtune_balance_advice", Help: "1 for the balancing algorithm the agent advises the pool (leastconn for round robin on unequal servers); no series while it advises none.",
		}, []string{"pool", "algorithm"}),
		ScrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbtune_scrape_errors_total", Help: "Failed scrapes per source.",
		}, []string{"source"}),
		ActuationLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lbtune_actuation_latency_seconds", Help: "Time to apply a decision, per pool and action (scale, weights); lbtune_actuation_duration_seconds adds the actuator.",
			Buckets: ActuationBuckets,
		}, []string{"pool", "action"}),
		Servers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbtune_servers", Help: "Serving servers per pool.",
		}, []string{"pool"}),
		DecisionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lbtune_decision_duration_seconds", Help: "Time the pool's policy took to decide (without reading data or actuating).",
			Buckets: DecisionBuckets,
		}, []string{"pool"}),
		ActuationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lbtune_actuation_duration_seconds", Help: "Time to apply a decision, per pool, actuator and action (scale, weights).",
			Buckets: ActuationBuckets,
		}, []string{"pool", "actuator", "action"}),
		ActuationErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbtune_actuation_errors_total", Help: "Failed actuations, per pool, actuator and action (scale, weights).",
		}, []string{"pool", "actuator", "action"}),
		SwitchDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbtune_switch_decisions_total", Help: "Decisions of the pool's agent switch by reason: agent (the agent decided) or why the fallback did (untrained, stale, ood, unsure, error).",
		}, []string{"pool", "reason"}),
	}
	m.DecisionLoop = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "lbtune_decision_loop_seconds", Help: "Time one tick of a pool's decision loop took (read data, decide, guard, act, record), all pools together.",
		Buckets: LoopBuckets,
	})
	m.RecordQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lbtune_record_queue", Help: "Decision records waiting to be written to the store.",
	})
	m.RecordQueueFull = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lbtune_record_queue_full_total", Help: "Decision loop ticks that found the record queue full and waited for the store.",
	})
	m.RecordErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lbtune_record_errors_total", Help: "Decision records not stored (the store refused them, or the tick ended waiting for room); each is logged.",
	})
	reg.MustRegister(m.Decisions, m.Reward, m.Cluster, m.FallbackActive, m.BalanceAdvice, m.ScrapeErrors, m.ActuationLatency, m.Servers,
		m.DecisionDuration, m.ActuationDuration, m.ActuationErrors, m.SwitchDecisions, m.DecisionLoop,
		m.RecordQueue, m.RecordQueueFull, m.RecordErrors)
	return m
}

// ObserveDecision counts d.
func (m *Metrics) ObserveDecision(d agent.Decision) {
	outcome := string(d.Outcome)
	if outcome == "" {
		outcome = "none"
	}
	m.Decisions.WithLabelValues(d.Pool, d.Policy, outcome).Inc()
}

// ObserveBalance sets pool's BalanceAdvice from its latest decision d.
func (m *Metrics) ObserveBalance(pool string, d agent.Decision) {
	m.BalanceAdvice.DeletePartialMatch(prometheus.Labels{"pool": pool})
	if d.Balance != "" {
		m.BalanceAdvice.WithLabelValues(pool, d.Balance).Set(1)
	}
}

// ObserveActuation records one actuation of pool by actuator: its
// duration, and an error when err is not nil.
func (m *Metrics) ObserveActuation(pool, actuator, action string, took time.Duration, err error) {
	m.ActuationLatency.WithLabelValues(pool, action).Observe(took.Seconds())
	m.ActuationDuration.WithLabelValues(pool, actuator, action).Observe(took.Seconds())
	if err != nil {
		m.ActuationErrors.WithLabelValues(pool, actuator, action).Inc()
	}
}

// FallbackNone is PoolStatus.FallbackReason when no fallback is in
// charge (the agent or the operator decides). FallbackMode is the reason
// of a pool an operator put in fallback-only mode; the other reasons are
// the agent switch's (agent.SwitchUntrained, SwitchStale, ...).
const (
	FallbackNone = "none"
	FallbackMode = "mode"
)

// PoolStatus is one pool's state as /metrics shows it, read at scrape
// time.
type PoolStatus struct {
	Pool string
	// Mode is auto, shadow, manual or fallback-only; Paused is true while
	// the pool makes no decisions.
	Mode   string
	Paused bool
	// Policy is the policy in charge: the one that made the pool's last
	// decision ("" before the first). FallbackReason is why a fallback is
	// in charge, FallbackNone when none is.
	Policy, FallbackReason string
	// Target is the pool's p95 response time target; Min and Max its
	// template's limits on servers.
	Target   time.Duration
	Min, Max int
	// Latest is the pool's latest interval; nil before there is one.
	Latest *collector.PoolPoint
	// ServersKnown is false when the servers by state could not be
	// counted; Serving, Booting and Draining are the servers in each
	// state.
	ServersKnown               bool
	Serving, Booting, Draining int
	// Desired is the number of servers the pool's decisions ask for (not
	// exported while 0 and the servers are unknown).
	Desired int
	// StateKnown is true once the agent has assessed a load state; OOD is
	// true when it was out of the training distribution, Confidence the
	// posterior of the most likely load state.
	StateKnown bool
	OOD        bool
	Confidence float64
	// PolicyName and PolicyCreated identify the pool's policy table,
	// PolicyUpdates its learning updates (it grows while learning online);
	// PolicyName is "" for a pool without one.
	PolicyName    string
	PolicyCreated time.Time
	PolicyUpdates int
	// LastScrape is the wall-clock time of the pool's source's last
	// successful scrape (zero: none yet); ScrapeErrors are its failed
	// scrapes by kind.
	LastScrape   time.Time
	ScrapeErrors map[string]uint64
}

// PoolCollector is a prometheus.Collector of every pool's state: it calls
// Pools at each scrape, so a label set that changed (a mode, the policy in
// charge) or a pool that was removed disappears at once.
type PoolCollector struct {
	// Pools returns each pool's state; it should finish within the
	// context's deadline.
	Pools func(ctx context.Context) []PoolStatus
	// Version is the lbtune version in lbtune_build_info.
	Version func() string
	// Timeout bounds one call of Pools; 0 means 5 s.
	Timeout time.Duration
}

var (
	descBuild = prometheus.NewDesc("lbtune_build_info", "Always 1; the lbtune version is a label.", []string{"version"}, nil)
	descRate  = prometheus.NewDesc("lbtune_pool_requests_per_second",
		"Request rate the pool served over its latest scrape interval.", []string{"pool"}, nil)
	descErrRatio = prometheus.NewDesc("lbtune_pool_error_ratio",
		"Fraction of the pool's requests that failed over its latest scrape interval (0..1).", []string{"pool"}, nil)
	descMean = prometheus.NewDesc("lbtune_pool_response_time_mean_seconds",
		"Mean response time of the pool over its latest scrape interval (absent when unknown).", []string{"pool"}, nil)
	descP95 = prometheus.NewDesc("lbtune_pool_response_time_p95_seconds",
		"95th percentile response time of the pool over its latest scrape interval (absent when nothing was served).", []string{"pool"}, nil)
	descTarget = prometheus.NewDesc("lbtune_pool_response_time_target_seconds",
		"The pool's p95 response time target (its template's SLO).", []string{"pool"}, nil)
	descMin = prometheus.NewDesc("lbtune_pool_min_servers", "The pool's template minimum of servers.", []string{"pool"}, nil)
	descMax = prometheus.NewDesc("lbtune_pool_max_servers", "The pool's template maximum of servers.", []string{"pool"}, nil)
	descBy  = prometheus.NewDesc("lbtune_pool_servers",
		"Servers of the pool by state: serving (the pool's size), booting (ordered, not serving yet), draining (being drained before removal; still in the size until done).", []string{"pool", "state"}, nil)
	descDesired = prometheus.NewDesc("lbtune_pool_desired_servers",
		"Servers the pool's decisions ask for (serving + booting until a decision asks for a change).", []string{"pool"}, nil)
	descMode = prometheus.NewDesc("lbtune_pool_mode",
		"1 for the pool's current mode (auto, shadow, manual, fallback-only).", []string{"pool", "mode"}, nil)
	descPaused = prometheus.NewDesc("lbtune_pool_paused", "1 while the pool is paused (makes no decisions).", []string{"pool"}, nil)
	descPolicy = prometheus.NewDesc("lbtune_pool_policy_in_charge",
		"1 for the policy that made the pool's last decision (agent, threshold, manual).", []string{"pool", "policy"}, nil)
	descReason = prometheus.NewDesc("lbtune_pool_fallback_reason",
		"1 for why a fallback decides the pool: none, mode (fallback-only), untrained, stale, ood, unsure, error.", []string{"pool", "reason"}, nil)
	descOOD = prometheus.NewDesc("lbtune_pool_load_state_ood",
		"1 when the pool's latest load state was out of the model's training distribution (log-likelihood below its OOD threshold), else 0.", []string{"pool"}, nil)
	descConf = prometheus.NewDesc("lbtune_pool_load_state_confidence",
		"Posterior probability of the most likely load state of the pool's latest interval (0..1).", []string{"pool"}, nil)
	descPolicyInfo = prometheus.NewDesc("lbtune_pool_policy_info",
		"Always 1; the pool's policy table (name, creation time) are labels.", []string{"pool", "name", "created"}, nil)
	descUpdates = prometheus.NewDesc("lbtune_pool_policy_updates",
		"Learning updates in the pool's policy table (grows while it learns online).", []string{"pool"}, nil)
	descLastScrape = prometheus.NewDesc("lbtune_pool_last_scrape_success_timestamp_seconds",
		"Unix time of the last successful scrape of the pool's source (0: none yet).", []string{"pool"}, nil)
	descScrapeErr = prometheus.NewDesc("lbtune_pool_scrape_errors_total",
		"Failed scrapes of the pool's source by kind (timeout, connection, malformed, other).", []string{"pool", "kind"}, nil)
)

// Describe sends every descriptor of the pool metrics.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descRate, descErrRatio, descMean, descP95, descTarget, descMin, descMax, descBy,
		descDesired, descMode, descPaused, descPolicy, descReason, descOOD, descConf, descPolicyInfo, descUpdates, descLastScrape, descScrapeErr} {
		ch <- d
	}
}

// Collect sends every pool's current state.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if c.Version != nil {
		gauge(descBuild, 1, c.Version())
	}
	if c.Pools == nil {
		return
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, p := range c.Pools(ctx) {
		c.collectPool(ch, gauge, p)
	}
}

// collectPool sends one pool's metrics.
func (c *PoolCollector) collectPool(ch chan<- prometheus.Metric, gauge func(*prometheus.Desc, float64, ...string), p PoolStatus) {
	if pt := p.Latest; pt != nil {
		gauge(descRate, pt.Rate, p.Pool)
		gauge(descErrRatio, pt.ErrorRatio, p.Pool)
		if pt.MeanMs > 0 {
			gauge(descMean, pt.MeanMs/1000, p.Pool)
		}
		if pt.P95Ms > 0 {
			gauge(descP95, pt.P95Ms/1000, p.Pool)
		}
	}
	gauge(descTarget, p.Target.Seconds(), p.Pool)
	gauge(descMin, float64(p.Min), p.Pool)
	gauge(descMax, float64(p.Max), p.Pool)
	if p.ServersKnown {
		gauge(descBy, float64(p.Serving), p.Pool, "serving")
		gauge(descBy, float64(p.Booting), p.Pool, "booting")
		gauge(descBy, float64(p.Draining), p.Pool, "draining")
	}
	if p.Desired > 0 || p.ServersKnown {
		gauge(descDesired, float64(p.Desired), p.Pool)
	}
	gauge(descMode, 1, p.Pool, p.Mode)
	gauge(descPaused, boolValue(p.Paused), p.Pool)
	if p.Policy != "" {
		gauge(descPolicy, 1, p.Pool, p.Policy)
	}
	reason := p.FallbackReason
	if reason == "" {
		reason = FallbackNone
	}
	gauge(descReason, 1, p.Pool, reason)
	if p.StateKnown {
		gauge(descOOD, boolValue(p.OOD), p.Pool)
		gauge(descConf, p.Confidence, p.Pool)
	}
	if p.PolicyName != "" {
		created := ""
		if !p.PolicyCreated.IsZero() {
			created = p.PolicyCreated.UTC().Format(time.RFC3339)
		}
		gauge(descPolicyInfo, 1, p.Pool, p.PolicyName, created)
		gauge(descUpdates, float64(p.PolicyUpdates), p.Pool)
	}
	last := 0.0
	if !p.LastScrape.IsZero() {
		last = float64(p.LastScrape.UnixNano()) / 1e9
	}
	gauge(descLastScrape, last, p.Pool)
	for _, kind := range ScrapeErrorKinds {
		ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.CounterValue, float64(p.ScrapeErrors[kind]), p.Pool, kind)
	}
}

// ScrapeErrorKinds are the kinds of failed scrapes, the values of the
// kind label: every kind is exported (0 until it happens), so rate() sees
// the first error.
var ScrapeErrorKinds = []string{"timeout", "connection", "malformed", "other"}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
