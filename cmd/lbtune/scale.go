package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lbtune/lbtune/agent"
)

func init() {
	register(&command{
		name:    "scale",
		summary: "add or remove one server of a pool in manual mode (scale POOL +1|-1)",
		run:     scaleRun,
	})
}

func scaleRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scale", stderr)
	c := clientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lbtune scale [--addr A] [--token-file F] POOL +1|-1")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: want POOL +1|-1", errUsage)
	}
	var delta int
	switch fs.Arg(1) {
	case "+1", "1":
		delta = 1
	case "-1":
		delta = -1
	default:
		return fmt.Errorf("%w: step %q: want +1 or -1", errUsage, fs.Arg(1))
	}
	d, err := c.postJSON(ctx, "/v1/scale", map[string]any{"pool": fs.Arg(0), "delta": delta})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pool %s: %v (%v)", fs.Arg(0), d["outcome"], d["reason"])
	if clamps, ok := d["clamps"].([]any); ok {
		for _, c := range clamps {
			if m, ok := c.(map[string]any); ok {
				fmt.Fprintf(stdout, "; guard: %v", m["reason"])
			}
		}
	}
	fmt.Fprintln(stdout)
	if d["outcome"] == string(agent.OutcomeFailed) {
		return fmt.Errorf("scale %s: %v", fs.Arg(0), d["error"])
	}
	return nil
}
