package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/tuner/config"
)

func init() {
	register(&command{
		name:    "run",
		summary: "run the online tuner daemon: collect, decide, act, record; HTTP API and dashboard",
		run:     runCmd,
	})
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	cfgPath := fs.String("config", "lbtune.yaml", "configuration file (see 'lbtune config example')")
	listen := fs.String("listen", "", "API address, overriding api.listen (e.g. 127.0.0.1:9464)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	log, err := runLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.API.Listen = *listen
	}
	return runDaemon(ctx, cfg, log, stdout)
}

// runLogger builds the daemon's slog logger.
func runLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %q: want text or json", errUsage, format)
}

// runDaemon runs the tuner until ctx ends (SIGINT/SIGTERM), then shuts
// down in this order: stop accepting API requests (in-flight ones finish),
// stop every loop (collector, decision, simulator, fleet supervision) and
// wait for them, then persist state, stop the fleet's server processes, and
// close the store last, so it is never closed under a writer.
func runDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	d, err := newDaemon(cfg, log, time.Now)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		_ = d.store.Close()
		return fmt.Errorf("api: %w", err)
	}
	srv := api.NewHTTPServer(cfg.API.Listen, api.Handler(api.Options{
		Reader: d, Operator: d, Token: d.token, Gatherer: d.reg, Logger: log.With("component", "api"),
	}))

	g, gctx := errgroup.WithContext(ctx)
	// 1. The API: serve until the context ends, then stop accepting and
	// let in-flight requests finish (5 s at most).
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	// 2. The collector loops, the decision loops and the simulators; each
	// returns nil when gctx ends.
	d.runLoops(gctx, g.Go)

	names := []string{}
	for _, p := range d.poolList() {
		names = append(names, fmt.Sprintf("%s (%s)", p.name, p.mode))
	}
	log.Info("lbtune running", "api", "http://"+ln.Addr().String(), "pools", strings.Join(names, ", "), "store", cfg.Store.Path)
	fmt.Fprintf(stdout, "lbtune: dashboard and API on http://%s/\n", ln.Addr())

	// 3. Wait for everything to stop, then persist each pool's state and
	// close the store, last.
	err = g.Wait()
	for _, p := range d.poolList() {
		p.mu.Lock()
		if perr := p.persist(); perr != nil {
			log.Warn("persist pool state", "pool", p.name, "err", perr)
		}
		if serr := p.saveLearned(p.clock()); serr != nil {
			log.Warn("save learned policy", "pool", p.name, "err", serr)
		}
		p.mu.Unlock()
	}
	for _, c := range d.closers {
		if cerr := c(); cerr != nil {
			log.Warn("stop actuator", "err", cerr)
		}
	}
	if cerr := d.store.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	log.Info("lbtune stopped")
	return err
}
