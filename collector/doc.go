// Package collector is the first stage of lbtune's flow: it scrapes a
// balancer's live statistics (nginx-module-vts JSON, the HAProxy stats socket
// or CSV, NGINX access logs) into Snapshot values, and derives per-interval
// Rates between two snapshots. It knows nothing of storage, models or
// actuation; cmd/lbtune hands its snapshots to the datasets store.
package collector
