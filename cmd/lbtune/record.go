package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

func init() {
	register(&command{
		name:    "record",
		summary: "record a balancer's statistics (vts, HAProxy, NGINX log, or captures) into a store",
		run:     recordRun,
	})
}

// recordProgressEvery is how often the progress line is refreshed on a
// terminal; recordLogEvery (in ticks) how often it is printed to a log.
const (
	recordProgressEvery = time.Second
	recordLogEvery      = 30
)

func recordRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("record", stderr)
	source := fs.String("source", "", "source URI: vts+http://HOST/status/format/json, haproxy+unix:///path/admin.sock,\nhaproxy+http://HOST/stats;csv, nginxlog+udp://127.0.0.1:PORT, nginxlog+file:///path,\nhaproxylog+udp://127.0.0.1:PORT, haproxylog+file:///path,\nprom+http://HOST:9090?job=haproxy&proxy=BACKEND (HAProxy exporter or vts via Prometheus),\nor captures to replay: vts+file:PATH, haproxy+file:PATH, nginxlog+file:PATH?replay=1s, haproxylog+file:PATH?replay=1s")
	db := fs.String("db", "", "bbolt store to append to (created if missing)")
	interval := fs.Duration("interval", time.Second, "time between scrapes (replayed captures are read back to back)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM, or the end of a replay)")
	timeout := fs.Duration("timeout", 0, "timeout of one scrape (0: the interval)")
	host := fs.Bool("host", false, "also record this machine's CPU, memory, network, TCP connections and load average\nwith every snapshot (the balancer host's signals when lbtune runs on it; Linux /proc)")
	hostProc := fs.String("host-proc", "/proc", "procfs root read by --host (e.g. /host/proc in a container)")
	from := fs.String("from", "", "backfill: copy the history of a prom+http:// source from this time (RFC 3339,\nor a duration before now such as 168h) instead of scraping; needs --to")
	to := fs.String("to", "", "backfill: end of the history to copy (RFC 3339, a duration before now, or \"now\")")
	step := fs.Duration("step", 15*time.Second, "backfill: one snapshot per step (set it to Prometheus' scrape interval)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case *source == "":
		return fmt.Errorf("%w: --source is required", errUsage)
	case *db == "":
		return fmt.Errorf("%w: --db is required", errUsage)
	case *interval <= 0:
		return fmt.Errorf("%w: --interval must be positive", errUsage)
	case *timeout < 0 || *duration < 0:
		return fmt.Errorf("%w: --timeout and --duration must not be negative", errUsage)
	case *timeout > *interval:
		return fmt.Errorf("%w: --timeout %s must not exceed --interval %s", errUsage, *timeout, *interval)
	}

	if *from != "" || *to != "" {
		return recordBackfill(ctx, *source, *db, *from, *to, *step, *host, *duration, stdout, stderr)
	}
	src, err := collector.Open(*source)
	if err != nil {
		return err
	}
	if *host && collector.IsReplay(src) {
		return fmt.Errorf("%w: --host reads this machine now: it cannot go with replayed captures (%s)", errUsage, src)
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	// A listening source (nginxlog+udp, haproxylog+udp) may have been given
	// port 0: say where the balancer must send its log.
	if l, ok := src.(interface{ Addr() string }); ok {
		fmt.Fprintf(stderr, "record: %s listening on %s\n", src, l.Addr())
	}
	_, statErr := os.Stat(*db)
	created := errors.Is(statErr, os.ErrNotExist)
	store, err := datasets.Open(*db)
	if err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	scraped := src
	if *host {
		// A failed host read keeps the balancer's snapshot (without host
		// signals) and is logged once.
		scraped = collector.WithHost(src, collector.HostReader{Root: *hostProc}, logger)
	}
	loop := &collector.Loop{
		Source:   scraped,
		Interval: *interval,
		Timeout:  *timeout,
		Appender: store,
		Logger:   logger,
		FailFast: true,
	}
	if collector.IsReplay(src) {
		loop.Interval = 0
		if loop.Timeout == 0 {
			loop.Timeout = 10 * time.Second
		}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	// Shutdown order: the loop ends (duration, signal or end of replay),
	// then the progress printer stops, then the store is closed, so the last
	// append is committed before the file is released.
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		recordProgress(stderr, loop, stopProgress)
	}()
	runErr := loop.Run(ctx)
	close(stopProgress)
	<-progressDone
	closeErr := store.Close()

	st := loop.Stats()
	if runErr != nil {
		if created && st.Appended == 0 && closeErr == nil {
			_ = os.Remove(*db) // leave no empty store behind a source that never worked
		}
		return runErr
	}
	if closeErr != nil {
		return closeErr
	}
	fmt.Fprintf(stdout, "recorded %d snapshots from %s into %s (%d scrape errors%s)\n",
		st.Appended, src, *db, st.Errors, recordLastError(st))
	return nil
}

