package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/actuator/nginx"
	"github.com/lbtune/lbtune/datasets"
)

// Balancers are the names WeightSetter accepts.
var Balancers = []string{"haproxy", "nginx"}

// WeightSetter returns the setter that changes weights on the testbed's
// named balancer, "haproxy" (its admin socket) or "nginx" (re-render the
// upstreams and reload), and the source URI its statistics are read from.
func (st *State) WeightSetter(balancer string, log *slog.Logger) (WeightSetter, string, error) {
	switch balancer {
	case "haproxy":
		if st.HAProxy == nil {
			return nil, "", fmt.Errorf("testbed in %s runs no haproxy", st.Dir)
		}
		return &haproxy.Runtime{Socket: st.HAProxy.Socket, Log: log}, st.HAProxy.Source, nil
	case "nginx":
		if st.NGINX == nil {
			return nil, "", fmt.Errorf("testbed in %s runs no nginx", st.Dir)
		}
		n := nginx.New(st.NGINX.Files(), st.NGINXUpstreams())
		n.Log = log
		return n, st.NGINX.Source, nil
	}
	return nil, "", fmt.Errorf("balancer %q: want haproxy or nginx", balancer)
}

// InitialEvents describes every backend of st at time now: a "server"
// event (value = speed factor) and a "weight" event with its initial
// weight. The nginxlog source cannot see weights, so the events carry them.
func (st *State) InitialEvents(now time.Time) []datasets.Event {
	var evs []datasets.Event
	for _, b := range st.Backends {
		evs = append(evs,
			datasets.Event{Time: now, Kind: "server", Pool: b.Pool, Server: b.Name, Value: b.Speed,
				Detail: fmt.Sprintf("addr %s, concurrency %d, speed %g", b.Addr, b.Concurrency, b.Speed)},
			datasets.Event{Time: now, Kind: "weight", Pool: b.Pool, Server: b.Name, Value: float64(b.Weight), Detail: "initial"})
	}
	return evs
}

// ExploreDataset runs e until ctx ends and writes what it did to w as a
// dataset file (JSON lines, importable with `lbtune dataset import`): the
// header h, the InitialEvents of st, then one "weight" event per change,
// whose detail names the balancer via.
func ExploreDataset(ctx context.Context, w io.Writer, h datasets.Header, st *State, e *Explorer, via string) error {
	enc := json.NewEncoder(w)
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	type line struct {
		Event datasets.Event `json:"event"`
	}
	for _, ev := range st.InitialEvents(time.Now().UTC()) {
		if err := enc.Encode(line{ev}); err != nil {
			return fmt.Errorf("write events: %w", err)
		}
	}
	return e.Run(ctx, func(c Change) error {
		return enc.Encode(line{datasets.Event{Time: c.Time, Kind: "weight", Pool: c.Pool, Server: c.Server, Value: float64(c.New),
			Detail: fmt.Sprintf("%s: %d -> %d via %s", c.Reason, c.Old, c.New, via)}})
	})
}
