package collector

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"
)

// Appender stores scraped snapshots; the datasets store implements it.
type Appender interface {
	Append(snaps ...Snapshot) error
}

// Loop scrapes one Source every Interval and hands each good snapshot to the
// Appender, in the manner of a Prometheus scrape loop: every tick runs under
// its own timeout, a failed scrape is counted and logged but never
// appended, and the loop carries on.
type Loop struct {
	// Source is scraped once per tick.
	Source Source
	// Interval between scrapes; 0 scrapes back to back (replaying captures).
	Interval time.Duration
	// Timeout bounds one scrape; 0 means Interval, or 10 s when Interval is 0.
	Timeout time.Duration
	// Appender receives every good snapshot.
	Appender Appender
	// Logger receives scrape failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// FailFast ends Run with an error wrapping ErrFirstScrape when the very
	// first scrape fails (lbtune record: a source that is bad from the start
	// is a usage error). Otherwise every failure is only counted and logged.
	FailFast bool

	mu    sync.Mutex
	stats LoopStats
}

// LoopStats are the loop's counters, for a daemon's metrics and status.
type LoopStats struct {
	// Scrapes counts scrape attempts; Errors the failed ones (scrape or
	// append); Appended the snapshots stored.
	Scrapes, Errors, Appended uint64
	// LastError is the most recent failure, nil if none yet.
	LastError error
	// LastErrorTime is when LastError happened.
	LastErrorTime time.Time
	// LastSnapshot is the time of the last stored snapshot.
	LastSnapshot time.Time
}

// Stats returns a copy of the loop's counters; safe to call while Run runs.
func (l *Loop) Stats() LoopStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// ErrFirstScrape wraps the failure of the first scrape when Loop.FailFast
// is set: a source that is bad from the start is a configuration error, not
// a bad tick.
var ErrFirstScrape = errors.New("first scrape failed")

// Run scrapes until ctx is done (returning nil), the source is exhausted
// (ErrExhausted from a replay: returns nil), or, with FailFast, the first
// scrape fails (returns an error wrapping ErrFirstScrape). Other failures
// are counted and logged and the loop continues. The first tick fires at once; later
// ones are offset by a per-source phase so many loops do not fire in
// lockstep.
func (l *Loop) Run(ctx context.Context) error {
	if l.Source == nil || l.Appender == nil {
		panic("collector: Loop needs a Source and an Appender")
	}
	if l.Interval < 0 || l.Timeout < 0 {
		return fmt.Errorf("loop %s: negative interval or timeout", l.Source)
	}
	first := true
	var timer *time.Timer
	// A source that keeps failing the same way is logged once, then once a
	// minute with the count of failures since: a dead balancer must not
	// flood the log (every failure is still counted in Stats).
	var lastMsg string
	var lastLog time.Time
	var since int
	for {
		done, err := l.tick(ctx)
		if done {
			return nil
		}
		if err != nil && first && l.FailFast {
			return fmt.Errorf("%w: %w", ErrFirstScrape, err)
		}
		switch {
		case err == nil:
			if lastMsg != "" && l.Logger != nil {
				l.Logger.Info("scrape recovered", "source", l.Source.String(), "failures", since)
			}
			lastMsg, since = "", 0
		case l.Logger == nil:
		case err.Error() != lastMsg || l.now().Sub(lastLog) >= time.Minute:
			l.Logger.Warn("scrape failed", "source", l.Source.String(), "err", err, "failures_since_last_log", since)
			lastMsg, lastLog, since = err.Error(), l.now(), 0
		default:
			since++
		}
		first = false
		if l.Interval == 0 {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		wait := l.nextWait()
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// tick scrapes once and appends the snapshot. done is true when the loop
// must end (ctx cancelled or the replay exhausted).
func (l *Loop) tick(ctx context.Context) (done bool, err error) {
	if ctx.Err() != nil {
		return true, nil
	}
	timeout := l.Timeout
	if timeout == 0 {
		timeout = l.Interval
	}
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	snap, err := l.Source.Scrape(tctx)
	cancel()
	l.mu.Lock()
	l.stats.Scrapes++
	l.mu.Unlock()
	if errors.Is(err, ErrExhausted) {
		return true, nil
	}
	if err != nil && ctx.Err() != nil {
		return true, nil // shutting down: the scrape was cut short, not a failure
	}
	if err == nil {
		if err = snap.Validate(); err != nil {
			err = fmt.Errorf("scrape %s: %w", l.Source, err)
		}
	}
	if err == nil {
		if err = l.Appender.Append(snap); err != nil {
			err = fmt.Errorf("append snapshot from %s: %w", l.Source, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.stats.Errors++
		l.stats.LastError = err
		l.stats.LastErrorTime = l.now()
		return false, err
	}
	l.stats.Appended++
	l.stats.LastSnapshot = snap.Time
	return false, nil
}

func (l *Loop) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// nextWait is the time to the next scrape slot: slots are Interval apart at
// a per-source phase, and a slot closer than Interval/2 is skipped so that
// the first interval (after the immediate first scrape) is not a sliver.
func (l *Loop) nextWait() time.Duration {
	wait := l.phase() - time.Duration(l.now().UnixNano()%int64(l.Interval))
	for wait < l.Interval/2 {
		wait += l.Interval
	}
	for wait > l.Interval+l.Interval/2 {
		wait -= l.Interval
	}
	return wait
}

// phase is a stable per-source offset within the interval.
func (l *Loop) phase() time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(l.Source.String()))
	return time.Duration(h.Sum64() % uint64(l.Interval))
}
