package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/lbtune/lbtune/testbed/analyze"
	"github.com/lbtune/lbtune/testbed/dist"
)

func init() {
	register(&command{
		name:    "analyze",
		summary: "statistics of response/service times and errors from lbtune load records or an HAProxy log",
		run:     analyzeRun,
	})
}

func analyzeRun(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("analyze", stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: lbtune analyze [--json] FILE   (lbtune load --out records, CSV or JSONL, or an HAProxy httplog; - for stdin)")
		fs.PrintDefaults()
	}
	// Flags may also follow the file ("analyze out.csv --json").
	pos, err := datasetParse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one FILE", errUsage)
	}
	name := pos[0]
	in := io.Reader(os.Stdin)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		defer f.Close()
		in = f
	}
	r, err := analyze.Analyze(in)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(stdout, "%s: %d lines, %d skipped\n", r.Format, r.Lines, r.Skipped)
	for _, g := range append([]analyze.Group{r.Total}, r.Servers...) {
		fmt.Fprintf(stdout, "\n%s: %d requests, %d errors%s\n", g.Name, g.Requests, g.Errors, loadKinds(g.ErrorsByKind))
		analyzeLine(stdout, "response ms", g.Response)
		analyzeLine(stdout, "service ms", g.Service)
		if g.Wait != nil {
			analyzeLine(stdout, "wait ms", *g.Wait)
		}
	}
	return nil
}

func analyzeLine(w io.Writer, label string, d dist.Description) {
	if d.N == 0 {
		fmt.Fprintf(w, "  %-12s n/a\n", label)
		return
	}
	fmt.Fprintf(w, "  %-12s n %d mean %.3f var %.3f min %.3f max %.3f scv %.3f p50 %.3f p95 %.3f p99 %.3f\n",
		label, d.N, d.Mean, d.Variance, d.Min, d.Max, d.SCV, d.P50, d.P95, d.P99)
}
