// Package eval runs the agent and its baselines against the simulator
// (agent/sim): the scenarios (default and from YAML), Evaluate, which drives
// the production agent.Controller against the simulator and scores a policy
// from the simulator's ground truth, the clairvoyant Oracle, and Fit, which
// trains the agent's load-state model and policy table offline in the
// simulator.
//
// Package agent holds what runs in production and imports neither this
// package nor the simulator.
package eval
