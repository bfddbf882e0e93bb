package tuner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/internal/testkit"
)

func newTestRecordWriter(t *testing.T) (*recordWriter, *datasets.Store, *api.Metrics, *testkit.SyncBuffer) {
	t.Helper()
	st, err := datasets.OpenWith(filepath.Join(t.TempDir(), "records.db"), datasets.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	m := api.NewMetrics(prometheus.NewRegistry())
	var lg testkit.SyncBuffer
	return newRecordWriter(st, m, slog.New(slog.NewTextHandler(&lg, nil))), st, m, &lg
}

// putJob stores value under key in the meta bucket, or fails with err.
func putJob(pool string, seq uint64, key, value string, err error) recordJob {
	return recordJob{pool: pool, seq: seq, what: "test", fn: func(w *datasets.TxWriter) error {
		if err != nil {
			return err
		}
		return w.Put(datasets.BucketMeta, key, []byte(value))
	}}
}

// TestRecordWriter: queued records reach the store in order (the last
// value of a key wins), a failing one is logged and counted without
// taking the others of its batch with it, persist-style waits return the
// outcome, stop drains the queue, and after stop writes are synchronous.
func TestRecordWriter(t *testing.T) {
	r, st, m, lg := newTestRecordWriter(t)
	ctx := context.Background()
	// Before start: synchronous.
	if err := r.submit(ctx, putJob("web", 0, "k", "v0", nil), false); err != nil {
		t.Fatal(err)
	}
	if b, _ := st.Get(datasets.BucketMeta, "k"); string(b) != "v0" {
		t.Fatalf("before start: stored %q, want v0 written at once", b)
	}
	r.start()
	bad := errors.New("disk says no")
	for i := 1; i <= 500; i++ {
		var err error
		if i == 250 {
			err = bad
		}
		if serr := r.submit(ctx, putJob("web", uint64(i), "k", fmt.Sprint("v", i), err), false); serr != nil {
			t.Fatalf("submit %d: %v", i, serr)
		}
		if serr := r.submit(ctx, putJob("api", uint64(i), fmt.Sprint("n", i), "x", nil), false); serr != nil {
			t.Fatalf("submit %d: %v", i, serr)
		}
	}
	// A waiting submit returns its own outcome after everything before it.
	if err := r.submit(ctx, putJob("web", 501, "k", "v501", bad), true); !errors.Is(err, bad) {
		t.Errorf("waiting submit of a failing job returned %v, want %v", err, bad)
	}
	if err := r.submit(ctx, putJob("web", 502, "k", "v502", nil), true); err != nil {
		t.Errorf("waiting submit: %v", err)
	}
	if b, _ := st.Get(datasets.BucketMeta, "k"); string(b) != "v502" {
		t.Errorf("after waiting: stored %q, want v502 (the last queued)", b)
	}
	for i := 1; i <= 500; i++ {
		if b, _ := st.Get(datasets.BucketMeta, fmt.Sprint("n", i)); string(b) != "x" {
			t.Fatalf("record n%d lost (batch with the failing record)", i)
		}
	}
	if got := counterValue(m.RecordErrors); got != 2 {
		t.Errorf("lbtune_record_errors_total %v, want 2", got)
	}
	if out := lg.String(); strings.Count(out, "record not stored") != 2 || !strings.Contains(out, "seq=250") || !strings.Contains(out, "disk says no") {
		t.Errorf("log does not name both failed records:\n%s", out)
	}
	// Stop drains what is queued; then writes are synchronous again.
	for i := range 100 {
		_ = r.submit(ctx, putJob("web", uint64(600+i), "k", fmt.Sprint("w", i), nil), false)
	}
	r.stop()
	if b, _ := st.Get(datasets.BucketMeta, "k"); string(b) != "w99" {
		t.Errorf("after stop: stored %q, want w99 (stop drains the queue)", b)
	}
	if err := r.submit(ctx, putJob("web", 700, "k", "late", nil), false); err != nil {
		t.Fatal(err)
	}
	if b, _ := st.Get(datasets.BucketMeta, "k"); string(b) != "late" {
		t.Errorf("after stop: stored %q, want late written at once", b)
	}
	r.stop() // twice is harmless
}

// TestRecordWriterFullQueue: with the writer stalled, a tick that finds
// the queue full waits (counted, logged), and one whose context ends
// while waiting gets an error that is counted and logged too.
func TestRecordWriterFullQueue(t *testing.T) {
	r, st, m, lg := newTestRecordWriter(t)
	r.start()
	defer r.stop()
	// Stall the writer: its first job blocks until released.
	release := make(chan struct{})
	started := make(chan struct{})
	_ = r.submit(context.Background(), recordJob{pool: "stall", what: "test", fn: func(*datasets.TxWriter) error {
		select {
		case <-started:
		default:
			close(started)
		}
		<-release
		return nil
	}}, false)
	<-started
	for i := range recordQueueLen {
		if err := r.submit(context.Background(), putJob("web", uint64(i), fmt.Sprint("q", i), "x", nil), false); err != nil {
			t.Fatalf("submit %d into a queue with room: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := r.submit(ctx, putJob("web", 9999, "lost", "x", nil), false)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("submit into a full queue until the deadline returned %v, want the deadline", err)
	}
	if got := counterValue(m.RecordQueueFull); got != 1 {
		t.Errorf("lbtune_record_queue_full_total %v, want 1", got)
	}
	if got := counterValue(m.RecordErrors); got != 1 {
		t.Errorf("lbtune_record_errors_total %v, want 1", got)
	}
	if out := lg.String(); !strings.Contains(out, "record queue full") || !strings.Contains(out, "seq=9999") {
		t.Errorf("log does not say the queue was full and which record was not stored:\n%s", out)
	}
	// A waiting tick gets through once the writer moves again.
	done := make(chan error, 1)
	go func() { done <- r.submit(context.Background(), putJob("web", 10000, "late", "x", nil), false) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("submit after the writer resumed: %v", err)
	}
	r.stop()
	if b, _ := st.Get(datasets.BucketMeta, "late"); string(b) != "x" {
		t.Error("the record that waited for room was not stored")
	}
	if b, _ := st.Get(datasets.BucketMeta, "lost"); b != nil {
		t.Error("the record given up on was stored anyway")
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestLatestPointFromTheTick: the reward's interval comes from the two
// newest snapshots the controller read (After), the same interval a read
// of the store gives, and not from snapshots older than that read would
// look back.
func TestLatestPointFromTheTick(t *testing.T) {
	st, err := datasets.OpenWith(filepath.Join(t.TempDir(), "points.db"), datasets.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	snap := func(i int) collector.Snapshot {
		n := uint64(i * i * 10)
		return collector.Snapshot{Time: t0.Add(time.Duration(i) * time.Second), Source: "sim:web", Pools: []collector.Pool{{Name: "web", Servers: []collector.Server{
			{Name: "a", Address: "10.0.0.1:80", Weight: 1, State: collector.StateUp, Counters: collector.Counters{Requests: n, Responses: [5]uint64{0, n}, LatencySumMs: 20 * n}},
		}}}}
	}
	now := t0
	p := &Pool{d: &Daemon{store: st}, name: "web", source: "sim:web", scrape: time.Second, clock: func() time.Time { return now }}
	fromStore := func() collector.PoolPoint {
		snaps, err := (&recentSnapshots{store: st, source: "sim:web", scrape: time.Second, clock: p.clock}).Recent(context.Background(), 2)
		if err != nil || len(snaps) != 2 {
			t.Fatalf("store read: %v, %d snapshots", err, len(snaps))
		}
		pts := collector.PoolPoints(nil, snaps, "web")
		return pts[len(pts)-1]
	}
	var rated time.Time
	for i := range 12 {
		if err := st.Append(snap(i)); err != nil {
			t.Fatal(err)
		}
		now = t0.Add(time.Duration(i)*time.Second + 100*time.Millisecond)
		if i%3 != 2 {
			continue // a tick every 3 snapshots
		}
		got, err := p.snapshots().After(context.Background(), rated, 8)
		if err != nil || len(got) == 0 {
			t.Fatalf("tick at %d: After: %v, %d snapshots", i, err, len(got))
		}
		rated = got[len(got)-1].Time
		pt, ok := p.latestPoint(context.Background())
		if !ok {
			t.Fatalf("tick at %d: no latest point", i)
		}
		// Requests grow as 10 i^2: the last interval's rate is 10(2i-1)/s.
		if want := fromStore(); pt.Rate != want.Rate || !pt.Time.Equal(want.Time) || pt.Rate != float64(10*(2*i-1)) {
			t.Errorf("tick at %d: latest point rate %v at %v, store read %v at %v, want %v", i, pt.Rate, pt.Time, want.Rate, want.Time, 10*(2*i-1))
		}
	}
	// A minute later with no new snapshot: nothing, as the store read.
	now = now.Add(time.Minute)
	if pt, ok := p.latestPoint(context.Background()); ok {
		t.Errorf("stale snapshots gave a latest point %+v", pt)
	}
}
