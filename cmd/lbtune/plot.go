package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lbtune/lbtune/chart"
)

func init() {
	register(&command{
		name:    "plot",
		summary: "write PNG charts (load, response time vs target, servers, decision metric) from a store or dataset",
		run:     plotRun,
	})
}

func plotRun(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plot", stderr)
	db := fs.String("db", "", "bbolt store (lbtune run/record) or dataset file (.jsonl, .jsonl.gz)")
	out := fs.String("out", "plots", "directory for the PNG files")
	pool := fs.String("pool", "", "only this pool (default: every pool)")
	target := fs.Duration("target", 0, "response-time target to draw when the decisions do not record one (e.g. 250ms)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *db == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: want --db FILE [--out DIR]", errUsage)
	}
	rec, err := chart.LoadRecording(*db)
	if err != nil {
		return err
	}
	pools := rec.Pools(*pool)
	if len(pools) == 0 {
		which := *pool
		if which == "" {
			which = "any pool"
		}
		return fmt.Errorf("%s: no snapshots of %s", *db, which)
	}
	for _, k := range pools {
		h := rec.History(k, *target)
		if len(h.Points) == 0 {
			fmt.Fprintf(stderr, "pool %s (%s): fewer than two snapshots, skipped\n", k.Pool, k.Source)
			continue
		}
		files, err := chart.WritePNGs(*out, h)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintln(stdout, f)
		}
	}
	return nil
}
