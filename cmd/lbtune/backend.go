package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/lbtune/lbtune/testbed/backend"
	"github.com/lbtune/lbtune/testbed/dist"
)

func init() {
	register(&command{
		name:    "backend",
		summary: "serve /light, /medium, /heavy test jobs (a VM of a given size)",
		run:     backendRun,
	})
}

func backendRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := backend.DefaultConfig()
	fs := newFlagSet("backend", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free one; the address is printed on stdout)")
	name := fs.String("name", "", "name reported in X-Lbtune-Server (default: the listen address)")
	work := fs.String("work", string(def.Work), "job cost: cpu (real CPU work) or sleep")
	distName := fs.String("dist", string(def.Dist), "service-time distribution: exp, fixed, normal, lognormal")
	lightMs := fs.Float64("light-ms", 5, "mean service time of /light (and /) in ms")
	mediumMs := fs.Float64("medium-ms", 20, "mean service time of /medium in ms")
	heavyMs := fs.Float64("heavy-ms", 80, "mean service time of /heavy in ms")
	conc := fs.Int("concurrency", def.Concurrency, "jobs served at once, the VM size (0 = unlimited)")
	queue := fs.Int("queue", def.QueueLimit, "jobs that may wait for a slot; beyond it: 503")
	speed := fs.Float64("speed", def.Speed, "speed factor dividing every service time")
	seed := fs.Uint64("seed", 0, "random seed (0 = from the clock)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	kind, err := dist.Parse(*distName)
	if err != nil {
		return fmt.Errorf("%w: --dist: %v", errUsage, err)
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	cfg := def
	cfg.Work = backend.Work(*work)
	cfg.Dist = kind
	cfg.Means = map[string]time.Duration{"light": ms(*lightMs), "medium": ms(*mediumMs), "heavy": ms(*heavyMs)}
	cfg.Concurrency, cfg.QueueLimit, cfg.Speed = *conc, *queue, *speed
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	cfg.Name = *name
	if cfg.Name == "" {
		cfg.Name = ln.Addr().String()
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := backend.New(cfg, rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15), log)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintln(stdout, ln.Addr().String())
	return srv.Run(ctx, ln)
}
