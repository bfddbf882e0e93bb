package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/lbtune/lbtune/chart"
	"github.com/lbtune/lbtune/tuner/config"
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
	db := fs.String("db", "", "bbolt store (lbtune run/record) or dataset file (.jsonl, .jsonl.gz); default: the store of --config")
	cfgPath := fs.String("config", "", "lbtune.yaml whose pool templates give each pool's response-time target (target_seconds)")
	out := fs.String("out", "plots", "directory for the PNG files")
	pool := fs.String("pool", "", "only this pool (default: every pool)")
	target := fs.Duration("target", 0, "response-time target to draw for every pool, overriding the templates and the decisions (e.g. 250ms)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (*db == "" && *cfgPath == "") {
		return fmt.Errorf("%w: want --db FILE or --config lbtune.yaml [--out DIR]", errUsage)
	}
	// Targets: --target, else the pool's template, else what the
	// decisions recorded (History, target 0).
	templates := map[string]time.Duration{}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		for _, p := range cfg.Pools {
			templates[p.Name] = p.Template.Target()
		}
		if *db == "" {
			*db = cfg.Store.Path
		}
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
		t := *target
		if t == 0 {
			t = templates[k.Pool]
		}
		h := rec.History(k, t)
		if len(h.Points) == 0 {
			fmt.Fprintf(stderr, "pool %s (%s): fewer than two snapshots, skipped\n", k.Pool, k.Source)
			continue
		}
		if h.Target == 0 {
			fmt.Fprintf(stderr, "pool %s: no response-time target known (pass --config lbtune.yaml or --target), none drawn\n", k.Pool)
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
