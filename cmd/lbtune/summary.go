package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/lbtune/lbtune/chart"
	"github.com/lbtune/lbtune/tuner/config"
)

func init() {
	register(&command{
		name:    "summary",
		summary: "one screen on a run: requests, failed, p95 vs target, server-minutes, scaling and decisions per pool",
		run:     summaryRun,
	})
}

func summaryRun(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("summary", stderr)
	db := fs.String("db", "", "the store of lbtune run; default: the store of --config")
	cfgPath := fs.String("config", "", "lbtune.yaml whose pool templates give each pool's p95 target (target_seconds)")
	records := fs.String("records", "", "lbtune load --out records (CSV or JSON lines): client-side requests, failures and p95 per pool (path /POOL)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (*db == "" && *cfgPath == "") {
		return fmt.Errorf("%w: want --db FILE or --config lbtune.yaml [--records FILE]", errUsage)
	}
	targets := map[string]time.Duration{}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		for _, p := range cfg.Pools {
			targets[p.Name] = p.Template.Target()
		}
		if *db == "" {
			*db = cfg.Store.Path
		}
	}
	var clients map[string]chart.ClientStats
	source := ""
	if *records != "" {
		f, err := os.Open(*records)
		if err != nil {
			return fmt.Errorf("summary: %w", err)
		}
		clients, err = chart.ReadClientStats(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("summary: %s: %w", *records, err)
		}
		source = "lbtune load records, per path"
	}
	rec, err := chart.LoadRecording(*db)
	if err != nil {
		return err
	}
	return rec.Summary(targets, clients, source).WriteText(stdout)
}
