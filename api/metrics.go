package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbtune/lbtune/agent"
)

// Metrics are the daemon's Prometheus metrics, registered on the
// Registerer given to NewMetrics (never the global default).
type Metrics struct {
	// Decisions counts decisions by pool, policy and outcome.
	Decisions *prometheus.CounterVec
	// Reward is the latest reward per pool (higher is better, <= 0).
	Reward *prometheus.GaugeVec
	// Cluster is the GMM cluster of the latest load state per pool (-1 unknown).
	Cluster *prometheus.GaugeVec
	// FallbackActive is 1 while a pool's decisions come from the threshold fallback.
	FallbackActive *prometheus.GaugeVec
	// ScrapeErrors counts failed scrapes per source.
	ScrapeErrors *prometheus.CounterVec
	// ActuationLatency is how long applying a decision took, per pool and action.
	ActuationLatency *prometheus.HistogramVec
	// Servers is the number of serving servers per pool.
	Servers *prometheus.GaugeVec
}

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
		ScrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbtune_scrape_errors_total", Help: "Failed scrapes per source.",
		}, []string{"source"}),
		ActuationLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lbtune_actuation_latency_seconds", Help: "Time to apply a decision, per pool and action (scale, weights).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"pool", "action"}),
		Servers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbtune_servers", Help: "Serving servers per pool.",
		}, []string{"pool"}),
	}
	reg.MustRegister(m.Decisions, m.Reward, m.Cluster, m.FallbackActive, m.ScrapeErrors, m.ActuationLatency, m.Servers)
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
