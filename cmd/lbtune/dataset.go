package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbtune/lbtune/datasets"
)

func init() {
	register(&command{
		name:    "dataset",
		summary: "export, import, summarize, prune, check or recover recorded snapshots (info, export, import, prune, check, recover)",
		run:     datasetRun,
	})
}

// datasetSubcommands maps "lbtune dataset <sub>" to its implementation.
var datasetSubcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"info":    datasetInfo,
	"export":  datasetExport,
	"import":  datasetImport,
	"prune":   datasetPrune,
	"check":   datasetCheck,
	"recover": datasetRecover,
}

func datasetRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stdout // asked for help
		if len(args) == 0 {
			w = stderr // a usage error
		}
		fmt.Fprintln(w, `Usage: lbtune dataset <subcommand> [flags]

Subcommands:
  info     summarize a store or dataset file: sources, pools, time span, snapshots, records
           lbtune dataset info FILE_OR_DB [--json] [--check]
  export   write a store's snapshots and events to a portable dataset file (.jsonl or .jsonl.gz)
           lbtune dataset export --db F --out X.jsonl.gz [--source S] [--from T] [--to T] [--description TEXT]
  import   append dataset files to a store (a file imported twice is stored once)
           lbtune dataset import --db F X.jsonl.gz [Y.jsonl ...]
  prune    delete a store's snapshots older than a duration
           lbtune dataset prune --db F --older-than D
  check    check a store page by page (and every snapshot) for damage
           lbtune dataset check DB [--json]
  recover  copy every readable snapshot and record of a damaged store into a new one
           lbtune dataset recover OLD.db NEW.db

Run 'lbtune dataset <subcommand> -h' for its flags.`)
		if len(args) == 0 {
			return fmt.Errorf("%w: missing subcommand", errUsage)
		}
		return flag.ErrHelp
	}
	sub, ok := datasetSubcommands[args[0]]
	if !ok {
		return fmt.Errorf("%w: unknown subcommand %q (info, export, import, prune, check, recover)", errUsage, args[0])
	}
	return sub(ctx, args[1:], stdout, stderr)
}

// datasetParse parses flags that may come before or after the positional
// arguments ("info v.db --json") and returns the positionals.
func datasetParse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// datasetTime parses an RFC 3339 time flag; "" is the zero time.
func datasetTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: --%s: want RFC 3339 time like 2026-11-28T09:00:00Z: %v", errUsage, name, err)
	}
	return t, nil
}

func datasetInfo(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dataset info", stderr)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	check := fs.Bool("check", false, "for a store, first verify the file's consistency (bbolt Tx.Check)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: lbtune dataset info FILE_OR_DB [--json] [--check]")
		fs.PrintDefaults()
	}
	pos, err := datasetParse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want one FILE_OR_DB, got %d arguments", errUsage, len(pos))
	}
	if *check && datasets.IsStore(pos[0]) {
		if err := datasets.CheckPath(pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "check %s: consistent\n", pos[0])
	}
	sum, err := datasets.Summarize(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	datasetPrintSummary(stdout, pos[0], sum)
	return nil
}

