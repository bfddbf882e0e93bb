// Package fleet is the local-process provider of the actuator: it starts a
// pool's backend servers as child processes on free loopback ports from the
// pool's command template, waits until they answer their health check,
// watches them (process exit, failed health checks) and stops them with
// SIGTERM then SIGKILL. actuator.Pools registers them in the balancer and
// drains them before Stop.
package fleet
