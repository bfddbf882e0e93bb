// Package actuator applies the agent's decisions to the world. It is the
// last step of the flow (agent decision -> actuator -> balancer / cloud).
//
// Pools composes two small seams it declares itself: a Balancer that sets
// weights and adds and drains servers (actuator/haproxy over the runtime
// API, actuator/nginx by validated reload) and a Provider that starts and
// stops servers (actuator/fleet as local processes, actuator/aws as EC2
// instances or an Auto Scaling group). Pools implements agent.Applier: it
// brings a pool to n serving servers, drains servers before stopping them,
// and replaces servers that died or fail their health checks.
//
// A pool's size is what serves in the balancer pool, launched or not
// (Count; the balancer tells when it is a Lister), and every path that
// adds a server (Scale, Launch, AddServer, supervision) checks Max on that
// total. Supervision (Run) leaves alone the pools its Acting func holds
// (shadow, paused). A Provider that is an Adopter (fleet with a StateFile)
// hands its servers over on stop; Pools.Adopt takes them over on start.
package actuator
