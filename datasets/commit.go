package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// groupCommit coalesces the write transactions of concurrent callers into
// one bbolt commit (one fsync): the first caller to find no commit in
// progress becomes the leader and commits every function queued by then,
// in its own goroutine (so the store's panic guard covers it); the others
// wait for the commit that carries theirs. A daemon tuning many pools
// writes a snapshot per source per second and several records per
// decision: one fsync each would serialise them on the disk.
//
// Each function runs inside the shared transaction. If one returns an
// error, that transaction is rolled back, the function gets its error and
// the others run again in a new one, so a function may run more than once
// but its effects are committed at most once (every function given to
// update keeps its effects inside the transaction).
type groupCommit struct {
	mu      sync.Mutex
	queue   []*commitOp
	leading bool
}

type commitOp struct {
	fn   func(tx *bolt.Tx) error
	err  error
	done chan struct{}
}

// maxGroup bounds how many functions share one transaction.
const maxGroup = 256

// errOpFailed marks a rollback caused by one function of the group.
var errOpFailed = errors.New("one function of the group failed")

// run commits fn, alone or with the functions queued alongside it, through
// commit (the guarded db.Update), and returns fn's outcome.
func (g *groupCommit) run(fn func(tx *bolt.Tx) error, commit func(func(tx *bolt.Tx) error) error) error {
	op := &commitOp{fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, op)
	if g.leading {
		g.mu.Unlock()
		<-op.done
		return op.err
	}
	g.leading = true
	for len(g.queue) > 0 {
		n := min(len(g.queue), maxGroup)
		batch := g.queue[:n:n]
		g.queue = append([]*commitOp(nil), g.queue[n:]...)
		g.mu.Unlock()
		g.commit(batch, commit)
		g.mu.Lock()
	}
	g.leading = false
	g.mu.Unlock()
	<-op.done
	return op.err
}

// commit runs batch in one transaction, dropping a failing function and
// retrying the rest, and releases every waiter.
func (g *groupCommit) commit(batch []*commitOp, commit func(func(tx *bolt.Tx) error) error) {
	for len(batch) > 0 {
		failed := -1
		err := commit(func(tx *bolt.Tx) error {
			for i, op := range batch {
				if err := op.fn(tx); err != nil {
					failed, op.err = i, err
					return errOpFailed
				}
			}
			return nil
		})
		if failed >= 0 && errors.Is(err, errOpFailed) {
			close(batch[failed].done)
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		for _, op := range batch {
			op.err = err // nil on success; the commit's or the guard's error otherwise
			close(op.done)
		}
		return
	}
}

// TxWriter puts several values and records in one transaction (Store.Write).
type TxWriter struct {
	tx *bolt.Tx
}

// Put stores value under key in bucket b, as Store.Put.
func (w *TxWriter) Put(b Bucket, key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("put into %s: empty key", b)
	}
	bk, err := userBucket(w.tx, b)
	if err != nil {
		return err
	}
	return bk.Put([]byte(key), value)
}

// AppendRecord stores value in bucket b under time t, as Store.AppendRecord.
func (w *TxWriter) AppendRecord(b Bucket, t time.Time, value []byte) error {
	if t.IsZero() || !representable(t) {
		return fmt.Errorf("append record to %s: time %s out of range", b, t)
	}
	bk, err := userBucket(w.tx, b)
	if err != nil {
		return err
	}
	bk.FillPercent = appendFill
	seq, err := bk.NextSequence()
	if err != nil {
		return err
	}
	return bk.Put(binary.BigEndian.AppendUint64(timeKey(make([]byte, 0, 16), t), seq), value)
}

// Write runs fn with a TxWriter in one read-write transaction: everything fn
// puts is committed together (one commit, shared with concurrent writers)
// or not at all. what names the write in errors.
func (s *Store) Write(what string, fn func(w *TxWriter) error) error {
	return s.update(what, func(tx *bolt.Tx) error { return fn(&TxWriter{tx: tx}) })
}
