// Package tuner is lbtune's online runtime, the daemon behind `lbtune run`.
//
// New builds a Daemon from a validated config.Config: it opens the store,
// builds every source (collector.Open), actuator (HAProxy runtime API or
// standby, NGINX include files, local fleets, AWS) and pool, and restores
// each pool's persisted state. Run then serves the HTTP API and dashboard
// (package api) and runs, under one errgroup:
//
//   - one collector.Loop per source, appending snapshots to the store;
//   - one decision loop per Pool, whose agent.Controller reads the newest
//     snapshots back from the store (the two loops meet only there), asks
//     the policy of the pool's mode (auto and shadow: the agent behind its
//     fallback switch; fallback-only: the threshold policy; manual: the
//     operator's +1/-1), clamps it with the guard and applies it;
//   - a simulated pool's wall-clock simulator (sim.Live), which is both its
//     source and its actuator;
//   - fleet supervision and store retention.
//
// Every decision is recorded with a per-pool id that increases across
// restarts, with its reward; a pool's mode, pause, last applied servers and
// weights, simulated clock and learned policy are persisted so a restarted
// daemon, even after kill -9, resumes where it stopped. schema.go lists
// what is stored under which key.
//
// Daemon implements api.Reader and api.Operator: the API only reads state
// and forwards operator requests (mode, scale, pause, node, template).
package tuner
