// Package queueing holds the closed forms of the M/M/c queue the agent
// plans with and the simulator is checked against: Erlang B and C, the
// M/M/c mean response time, its tail and quantiles, and the Allen-Cunneen
// G/G/c tail approximation, with the least server count meeting a
// response-time quantile target.
//
// Rates are per second, times in seconds. The functions are pure; they
// panic only on a negative server count (a programmer error).
package queueing
