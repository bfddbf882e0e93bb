// Package collector is the first stage of lbtune's flow: it scrapes a
// balancer's live statistics (nginx-module-vts JSON, the HAProxy stats socket
// or CSV, NGINX access logs) into Snapshot values, optionally with the
// resource signals of the host it runs on (Linux /proc, HostReader), and
// derives per-interval Rates and the cost figure between two snapshots. It knows nothing of storage, models or
// actuation; cmd/lbtune hands its snapshots to the datasets store.
package collector
