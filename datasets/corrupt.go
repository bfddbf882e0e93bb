package datasets

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrCorrupt is returned (wrapped, with the file and what to do) when a
// store's file is damaged: a truncated file, a page that is not what its
// parent says, a snapshot that does not decode. bbolt panics on such pages;
// every Store call turns that panic into this error, and after the first
// one the Store refuses every call without reading the file again.
var ErrCorrupt = errors.New("store file is damaged")

// panicError carries a panic bbolt raised on a damaged page.
type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("bbolt panicked: %v", p.v) }

// catch runs fn, turning a panic (and a memory fault on the file's mapping,
// which SetPanicOnFault makes a panic rather than a crash) into an error of
// type *panicError. The fault setting is per goroutine and restored after.
func catch(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{r}
		}
	}()
	return fn()
}

// corruptError is the one error a damaged store gives: it names the file,
// what was wrong and the commands that inspect and rescue it.
func corruptError(path string, cause error) error {
	return fmt.Errorf("store %s: %w: %v; run `lbtune dataset check %s` for the details, then, with lbtune stopped, "+
		"`lbtune dataset recover %s NEW.db` to copy every readable snapshot, decision and policy into a new store",
		path, ErrCorrupt, cause, path, path)
}

// guard runs fn (which uses s.db) under catch. A panic marks the store
// failed: this and every later call return the same ErrCorrupt error.
func (s *Store) guard(fn func() error) error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	err := catch(fn)
	var pe *panicError
	if errors.As(err, &pe) {
		ce := corruptError(s.path, pe)
		s.failed.CompareAndSwap(nil, &ce)
		return *s.failed.Load()
	}
	return err
}

// view runs fn in a read transaction under guard.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return s.guard(func() error { return s.db.View(fn) })
}

// Failed returns the ErrCorrupt error that made the store refuse every
// call, or nil while the store is healthy.
func (s *Store) Failed() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// closeWait bounds how long Close waits for bbolt to close a store that
// failed: a panic inside a write transaction may leave bbolt's writer lock
// held, and then its Close never returns.
const closeWait = time.Second

// Close releases the store. Every committed write is already on disk. A
// store that failed (ErrCorrupt) is closed as far as bbolt still can, and
// its file descriptor (and so its file lock) released in any case.
func (s *Store) Close() error {
	if s.failed.Load() == nil {
		if err := catch(s.db.Close); err != nil {
			return fmt.Errorf("close store %s: %w", s.path, err)
		}
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = catch(s.db.Close)
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
	if s.file != nil {
		_ = s.file.Close() // already closed if bbolt's Close returned
	}
	return nil
}
