package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
)

func init() {
	register(&command{
		name:    "pool",
		summary: "pause or resume the daemon's decisions for a pool (pool pause|resume NAME)",
		run:     poolRun,
	})
}

func poolRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pool", stderr)
	c := clientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lbtune pool [--addr A] [--token-file F] pause|resume NAME")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || (fs.Arg(0) != "pause" && fs.Arg(0) != "resume") {
		return fmt.Errorf("%w: want pause|resume NAME", errUsage)
	}
	if _, err := c.post(ctx, "/v1/pools/"+url.PathEscape(fs.Arg(1))+"/"+fs.Arg(0), "application/json", nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pool %s: %sd\n", fs.Arg(1), fs.Arg(0))
	return nil
}
