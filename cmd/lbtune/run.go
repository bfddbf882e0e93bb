package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner"
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
	d, err := tuner.New(cfg, log, time.Now)
	if err != nil {
		if errors.Is(err, datasets.ErrCorrupt) {
			// Restarting cannot mend a damaged store: a distinct status
			// lets systemd stop retrying (RestartPreventExitStatus).
			return exitCode{code: exitNeedsOperator, err: err}
		}
		return err
	}
	d.Version = version
	// Run stops on SIGINT/SIGTERM (ctx) in the order tuner.Daemon.Run documents.
	return d.Run(ctx, func(addr net.Addr) {
		fmt.Fprintf(stdout, "lbtune: dashboard and API on http://%s/\n", addr)
	})
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
