// Package sim is lbtune's discrete-event simulator of balanced server pools.
// It stands in for the real world at both of lbtune's seams: it produces
// collector.Snapshot values through Scrape, like the collector's sources, and
// takes decisions through SetWeights and Scale, like the actuators (it
// satisfies agent.Applier structurally; package sim never imports agent).
// Offline training and `lbtune eval` drive the production controller and
// policies against it, and read its ground truth (exact per-minute p95,
// failed and dropped requests, server-seconds, actions) to score them.
//
// The model: arrivals come from a `t,rps` Trace (Poisson within each step),
// are split into request classes with their own service-time distributions,
// routed by a balancer (NGINX smooth weighted round robin, least_conn,
// random two choices, HAProxy weighted roundrobin) to a server's FIFO queue,
// and served by up to Slots requests at a time at the server's Speed. Servers
// boot after a delay, drain before removal and fail at given times or rates.
// Time is float64 seconds since the start; the hot path allocates nothing
// per request and uses one binary heap of completion events.
package sim