// datasetPrintSummary writes the human-readable form of sum.
func datasetPrintSummary(w io.Writer, path string, s datasets.Summary) {
	kind := "dataset file"
	if datasets.IsStore(path) {
		kind = "store"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "file\t%s (%s)\n", path, kind)
	fmt.Fprintf(tw, "snapshots\t%d (events %d)\n", s.Snapshots, s.Events)
	if s.Snapshots > 0 {
		fmt.Fprintf(tw, "span\t%s .. %s (%.1f s)\n", s.Start.Format(time.RFC3339Nano), s.End.Format(time.RFC3339Nano), s.DurationS)
	}
	fmt.Fprintf(tw, "sources\t%s\n", strings.Join(s.Sources, ", "))
	fmt.Fprintf(tw, "pools\t%d\n", s.Pools)
	fmt.Fprintf(tw, "servers\t%d\n", s.Servers)
	fmt.Fprintf(tw, "intervals\t%d, median %.3f s, %d gaps (> 2x median), %d out of order\n", s.Intervals, s.MedianIntervalS, len(s.Gaps), s.Unordered)
	if s.MinRate != nil {
		fmt.Fprintf(tw, "min rate\t%.3f req/s per server (%d server intervals with a counter reset)\n", *s.MinRate, s.Resets)
	} else {
		fmt.Fprintf(tw, "min rate\tn/a (fewer than two snapshots of a source)\n")
	}
	if len(s.Buckets) > 0 {
		var parts []string
		for _, b := range []datasets.Bucket{datasets.BucketModels, datasets.BucketPolicies, datasets.BucketDecisions,
			datasets.BucketRewards, datasets.BucketEvents, datasets.BucketMeta} {
			if n := s.Buckets[b]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", b, n))
			}
		}
		fmt.Fprintf(tw, "records\t%s\n", strings.Join(parts, ", "))
	}
	_ = tw.Flush()
	if len(s.PoolStats) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "pool\tservers\tmean req/s\tmax req/s\tmin server req/s\tmean cost\tmean ms\tp95 ms\t")
		for _, p := range s.PoolStats {
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", p.Name, p.Servers, p.MeanRate, p.MaxRate, p.MinServerRate, p.MeanCost, p.MeanMs, p.P95Ms)
		}
		_ = tw.Flush()
	}
	const maxGaps = 10
	for i, g := range s.Gaps {
		if i == 0 {
			fmt.Fprintln(w)
		}
		if i == maxGaps {
			fmt.Fprintf(w, "... %d more gaps (see --json)\n", len(s.Gaps)-maxGaps)
			break
		}
		fmt.Fprintf(w, "gap %.1f s after %s (%s)\n", g.Seconds, g.After.Format(time.RFC3339Nano), g.Source)
	}
}

func datasetExport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dataset export", stderr)
	db := fs.String("db", "", "store to read (required)")
	out := fs.String("out", "", "dataset file to write; gzip if it ends in .gz (required)")
	source := fs.String("source", "", "only snapshots of this source URI (default: all)")
	from := fs.String("from", "", "only snapshots at or after this RFC 3339 time")
	to := fs.String("to", "", "only snapshots before this RFC 3339 time")
	desc := fs.String("description", "", "description written into the header")
	pos, err := datasetParse(fs, args)
	if err != nil {
		return err
	}
	if *db == "" || *out == "" || len(pos) != 0 {
		return fmt.Errorf("%w: want --db F --out X.jsonl.gz and no other arguments", errUsage)
	}
	fromT, err := datasetTime("from", *from)
	if err != nil {
		return err
	}
	toT, err := datasetTime("to", *to)
	if err != nil {
		return err
	}
	n, e, err := datasets.ExportPath(*db, *out, datasets.ExportOptions{Source: *source, From: fromT, To: toT, Description: *desc})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %d snapshots and %d events from %s to %s\n", n, e, *db, *out)
	return nil
}

func datasetImport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dataset import", stderr)
	db := fs.String("db", "", "store to write, created if missing (required)")
	pos, err := datasetParse(fs, args)
	if err != nil {
		return err
	}
	if *db == "" || len(pos) == 0 {
		return fmt.Errorf("%w: want --db F and at least one dataset file", errUsage)
	}
	s, err := datasets.Open(*db)
	if err != nil {
		return err
	}
	var errs []error
	for _, path := range pos {
		n, e, err := datasets.ImportPath(s, path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: stored %d snapshots before: %w", path, n, err))
			continue
		}
		fmt.Fprintf(stdout, "imported %d snapshots and %d events from %s into %s\n", n, e, path, *db)
	}
	errs = append(errs, s.Close())
	return errors.Join(errs...)
}

func datasetPrune(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dataset prune", stderr)
	db := fs.String("db", "", "store to prune (required)")
	older := fs.Duration("older-than", 0, "delete snapshots older than this age, e.g. 720h (required)")
	pos, err := datasetParse(fs, args)
	if err != nil {
		return err
	}
	if *db == "" || *older <= 0 || len(pos) != 0 {
		return fmt.Errorf("%w: want --db F --older-than D (D > 0)", errUsage)
	}
	before := time.Now().Add(-*older)
	n, err := datasets.PrunePath(*db, before)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pruned %d snapshots older than %s from %s\n", n, before.UTC().Format(time.RFC3339), *db)
	return nil
}

func datasetCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dataset check", stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: lbtune dataset check DB [--json]\n\nReads every page of the store (read-only) and checks its structure and every snapshot.")
		fs.PrintDefaults()
	}
	pos, err := datasetParse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want one DB, got %d arguments", errUsage, len(pos))
	}
	start := time.Now()
	rep, err := datasets.VerifyPath(pos[0])
	if err != nil && !errors.Is(err, datasets.ErrCorrupt) {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
		return err
	}
	var recs []string
	for _, b := range []datasets.Bucket{datasets.BucketModels, datasets.BucketPolicies, datasets.BucketDecisions,
		datasets.BucketRewards, datasets.BucketEvents, datasets.BucketMeta} {
		if n := rep.Records[string(b)]; n > 0 {
			recs = append(recs, fmt.Sprintf("%s %d", b, n))
		}
	}
	if len(recs) == 0 {
		recs = []string{"none"}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "file\t%s\n", pos[0])
	fmt.Fprintf(tw, "pages\t%d of %d bytes (%d in use, %d free)\n", rep.Pages, rep.PageSize, rep.InUse, rep.Free)
	fmt.Fprintf(tw, "snapshots\t%d\n", rep.Snapshots)
	fmt.Fprintf(tw, "records\t%s\n", strings.Join(recs, ", "))
	fmt.Fprintf(tw, "checked in\t%.2f s\n", time.Since(start).Seconds())
	if err == nil {
		fmt.Fprintf(tw, "result\tconsistent\n")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "result\tDAMAGED: %d problems\n", rep.ProblemCount)
	_ = tw.Flush()
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	if rep.ProblemCount > len(rep.Problems) {
		fmt.Fprintf(stdout, "  ... %d more\n", rep.ProblemCount-len(rep.Problems))
	}
	fmt.Fprintf(stdout, "\nTo copy every readable snapshot, decision and policy into a new store:\n  lbtune dataset recover %s NEW.db\n", pos[0])
	return err
}

func datasetRecover(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dataset recover", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: lbtune dataset recover OLD.db NEW.db\n\nCopies every readable snapshot, decision, reward, event, model, policy and meta record\nof OLD.db (read-only, never changed) into the new store NEW.db (which must not exist).")
		fs.PrintDefaults()
	}
	pos, err := datasetParse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: want OLD.db NEW.db, got %d arguments", errUsage, len(pos))
	}
	rep, err := datasets.Recover(pos[0], pos[1])
	if err != nil {
		return err
	}
	names := []string{"snapshots"}
	for _, b := range []datasets.Bucket{datasets.BucketDecisions, datasets.BucketRewards, datasets.BucketEvents,
		datasets.BucketModels, datasets.BucketPolicies, datasets.BucketMeta} {
		names = append(names, string(b))
	}
	fmt.Fprintf(stdout, "recovered %s into %s\n", pos[0], pos[1])
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bucket\tcopied\tlost\t")
	for _, n := range names {
		lost := fmt.Sprint(rep.Lost[n])
		if unread := rep.LostPagesIn[n] + rep.LostPagesIn["root"]; unread > 0 && (n != "snapshots" || rep.SnapshotsStored < 0) {
			lost += "+?" // and whatever was on the unreadable pages
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", n, rep.Copied[n], lost)
	}
	_ = tw.Flush()
	if rep.SnapshotsStored >= 0 {
		fmt.Fprintf(stdout, "the old store counted %d snapshots\n", rep.SnapshotsStored)
	}
	if rep.Salvaged > 0 {
		fmt.Fprintf(stdout, "%d of the snapshots were on pages cut off from the tree, found by scanning the file\n", rep.Salvaged)
	}
	if rep.LostPages > 0 {
		fmt.Fprintf(stdout, "%d pages could not be read: what they held is lost (+?: how many entries is not known)\n", rep.LostPages)
	}
	if rep.Skipped > 0 {
		fmt.Fprintf(stdout, "%d entries of buckets lbtune does not use were not copied\n", rep.Skipped)
	}
	for i, p := range rep.Problems {
		if i == 10 {
			fmt.Fprintf(stdout, "  ... %d more problems\n", rep.ProblemCount-10)
			break
		}
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	fmt.Fprintf(stdout, "check it with: lbtune dataset check %s; then point store.path at it (or move it in place of the old file, kept aside)\n", pos[1])
	return nil
}