// recordProgress rewrites one status line on stderr until stop closes.
func recordProgress(w io.Writer, loop *collector.Loop, stop <-chan struct{}) {
	tty := isTerminal(w)
	t := time.NewTicker(recordProgressEvery)
	defer t.Stop()
	var last string
	var ticks uint64
	for {
		select {
		case <-stop:
			if tty && last != "" {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
		}
		st := loop.Stats()
		line := fmt.Sprintf("record: %d snapshots stored, %d scrape errors%s", st.Appended, st.Errors, recordLastError(st))
		ticks++
		switch {
		case tty:
			fmt.Fprintf(w, "\r%-100s", line)
		case ticks%recordLogEvery == 0:
			// Not a terminal (a log, where every failed scrape is already a
			// WARN line): one status line every recordLogEvery ticks.
			fmt.Fprintln(w, line)
		}
		last = line
	}
}

func recordLastError(st collector.LoopStats) string {
	if st.LastError == nil {
		return ""
	}
	msg := strings.Join(strings.Fields(st.LastError.Error()), " ")
	if len(msg) > 120 {
		msg = msg[:120] + "..."
	}
	return ", last: " + msg
}

// recordBackfill copies a Prometheus source's history in [from, to] into the
// store at db (lbtune record --from --to).
func recordBackfill(ctx context.Context, source, db, fromArg, toArg string, step time.Duration, host bool, duration time.Duration, stdout, stderr io.Writer) error {
	now := time.Now()
	from, err := recordTime(fromArg, now)
	if err != nil {
		return fmt.Errorf("%w: --from: %v", errUsage, err)
	}
	to, err := recordTime(toArg, now)
	if err != nil {
		return fmt.Errorf("%w: --to: %v", errUsage, err)
	}
	switch {
	case fromArg == "" || toArg == "":
		return fmt.Errorf("%w: backfill needs both --from and --to", errUsage)
	case !to.After(from):
		return fmt.Errorf("%w: --from %s must be before --to %s", errUsage, from.Format(time.RFC3339), to.Format(time.RFC3339))
	case step <= 0:
		return fmt.Errorf("%w: --step must be positive", errUsage)
	case host:
		return fmt.Errorf("%w: --host reads this machine now: it cannot go with a backfill", errUsage)
	case duration > 0:
		return fmt.Errorf("%w: --duration does not apply to a backfill (--from and --to bound it)", errUsage)
	case !strings.HasPrefix(source, "prom+"):
		return fmt.Errorf("%w: --from/--to backfill from a prom+http:// source only, not %s", errUsage, source)
	}
	src, err := collector.OpenProm(source)
	if err != nil {
		return fmt.Errorf("open source %q: %w", source, err)
	}
	_, statErr := os.Stat(db)
	created := errors.Is(statErr, os.ErrNotExist)
	store, err := datasets.Open(db)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, runErr := src.Backfill(ctx, from, to, step, store, logger)
	closeErr := store.Close()
	if runErr != nil {
		if created && st.Appended == 0 && closeErr == nil {
			_ = os.Remove(db) // leave no empty store behind a source that gave nothing
		}
		return runErr
	}
	if closeErr != nil {
		return closeErr
	}
	fmt.Fprintf(stdout, "backfilled %d snapshots from %s into %s (%d steps of %s: %d empty, %d stale, %d repeated scrapes, %d counter resets, %d incomplete)\n",
		st.Appended, src, db, st.Steps, step, st.Empty, st.Stale, st.Repeated, st.Resets, st.Bad)
	return nil
}

// recordTime parses an RFC 3339 time, "now", or a duration before now.
func recordTime(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "now" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, \"now\" nor a duration before now such as 168h", s)
	}
	return now.Add(-d), nil
}
