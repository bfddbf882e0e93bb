package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/actuator/nginx"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/testbed"
)

// testbedExploreFlags runs "lbtune testbed explore": scripted random weight
// changes on a running testbed, each logged as a dataset event line.
func testbedExploreFlags(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("testbed explore", stderr)
	dir := fs.String("dir", testbed.DefaultConfig().StateDir, "state directory of the running testbed")
	balancer := fs.String("balancer", "haproxy", "balancer to change: haproxy (admin socket) or nginx (re-render + reload)")
	every := fs.Duration("every", 20*time.Second, "time between weight changes")
	duration := fs.Duration("duration", 0, "how long to explore (required)")
	maxWeight := fs.Int("max-weight", 30, "largest weight tried")
	events := fs.String("events", "", "append events to this dataset file (JSON lines with a header; importable with 'lbtune dataset import'); default stdout")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *duration <= 0 || *every <= 0 || *maxWeight < 1 {
		return fmt.Errorf("%w: --duration and --every must be positive, --max-weight >= 1", errUsage)
	}
	st, err := testbed.LoadState(*dir)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var setter testbed.WeightSetter
	var source string
	switch *balancer {
	case "haproxy":
		if st.HAProxy == nil {
			return fmt.Errorf("testbed in %s runs no haproxy", *dir)
		}
		setter, source = &haproxy.Runtime{Socket: st.HAProxy.Socket, Log: log}, st.HAProxy.Source
	case "nginx":
		if st.NGINX == nil {
			return fmt.Errorf("testbed in %s runs no nginx", *dir)
		}
		n := nginx.New(st.NGINX.Files(), st.NGINXUpstreams())
		n.Log = log
		setter, source = n, st.NGINX.Source
	default:
		return fmt.Errorf("%w: --balancer %q: want haproxy or nginx", errUsage, *balancer)
	}

	out := stdout
	if *events != "" {
		f, err := os.OpenFile(*events, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("create events: %w", err)
		}
		defer f.Close()
		out = f
	}
	enc := json.NewEncoder(out)
	if err := enc.Encode(datasets.Header{Format: datasets.Format, Version: datasets.FileVersion, Source: source,
		Description: fmt.Sprintf("lbtune testbed explore: random weight changes (1..%d) every %v via %s, seed %d", *maxWeight, *every, *balancer, *seed),
		Created:     time.Now().UTC()}); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	// The starting point: each server's size and initial weight (the
	// nginxlog source cannot see weights, so the events carry them).
	for _, ev := range testbedInitialEvents(st, time.Now().UTC()) {
		if err := enc.Encode(struct {
			Event datasets.Event `json:"event"`
		}{ev}); err != nil {
			return fmt.Errorf("write events: %w", err)
		}
	}
	e := testbed.NewExplorer(st, setter, *every, *maxWeight, rand.NewPCG(*seed, *seed+1))
	e.Log = log
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	return e.Run(ctx, func(c testbed.Change) error {
		return enc.Encode(struct {
			Event datasets.Event `json:"event"`
		}{datasets.Event{Time: c.Time, Kind: "weight", Pool: c.Pool, Server: c.Server, Value: float64(c.New),
			Detail: fmt.Sprintf("%s: %d -> %d via %s", c.Reason, c.Old, c.New, *balancer)}})
	})
}

// testbedInitialEvents describes every backend of st at time now: a "server"
// event (value = speed factor) and a "weight" event with its initial weight.
func testbedInitialEvents(st *testbed.State, now time.Time) []datasets.Event {
	var evs []datasets.Event
	for _, b := range st.Backends {
		evs = append(evs,
			datasets.Event{Time: now, Kind: "server", Pool: b.Pool, Server: b.Name, Value: b.Speed,
				Detail: fmt.Sprintf("addr %s, concurrency %d, speed %g", b.Addr, b.Concurrency, b.Speed)},
			datasets.Event{Time: now, Kind: "weight", Pool: b.Pool, Server: b.Name, Value: float64(b.Weight), Detail: "initial"})
	}
	return evs
}
