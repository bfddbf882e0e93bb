// Package haproxy is the HAProxy actuator: it changes a running HAProxy 2.6
// through its runtime API on the admin stats socket (weights, ready / drain /
// maintenance states, dynamic add and delete of servers), never by reload.
// It sits at the end of the flow (agent decision -> actuator -> balancer).
// Every command's answer is checked: HAProxy answers refused commands in
// plain text, and this package turns them into errors quoting both sides.
// RenderConfig writes the configuration under which every command the tuner
// sends is accepted.
package haproxy
