package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lbtune/lbtune/tuner/config"
)

func init() {
	register(&command{
		name:    "mode",
		summary: "switch the daemon's pools to auto, shadow, manual or fallback-only",
		run:     modeRun,
	})
}

func modeRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mode", stderr)
	c := clientFlags(fs)
	pool := fs.String("pool", "", "switch only this pool (default: every pool)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lbtune mode [--addr A] [--token-file F] [--pool P] auto|shadow|manual|fallback-only")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || !config.ValidMode(fs.Arg(0)) {
		return fmt.Errorf("%w: want one of auto, shadow, manual, fallback-only", errUsage)
	}
	if _, err := c.postJSON(ctx, "/v1/mode", map[string]string{"mode": fs.Arg(0), "pool": *pool}); err != nil {
		return err
	}
	which := "every pool"
	if *pool != "" {
		which = "pool " + *pool
	}
	fmt.Fprintf(stdout, "%s: mode %s\n", which, fs.Arg(0))
	return nil
}
