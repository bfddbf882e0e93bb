// Package api is the daemon's window: the HTTP API that shows a running
// lbtune's state, policy, model and recent decisions and accepts operator
// commands (mode, manual scale, pause/resume, node and template operations),
// the Prometheus metrics, and the dashboard served from embedded assets.
//
// It sits at the end of the flow. It declares what it needs from the daemon
// as two small interfaces, Reader (what it shows) and Operator (what
// operators change); cmd/lbtune implements them over the controller loops
// and the store. Reads are open; every mutation needs the bearer token.
package api
