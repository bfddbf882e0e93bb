// Package testbed brings up a local, real load-balancing cluster for lbtune to
// observe and tune: HAProxy and/or NGINX on 127.0.0.1 in front of pools of job
// backends (lbtune backend processes), with generated configs and a state file
// that records every PID, port and source URI. It sits beside the flow rather
// than in it: the collector records from the balancers it starts, the
// actuators change their weights, and its subpackages generate the load
// (loadgen), serve the jobs (backend) and analyse the logs (analyze).
package testbed
