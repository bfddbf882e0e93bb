// Package fleet is the local-process provider of the actuator: it starts a
// pool's backend servers as child processes on free loopback ports from the
// pool's command template, waits until they answer their health check,
// watches them (process exit, failed health checks) and stops them with
// SIGTERM then SIGKILL. actuator.Pools registers them in the balancer and
// drains them before Stop.
//
// # Stop and restart: handover
//
// When lbtune stops, the servers it launched are handed over, not stopped:
// stopping a server that the balancer still sends requests to fails those
// requests until its health checks mark it down, and leaves a DOWN entry
// behind (issue 14: 87 failed requests per SIGTERM at 60 req/s, 32 DOWN
// entries after two runs). Draining every server before stopping would
// avoid the failures but take the pool to zero while lbtune is away.
//
// Handover is on when Fleet.StateFile is set:
//   - servers run detached: their own session (setsid), stdin/stdout/stderr
//     on /dev/null (never a pipe to lbtune), no parent-death signal;
//   - every launch and stop rewrites StateFile atomically with one Record
//     per server (pool, name, address, pid, process start time, start), so
//     the file is current even after a kill -9 of lbtune;
//   - Close (Handover) stops health checks and refuses launches; the
//     servers keep serving, registered in the balancer;
//   - the next run's Adopt (called by actuator.Pools.Adopt) takes over each
//     recorded server that is still the same process (pid and start time,
//     so a reused pid is not taken) and answers its health check; a live
//     one failing its checks is stopped; Pools deregisters every server
//     that is gone from the balancer, so no entry of the fleet is left.
//
// Without a StateFile (tests, one-shot commands) Close stops every server
// and a server dies with lbtune (Pdeathsig), as before. StopAll stops them
// whatever the mode. Under systemd the unit needs KillMode=process (or
// mixed) for the servers to outlive a stop.
package fleet
