// Package config loads and validates lbtune.yaml, the configuration of the
// online daemon (`lbtune run`): where snapshots come from (sources), how
// decisions reach the balancer or the cloud (actuators), each pool's scaling
// template, reward weights, intervals, the HTTP API and the store.
//
// Loading follows Prometheus: start from Default, decode strictly (unknown
// keys are errors), then Validate collects every problem, each with its line
// number, including cross-field checks. Package tuner turns a valid Config
// into wired packages; this package imports only agent, whose reward and
// guard settings Reward.Agent and Guard.Agent convert to, and agent/sim,
// to read a simulated pool's trace in Check.
//
// Every numeric setting has a documented finite range (Ranges, the table
// of docs/OPERATIONS.md): Validate refuses NaN, Inf and values outside it,
// and bounds what a simulated pool may cost (MaxSimRPS, MinSimPeriod).
package config
