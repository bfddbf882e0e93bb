package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lbtune/lbtune/testbed/backend"
)

func init() {
	register(&command{
		name:    "backend",
		summary: "serve /light, /medium, /heavy test jobs (a VM of a given size)",
		run:     backendRun,
	})
}

func backendRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backend", stderr)
	var f backend.Flags
	f.Register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg, err := f.Config()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return f.Serve(ctx, cfg, stdout, stderr)
}
