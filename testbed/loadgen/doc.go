// Package loadgen is the testbed's open-loop load generator (lbtune load),
// built on vegeta's attack library. A Schedule (constant rate, phases with
// spikes, or a t,rps trace with speedup and scale) paces arrivals drawn from
// a chosen inter-arrival distribution (Pacer); a Mix spreads them over
// weighted targets. Run is bounded by its Duration and its context, may cap
// requests in flight, and returns a Summary (achieved vs requested rate,
// failures by kind, latency moments and percentiles, a per-second series);
// RecordWriter writes per-request Records that lbtune analyze reads back.
// It drives load from outside the flow: what it sends is what the balancers,
// and so the collector, observe.
package loadgen
