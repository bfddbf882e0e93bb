package collector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted is a Source that plays a list of steps, then ErrExhausted.
type scripted struct {
	mu    sync.Mutex
	steps []func(ctx context.Context) (Snapshot, error)
}

func (s *scripted) String() string { return "test+script:" }

func (s *scripted) Scrape(ctx context.Context) (Snapshot, error) {
	s.mu.Lock()
	if len(s.steps) == 0 {
		s.mu.Unlock()
		return Snapshot{}, ErrExhausted
	}
	step := s.steps[0]
	s.steps = s.steps[1:]
	s.mu.Unlock()
	return step(ctx)
}

type memAppender struct {
	mu    sync.Mutex
	snaps []Snapshot
	err   error
}

func (m *memAppender) Append(snaps ...Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.snaps = append(m.snaps, snaps...)
	return nil
}

// okStep returns a snapshot at unix second sec; 0 gives one without time.
func okStep(sec int64) func(context.Context) (Snapshot, error) {
	return func(context.Context) (Snapshot, error) {
		s := Snapshot{Source: "test+script:"}
		if sec != 0 {
			s.Time = time.Unix(sec, 0).UTC()
		}
		return s, nil
	}
}

func failStep(context.Context) (Snapshot, error) {
	return Snapshot{}, errors.New("scrape test+script:: connection refused")
}

// stallStep blocks until the per-tick timeout fires.
func stallStep(ctx context.Context) (Snapshot, error) {
	<-ctx.Done()
	return Snapshot{}, ctx.Err()
}

func TestLoop(t *testing.T) {
	tests := []struct {
		name      string
		steps     []func(context.Context) (Snapshot, error)
		failFast  bool
		appendErr error
		wantErr   error
		// want* are the loop's counters after Run returns.
		wantScrapes, wantErrors, wantAppended uint64
	}{
		{
			name:  "all good, replay exhausted",
			steps: []func(context.Context) (Snapshot, error){okStep(1), okStep(2), okStep(3)},
			// 3 good scrapes + the one that reports ErrExhausted.
			wantScrapes: 4, wantAppended: 3,
		},
		{
			name:        "a failure mid-way is counted, never appended, and the loop goes on",
			steps:       []func(context.Context) (Snapshot, error){okStep(1), failStep, okStep(3)},
			wantScrapes: 4, wantErrors: 1, wantAppended: 2,
		},
		{
			name:        "a stalled scrape ends at the tick timeout",
			steps:       []func(context.Context) (Snapshot, error){okStep(1), stallStep, okStep(3)},
			wantScrapes: 4, wantErrors: 1, wantAppended: 2,
		},
		{
			name:        "an invalid snapshot (no time) is not appended",
			steps:       []func(context.Context) (Snapshot, error){okStep(1), okStep(0), okStep(3)},
			wantScrapes: 4, wantErrors: 1, wantAppended: 2,
		},
		{
			name:     "fail fast on the first scrape",
			steps:    []func(context.Context) (Snapshot, error){failStep, okStep(2)},
			failFast: true, wantErr: ErrFirstScrape,
			wantScrapes: 1, wantErrors: 1,
		},
		{
			name:        "without fail fast a bad first scrape is only counted",
			steps:       []func(context.Context) (Snapshot, error){failStep, okStep(2)},
			wantScrapes: 3, wantErrors: 1, wantAppended: 1,
		},
		{
			name:        "append errors are counted",
			steps:       []func(context.Context) (Snapshot, error){okStep(1), okStep(2)},
			appendErr:   errors.New("disk full"),
			wantScrapes: 3, wantErrors: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := &memAppender{err: tc.appendErr}
			l := &Loop{
				Source:   &scripted{steps: tc.steps},
				Interval: 5 * time.Millisecond,
				Timeout:  50 * time.Millisecond,
				Appender: app,
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
				FailFast: tc.failFast,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := l.Run(ctx)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			st := l.Stats()
			if st.Scrapes != tc.wantScrapes || st.Errors != tc.wantErrors || st.Appended != tc.wantAppended {
				t.Errorf("stats %+v, want scrapes %d errors %d appended %d", st, tc.wantScrapes, tc.wantErrors, tc.wantAppended)
			}
			if uint64(len(app.snaps)) != tc.wantAppended {
				t.Errorf("appender holds %d snapshots, want %d", len(app.snaps), tc.wantAppended)
			}
			if (st.LastError != nil) != (tc.wantErrors > 0) {
				t.Errorf("LastError = %v with %d errors", st.LastError, st.Errors)
			}
		})
	}
}

// TestLoopStopsOnCancel: Run returns nil promptly when ctx is cancelled,
// even in the middle of a stalled scrape.
func TestLoopStopsOnCancel(t *testing.T) {
	steps := make([]func(context.Context) (Snapshot, error), 0, 1000)
	steps = append(steps, okStep(1), stallStep)
	l := &Loop{Source: &scripted{steps: steps}, Interval: time.Millisecond, Timeout: time.Hour, Appender: &memAppender{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil on cancel", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := l.Stats(); st.Errors != 0 || st.Appended != 1 {
		t.Errorf("stats %+v: a scrape cut short by shutdown is not an error", st)
	}
}

func TestLoopNextWait(t *testing.T) {
	const iv = time.Second
	l := &Loop{Source: &scripted{}, Interval: iv}
	phase := l.phase()
	tests := []struct {
		name string
		now  time.Duration // offset within the second
	}{
		{"just before the slot", phase - time.Millisecond},
		{"at the slot", phase},
		{"just after the slot", phase + time.Millisecond},
		{"half an interval away", phase + iv/2},
		{"far from the slot", phase + iv/3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1795856400, 0).Add(tc.now)
			l.Now = func() time.Time { return now }
			w := l.nextWait()
			if w < iv/2 || w > iv+iv/2 {
				t.Errorf("wait %v outside [%v, %v]", w, iv/2, iv+iv/2)
			}
			// The scrape lands on the source's phase.
			if got := time.Duration(now.Add(w).UnixNano() % int64(iv)); got != phase {
				t.Errorf("next scrape at offset %v, want phase %v", got, phase)
			}
		})
	}
}

// TestLoopLogsADeadSourceOnce: a source failing the same way on every tick
// (a dead balancer) is logged once, not once per tick; its recovery is
// logged; every failure is still counted.
func TestLoopLogsADeadSourceOnce(t *testing.T) {
	var steps []func(context.Context) (Snapshot, error)
	for range 40 {
		steps = append(steps, failStep)
	}
	steps = append(steps, okStep(1))
	var buf bytes.Buffer
	l := &Loop{Source: &scripted{steps: steps}, Interval: time.Millisecond, Appender: &memAppender{},
		Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "scrape failed"); n != 1 {
		t.Errorf("%d 'scrape failed' lines for 40 identical failures, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "scrape recovered") {
		t.Errorf("no recovery line:\n%s", buf.String())
	}
	if st := l.Stats(); st.Errors != 40 {
		t.Errorf("Errors = %d, want 40", st.Errors)
	}
}
