// Package chart turns a pool's recorded history into time series and
// charts: request rate and concurrency, response time against its target,
// servers and weights, and the metric each decision used. It sits at the
// end of the flow: it reads collector snapshots and agent decisions (from
// a store or a dataset file, LoadRecording) and feeds the dashboard's JSON
// and `lbtune plot`'s PNG files (gonum.org/v1/plot).
package chart
