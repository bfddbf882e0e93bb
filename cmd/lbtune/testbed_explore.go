package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

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
	if !slices.Contains(testbed.Balancers, *balancer) {
		return fmt.Errorf("%w: --balancer %q: want haproxy or nginx", errUsage, *balancer)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	setter, source, err := st.WeightSetter(*balancer, log)
	if err != nil {
		return err
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
	h := datasets.Header{Format: datasets.Format, Version: datasets.FileVersion, Source: source,
		Description: fmt.Sprintf("lbtune testbed explore: random weight changes (1..%d) every %v via %s, seed %d", *maxWeight, *every, *balancer, *seed),
		Created:     time.Now().UTC()}
	e := testbed.NewExplorer(st, setter, *every, *maxWeight, rand.NewPCG(*seed, *seed+1))
	e.Log = log
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	return testbed.ExploreDataset(ctx, out, h, st, e, *balancer)
}
