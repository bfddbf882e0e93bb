package agent

import (
	"fmt"
	"math"
)

// The algorithms Decision.Balance may ask for.
const (
	// BalanceLeastConn asks for least connections (HAProxy `balance
	// leastconn`, NGINX `least_conn`), weighted by the servers' weights.
	BalanceLeastConn = "leastconn"
	// BalanceRoundRobin asks for weighted round robin back; it is only
	// advised to an Applier that follows the advice itself (Balancing.Auto).
	BalanceRoundRobin = "roundrobin"
)

// BalanceUnequal and BalanceEqual are the capacity spreads (the largest
// server capacity over the smallest) at which AdviseBalance asks for least
// connections on a weighted round robin pool, and, for a pool whose Applier
// follows the advice, for round robin back.
//
// The measurements behind them (docs/RESULTS.md, "Learned weights against
// leastconn on a real HAProxy"): three servers at speeds 1:2:4 behind
// HAProxy, at 50, 70 and 85% of capacity. Least connections with the
// agent's weights had a p95 within noise of round robin with the same
// agent's weights at 50% and below it at 70 and 85% (144/158/241 against
// 136/191/357 ms; 2656 ms with 501 failed in the first round, when round
// robin starved the slow server), and below plain leastconn at every load
// on both seeds measured. On unequal servers
// a weight that lags (HAProxy's latencies are averages over a server's last
// 1024 requests, the agent acts every few seconds) is a queue on round
// robin; least connections reacts within a request. No run measured a
// spread between 1 and 4, so the threshold is set from the estimator's
// noise, not from a crossing point: on the identical servers of make demo
// (two per pool at the start, six at most) the estimates' spread was 1.12
// at the median, 1.40 at the 90th percentile and 1.46 at most over 134
// decisions (2026-12-03), so 2 stays clear of it (and a 1:2 pair reads
// about 2). Equal servers gain nothing from the switch, so advising it
// there would only churn an operator's config. The way back (1.25, the
// noise's median-to-p90 band) is deliberately hard to reach: least
// connections on servers that turned out equal costs nothing, flapping an
// NGINX reload every few ticks does.
const (
	BalanceUnequal = 2.0
	BalanceEqual   = 1.25
)

// Balancing is a pool's balancing algorithm as its Applier reports it.
type Balancing struct {
	// Algorithm is the balancer's own name for it: HAProxy's "roundrobin",
	// "static-rr", "leastconn", "source", ...; NGINX's "" (its default,
	// weighted round robin), "least_conn", "random", ...
	Algorithm string `json:"algorithm"`
	// Auto is set when the Applier follows the advice itself (an NGINX
	// upstream with method auto): Algorithm is then what it renders now.
	Auto bool `json:"auto,omitempty"`
}

// weightedRoundRobin reports whether algorithm is a weighted round robin:
// HAProxy's roundrobin and static-rr, NGINX's default.
func weightedRoundRobin(algorithm string) bool {
	switch algorithm {
	case "roundrobin", "static-rr", "":
		return true
	}
	return false
}

// leastConnections reports whether algorithm is least connections.
func leastConnections(algorithm string) bool {
	return algorithm == "leastconn" || algorithm == "least_conn"
}

// algorithmName is how a reason names algorithm.
func algorithmName(algorithm string) string {
	if algorithm == "" {
		return "round robin (nginx default)"
	}
	return algorithm
}

// CapacitySpread returns the largest over the smallest positive capacity
// of capacity and how many servers have one; the spread is 0 when fewer
// than two do.
func CapacitySpread(capacity map[string]float64) (spread float64, n int) {
	lo, hi := math.Inf(1), 0.0
	for _, c := range capacity {
		if !(c > 0) || math.IsInf(c, 0) {
			continue
		}
		n++
		lo, hi = min(lo, c), max(hi, c)
	}
	if n < 2 {
		return 0, n
	}
	return hi / lo, n
}

// AdviseBalance is the one rule for a pool's balancing algorithm. Given the
// algorithm the pool runs and its servers' relative capacities (reported or
// estimated), it returns the algorithm the agent wants ("" = keep) and the
// words for the decision's reason ("" when there is nothing to say):
//
//   - a weighted round robin on servers whose capacities spread by
//     BalanceUnequal or more (max/min, at least two servers with a
//     capacity): BalanceLeastConn;
//   - least connections chosen by the advice (b.Auto) on servers that
//     spread by less than BalanceEqual: BalanceRoundRobin;
//   - anything else, or capacities not known yet: keep. An algorithm the
//     operator chose other than round robin (leastconn, source, hash,
//     random) is never advised against.
func AdviseBalance(b Balancing, capacity map[string]float64) (advice, why string) {
	spread, n := CapacitySpread(capacity)
	if n < 2 {
		return "", ""
	}
	switch {
	case weightedRoundRobin(b.Algorithm) && spread >= BalanceUnequal:
		return BalanceLeastConn, fmt.Sprintf("balance: %s on unequal servers (capacity max/min %.2f >= %.2f): %s",
			algorithmName(b.Algorithm), spread, BalanceUnequal, BalanceLeastConn)
	case b.Auto && leastConnections(b.Algorithm) && spread < BalanceEqual:
		return BalanceRoundRobin, fmt.Sprintf("balance: %s on equal servers (capacity max/min %.2f < %.2f): %s",
			b.Algorithm, spread, BalanceEqual, BalanceRoundRobin)
	}
	return "", ""
}
