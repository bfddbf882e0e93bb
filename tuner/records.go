package tuner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/datasets"
)

// recordQueueLen bounds the decision records waiting for the store: 200
// pools deciding every 5 s queue 40 a second, so 1024 is 25 s of every
// pool's decisions before a tick has to wait.
const recordQueueLen = 1024

// recordBatch bounds how many queued records share one transaction.
const recordBatch = 128

// recordWriter writes the pools' decision records (decision, reward, pool
// state) to the store from one goroutine, in the order they were queued,
// so a decision loop's tick does not wait for a commit that also carries
// every collector loop's snapshots. A pool's records are queued holding its
// recMu, so they reach the store in seq order, and a pool's state written
// by persist goes through the same queue (and waits): an older queued
// state never overwrites a newer one.
//
// Nothing is dropped silently: a tick that finds the queue full waits for
// room (lbtune_record_queue_full_total counts it, the log says so), and a
// record the store refuses, or one given up on because the tick's context
// ended while waiting, is logged at ERROR and counted in
// lbtune_record_errors_total. Until start and after stop, records are
// written synchronously.
type recordWriter struct {
	store   *datasets.Store
	metrics *api.Metrics
	log     *slog.Logger

	// mu: submit holds it for reading while it queues, stop for writing
	// while it closes the queue, so nothing is sent on a closed channel.
	mu      sync.RWMutex
	running bool
	queue   chan recordJob
	done    chan struct{}
}

// recordJob is one pool's write: fn runs inside the shared transaction.
type recordJob struct {
	pool string
	seq  uint64
	what string
	fn   func(w *datasets.TxWriter) error
	// result, when not nil, receives the write's outcome (persist waits).
	result chan error
}

func newRecordWriter(store *datasets.Store, m *api.Metrics, log *slog.Logger) *recordWriter {
	return &recordWriter{store: store, metrics: m, log: log}
}

// start runs the writer goroutine until stop.
func (r *recordWriter) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return
	}
	r.running = true
	r.queue = make(chan recordJob, recordQueueLen)
	r.done = make(chan struct{})
	go r.run(r.queue, r.done)
}

// stop writes every queued record and returns once they are stored (or
// failed and logged); later records are written synchronously.
func (r *recordWriter) stop() {
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return
	}
	r.running = false
	close(r.queue)
	done := r.done
	r.mu.Unlock()
	<-done
}

// submit queues job, or writes it now when the writer is not running.
// With wait, it returns the write's outcome; without, only whether the
// job was queued (a later failure is logged and counted by the writer).
// The caller holds the pool's recMu, which orders its records.
func (r *recordWriter) submit(ctx context.Context, job recordJob, wait bool) error {
	r.mu.RLock()
	if !r.running {
		r.mu.RUnlock()
		return r.fail(job, r.store.Write(job.what, job.fn))
	}
	if wait {
		job.result = make(chan error, 1)
	}
	err := r.enqueue(ctx, job)
	r.mu.RUnlock()
	if err != nil {
		return r.fail(job, err)
	}
	if !wait {
		return nil
	}
	return <-job.result
}

// enqueue sends job, waiting for room when the queue is full (the store
// is behind: back-pressure on the decision loops) until ctx ends.
func (r *recordWriter) enqueue(ctx context.Context, job recordJob) error {
	select {
	case r.queue <- job:
		r.metrics.RecordQueue.Set(float64(len(r.queue)))
		return nil
	default:
	}
	r.metrics.RecordQueueFull.Inc()
	r.log.Warn("record queue full: the decision loop waits for the store", "pool", job.pool, "seq", job.seq, "queued", cap(r.queue))
	select {
	case r.queue <- job:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("record queue full until the tick ended: %w", ctx.Err())
	}
}

// fail logs and counts a record the store did not take; it returns err.
func (r *recordWriter) fail(job recordJob, err error) error {
	if err != nil {
		r.metrics.RecordErrors.Inc()
		r.log.Error("record not stored", "pool", job.pool, "seq", job.seq, "what", job.what, "err", err)
	}
	return err
}

// run writes queued jobs until the queue is closed and drained: every job
// waiting when a commit starts goes in it (up to recordBatch); when the
// shared transaction fails, each job is written alone so one bad record
// does not take the others with it.
func (r *recordWriter) run(queue chan recordJob, done chan struct{}) {
	defer close(done)
	batch := make([]recordJob, 0, recordBatch)
	for job := range queue {
		batch = append(batch[:0], job)
	fill:
		for len(batch) < recordBatch {
			select {
			case j, ok := <-queue:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		r.metrics.RecordQueue.Set(float64(len(queue)))
		r.write(batch)
		clear(batch) // drop the closures until the next batch
	}
}

func (r *recordWriter) write(batch []recordJob) {
	err := errors.New("batch of one")
	if len(batch) > 1 {
		err = r.store.Write("record decisions", func(w *datasets.TxWriter) error {
			for _, j := range batch {
				if err := j.fn(w); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, j := range batch {
		jerr := err
		if err != nil {
			jerr = r.fail(j, r.store.Write(j.what, j.fn))
		}
		if j.result != nil {
			j.result <- jerr
		}
	}
}
