package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/lbtune/lbtune/collector"
)

// SchemaVersion is the store layout this package writes and reads.
const SchemaVersion = 1

// ErrSchema is returned by Open and OpenReadOnly for a file that is a bbolt
// database but not an lbtune store of a known schema version.
var ErrSchema = errors.New("not an lbtune store of a known schema version")

// ErrLocked is returned by Open and OpenReadOnly when another process holds
// the store open for writing (for example a running "lbtune record") and the
// file lock could not be taken within the open timeout.
var ErrLocked = errors.New("store is locked by another process")

// ErrNotFound is returned by Get for a key that is not in the bucket.
var ErrNotFound = errors.New("key not found")

// ErrReadOnly is returned by writes to a store opened with OpenReadOnly.
var ErrReadOnly = errors.New("store is open read-only")

// ErrBucket is returned for a Bucket that is not one of the declared ones.
var ErrBucket = errors.New("unknown bucket")

// Bucket names a keyed area of the store for the later stages of the flow.
// Snapshots have their own internal bucket and are reached through Append
// and Range, not through a Bucket.
type Bucket string

// Buckets reserved for later stages. Put/Get/Keys suit named values (a
// model, a policy version); AppendRecord/RangeRecords suit time series
// (decisions, rewards, events).
const (
	BucketModels    Bucket = "models"    // trained models, by name/version
	BucketPolicies  Bucket = "policies"  // persisted policies, by name/version
	BucketDecisions Bucket = "decisions" // agent decisions, time-keyed
	BucketRewards   Bucket = "rewards"   // rewards observed, time-keyed
	BucketEvents    Bucket = "events"    // scripted actions (weight changes, restarts), time-keyed
	BucketMeta      Bucket = "meta"      // free-form metadata (description, recorder settings)
)

// userBuckets are the buckets Put/Get/Keys/AppendRecord/RangeRecords accept.
var userBuckets = []Bucket{BucketModels, BucketPolicies, BucketDecisions, BucketRewards, BucketEvents, BucketMeta}

// Internal bucket and key names.
var (
	schemaBucket    = []byte("lbtune") // holds schemaKey
	schemaKey       = []byte("schema_version")
	snapshotsBucket = []byte("snapshots") // key: time(8) || source, value: JSON snapshot
	sourcesBucket   = []byte("sources")   // key: source, value: uint64 snapshot count
)

// DefaultLockTimeout is how long Open and OpenReadOnly wait for the file lock
// before returning ErrLocked.
const DefaultLockTimeout = 2 * time.Second

// rangeChunk is how many entries Range and RangeRecords decode per read
// transaction; the callback runs outside any transaction.
const rangeChunk = 256

// Store is an lbtune bbolt store: snapshots keyed by time and source, plus
// the reserved buckets. A Store is safe for concurrent use by the goroutines
// of one process; bbolt's file lock allows one writing process at a time.
type Store struct {
	db       *bolt.DB
	path     string
	readOnly bool
	// file is the descriptor bbolt opened (Options.OpenFile), kept so a
	// store bbolt can no longer close still releases its file lock.
	file *os.File
	// failed holds the first ErrCorrupt error a transaction hit; once set,
	// every call returns it without touching bbolt again (corrupt.go).
	failed atomic.Pointer[error]
	// group coalesces concurrent writes into one commit (commit.go).
	group groupCommit
}

// Options tune how a store is opened. The zero value is what Open uses.
type Options struct {
	// ReadOnly opens an existing store for reading only.
	ReadOnly bool
	// LockTimeout is how long to wait for the file lock; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// NoSync skips fsync on commit. A process crash (even kill -9) still
	// loses nothing committed, because the data is in the page cache; a
	// power loss or kernel crash may lose or corrupt recent commits. Use it
	// only for files that can be rebuilt (benchmarks, imports into a
	// scratch store), never for a recorder's store.
	NoSync bool
	// Logger receives the warning about an empty file being initialised;
	// nil means slog.Default().
	Logger *slog.Logger
}

// Open opens the store at path for reading and writing, creating it (and
// recording SchemaVersion) if missing. It returns ErrSchema for a bbolt file
// of another layout and ErrLocked if another process has it open.
func Open(path string) (*Store, error) {
	return OpenWith(path, Options{})
}

// OpenReadOnly opens an existing store for reading. Several readers may share
// a file, but bbolt's file lock excludes a writer: while a recorder holds the
// store open this returns ErrLocked after DefaultLockTimeout.
func OpenReadOnly(path string) (*Store, error) {
	return OpenWith(path, Options{ReadOnly: true})
}

// OpenWith opens the store at path with explicit options.
//
// Before bbolt maps the file, a quick check (checkHead: meta pages, file
// length, freelist) refuses a truncated or damaged file with ErrCorrupt
// instead of letting bbolt panic on it; bbolt's own panics while opening
// give ErrCorrupt too. An existing empty (0-byte) file is initialised as a
// new store and a warning logged, since that is usually a store emptied by
// accident. Run Check (or CheckPath) for the full consistency check.
func OpenWith(path string, o Options) (*Store, error) {
	mode := "open store"
	if o.ReadOnly {
		mode = "open store read-only"
	}
	info, err := os.Stat(path)
	if err != nil && (o.ReadOnly || !errors.Is(err, os.ErrNotExist)) {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	locked := func() error {
		return fmt.Errorf("%s %s: %w after %s (is a recorder running? stop it or wait)", mode, path, ErrLocked, o.LockTimeout)
	}
	if info != nil && info.Mode().IsRegular() {
		switch {
		case info.Size() == 0 && o.ReadOnly:
			return nil, fmt.Errorf("%s %s: the file is empty (0 bytes): %w", mode, path, ErrSchema)
		case info.Size() == 0:
			log := o.Logger
			if log == nil {
				log = slog.Default()
			}
			log.Warn("store file is empty (0 bytes): initialising a new store in it; if it held data, that data is gone", "path", path)
		default:
			if err := checkHeadPath(path, o.LockTimeout); errors.Is(err, ErrLocked) {
				return nil, locked()
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", mode, err)
			}
		}
	}
	var file *os.File
	bo := &bolt.Options{Timeout: o.LockTimeout, ReadOnly: o.ReadOnly, NoSync: o.NoSync,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		}}
	var db *bolt.DB
	err = catch(func() error {
		var err error
		db, err = bolt.Open(path, 0o644, bo)
		return err
	})
	var pe *panicError
	if errors.As(err, &pe) {
		if file != nil {
			_ = file.Close() // bbolt did not return the DB: release its lock
		}
		return nil, fmt.Errorf("%s: %w", mode, corruptError(path, pe))
	}
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, locked()
		}
		return nil, fmt.Errorf("%s %s: %w", mode, path, err)
	}
	s := &Store{db: db, path: path, readOnly: o.ReadOnly, file: file}
	if o.ReadOnly {
		err = s.view(checkSchema)
	} else {
		err = s.guard(func() error { return db.Update(initSchema) })
	}
	if err != nil {
		_ = s.Close()
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		return nil, fmt.Errorf("%s %s: %w", mode, path, err)
	}
	return s, nil
}

// initSchema records the schema version in a new store, creates the
// buckets, and verifies the version of an existing one.
func initSchema(tx *bolt.Tx) error {
	if tx.Bucket(schemaBucket) == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return fmt.Errorf("bbolt file has buckets but no schema version: %w", ErrSchema)
		}
		b, err := tx.CreateBucket(schemaBucket)
		if err != nil {
			return fmt.Errorf("create schema bucket: %w", err)
		}
		if err := b.Put(schemaKey, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return fmt.Errorf("record schema version: %w", err)
		}
	} else if err := checkSchema(tx); err != nil {
		return err
	}
	names := [][]byte{snapshotsBucket, sourcesBucket}
	for _, b := range userBuckets {
		names = append(names, []byte(b))
	}
	for _, n := range names {
		if _, err := tx.CreateBucketIfNotExists(n); err != nil {
			return fmt.Errorf("create bucket %s: %w", n, err)
		}
	}
	return nil
}

// checkSchema verifies the recorded schema version.
func checkSchema(tx *bolt.Tx) error {
	b := tx.Bucket(schemaBucket)
	if b == nil {
		return fmt.Errorf("no schema version recorded: %w", ErrSchema)
	}
	v := b.Get(schemaKey)
	if string(v) != strconv.Itoa(SchemaVersion) {
		return fmt.Errorf("schema version %q, this lbtune reads %d: %w", v, SchemaVersion, ErrSchema)
	}
	return nil
}

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// update runs fn in a read-write transaction, refusing read-only stores.
func (s *Store) update(what string, fn func(tx *bolt.Tx) error) error {
	if s.readOnly {
		return fmt.Errorf("%s in %s: %w", what, s.path, ErrReadOnly)
	}
	err := s.group.run(fn, func(all func(tx *bolt.Tx) error) error {
		return s.guard(func() error { return s.db.Update(all) })
	})
	if err != nil {
		return fmt.Errorf("%s in %s: %w", what, s.path, err)
	}
	return nil
}

// appendFill is how full bbolt fills the pages of the time-keyed buckets
// (snapshots, records) when it splits them: their keys arrive almost in
// order, so the default half-full split left ~30% of every leaf page
// empty; nearly full pages take ~25% less file for the same data. A key
// that lands in the middle of a full page still splits it.
const appendFill = 0.9

// timeKey encodes t as 8 big-endian bytes that sort in time order (the sign
// bit of the Unix nanosecond count is flipped so times before 1970 sort
// first). Times outside 1678..2262 are not representable; Append rejects them.
func timeKey(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t.UnixNano())^(1<<63))
}

// keyTime decodes the first 8 bytes of k written by timeKey.
func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k)^(1<<63))).UTC()
}

// representable reports whether t survives a round trip through UnixNano.
func representable(t time.Time) bool {
	return time.Unix(0, t.UnixNano()).Equal(t)
}

// Append stores snaps in one transaction, after validating each
// (collector.Snapshot.Validate). Snapshots are keyed by time and source: a
// snapshot with the same time and source as a stored one replaces it, so
// importing a file twice stores it once. On any error nothing of the batch is
// stored and everything committed before stays.
func (s *Store) Append(snaps ...collector.Snapshot) error {
	if len(snaps) == 0 {
		return nil
	}
	keys := make([][]byte, len(snaps))
	vals := make([][]byte, len(snaps))
	for i := range snaps {
		sn := &snaps[i]
		if err := sn.Validate(); err != nil {
			return fmt.Errorf("append snapshot %d of %d: %w", i+1, len(snaps), err)
		}
		if !representable(sn.Time) {
			return fmt.Errorf("append snapshot %d of %d: time %s out of range", i+1, len(snaps), sn.Time)
		}
		keys[i] = append(timeKey(make([]byte, 0, 8+len(sn.Source)), sn.Time), sn.Source...)
		vals[i] = encodeSnapshot(make([]byte, 0, encodedSizeHint(sn)), sn)
	}
	return s.update("append snapshots", func(tx *bolt.Tx) error {
		b := tx.Bucket(snapshotsBucket)
		b.FillPercent = appendFill
		src := tx.Bucket(sourcesBucket)
		added := map[string]uint64{}
		for i := range keys {
			if b.Get(keys[i]) == nil {
				added[snaps[i].Source]++
			}
			if err := b.Put(keys[i], vals[i]); err != nil {
				return fmt.Errorf("put snapshot %s at %s: %w", snaps[i].Source, snaps[i].Time.Format(time.RFC3339Nano), err)
			}
		}
		for name, n := range added {
			if err := addCount(src, name, int64(n)); err != nil {
				return err
			}
		}
		return nil
	})
}

// addCount adds d to the snapshot count of source in the sources bucket,
// deleting the entry when it reaches zero.
func addCount(b *bolt.Bucket, source string, d int64) error {
	var n uint64
	if v := b.Get([]byte(source)); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n = uint64(int64(n) + d)
	if int64(n) <= 0 {
		return b.Delete([]byte(source))
	}
	return b.Put([]byte(source), binary.BigEndian.AppendUint64(nil, n))
}

// Range calls fn for every stored snapshot of source ("" for all sources)
// with from <= Time < to, in time order (ties by source). A zero from or to
// leaves that end unbounded. fn runs outside any transaction, so it may use
// the store; an error from fn stops the range and is returned unwrapped.
// Range reads in chunks of rangeChunk snapshots, each from a consistent
// view: a snapshot appended while a Range runs may or may not be seen.
func (s *Store) Range(source string, from, to time.Time, fn func(collector.Snapshot) error) error {
	var batch []collector.Snapshot
	intern := map[string]string{}
	return s.scan(snapshotsBucket, from, to, func(k, v []byte) (bool, error) {
		if source != "" && string(k[8:]) != source {
			return false, nil
		}
		sn, err := decodeSnapshotInterned(v, intern)
		if err != nil {
			return false, corruptError(s.path, fmt.Errorf("decode snapshot %s at %s: %w", k[8:], keyTime(k).Format(time.RFC3339Nano), err))
		}
		batch = append(batch, sn)
		return true, nil
	}, func() error {
		for _, sn := range batch {
			if err := fn(sn); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	})
}

// scan walks bucket name over [from, to) in chunks: take is called inside a
// read transaction for each entry (true if it kept one), flush outside it
// after each chunk of rangeChunk kept entries and at the end.
func (s *Store) scan(name []byte, from, to time.Time, take func(k, v []byte) (bool, error), flush func() error) error {
	var seek []byte
	if !from.IsZero() {
		seek = timeKey(nil, from)
	}
	var end []byte
	if !to.IsZero() {
		end = timeKey(nil, to)
	}
	for {
		var next []byte
		err := s.view(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				if declared(name) {
					return nil // a read-only store made before the bucket existed
				}
				return fmt.Errorf("bucket %s: %w", name, ErrBucket)
			}
			c := b.Cursor()
			var k, v []byte
			if seek == nil {
				k, v = c.First()
			} else {
				k, v = c.Seek(seek)
			}
			kept := 0
			for ; k != nil; k, v = c.Next() {
				if len(k) < 8 {
					continue // not a time key (written with Put)
				}
				if end != nil && bytes.Compare(k[:8], end) >= 0 {
					return nil
				}
				if kept == rangeChunk {
					next = bytes.Clone(k)
					return nil
				}
				ok, err := take(k, v)
				if err != nil {
					return err
				}
				if ok {
					kept++
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("range %s in %s: %w", name, s.path, err)
		}
		if err := flush(); err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		seek = next
	}
}

// Sources lists the sources that have stored snapshots, sorted.
func (s *Store) Sources() ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(sourcesBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list sources in %s: %w", s.path, err)
	}
	sort.Strings(out)
	return out, nil
}

// Count returns the number of stored snapshots per source.
func (s *Store) Count() (map[string]int, error) {
	out := map[string]int{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(sourcesBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[string(k)] = int(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("count snapshots in %s: %w", s.path, err)
	}
	return out, nil
}

// BucketSizes returns the number of keys in each reserved bucket that has
// any (models, policies, decisions, rewards, events, meta).
func (s *Store) BucketSizes() (map[Bucket]int, error) {
	out := map[Bucket]int{}
	err := s.view(func(tx *bolt.Tx) error {
		for _, b := range userBuckets {
			if bk := tx.Bucket([]byte(b)); bk != nil {
				if n := bk.Stats().KeyN; n > 0 {
					out[b] = n
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count records in %s: %w", s.path, err)
	}
	return out, nil
}

// pruneChunk bounds the number of keys deleted per write transaction.
const pruneChunk = 10000

// Prune deletes every snapshot older than before and returns how many it
// deleted. It works in transactions of at most pruneChunk deletions, so an
// interrupted prune leaves a consistent store with fewer old snapshots.
func (s *Store) Prune(before time.Time) (int, error) {
	return s.prune(snapshotsBucket, before, func(tx *bolt.Tx, keys [][]byte) error {
		removed := map[string]int64{}
		for _, k := range keys {
			removed[string(k[8:])]--
		}
		for name, d := range removed {
			if err := addCount(tx.Bucket(sourcesBucket), name, d); err != nil {
				return err
			}
		}
		return nil
	})
}

// PruneRecords deletes the records of bucket b (written by AppendRecord)
// older than before and returns how many it deleted.
func (s *Store) PruneRecords(b Bucket, before time.Time) (int, error) {
	return s.prune([]byte(b), before, nil)
}

// prune deletes time-keyed entries of bucket name older than before in
// chunks; deleted, if set, runs in each chunk's transaction with its keys.
func (s *Store) prune(name []byte, before time.Time, deleted func(tx *bolt.Tx, keys [][]byte) error) (int, error) {
	end := timeKey(nil, before)
	total := 0
	for {
		n := 0
		err := s.update("prune "+string(name), func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				return fmt.Errorf("bucket %s: %w", name, ErrBucket)
			}
			// Collect first: deleting under a moving cursor skips keys.
			var keys [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < pruneChunk; k, _ = c.Next() {
				if len(k) < 8 {
					continue // not a time key
				}
				if bytes.Compare(k[:8], end) >= 0 {
					break
				}
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			if deleted != nil {
				if err := deleted(tx, keys); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		total += n
		if err != nil || n < pruneChunk {
			return total, err
		}
	}
}

// userBucket returns the named user bucket or ErrBucket.
func userBucket(tx *bolt.Tx, b Bucket) (*bolt.Bucket, error) {
	bk := tx.Bucket([]byte(b))
	if bk == nil {
		return nil, fmt.Errorf("bucket %q: %w", b, ErrBucket)
	}
	return bk, nil
}

// readBucket is userBucket for reads: a declared bucket missing from a
// read-only store made before it existed reads as empty (nil, nil).
func readBucket(tx *bolt.Tx, b Bucket) (*bolt.Bucket, error) {
	if bk := tx.Bucket([]byte(b)); bk != nil || !declared([]byte(b)) {
		return userBucket(tx, b)
	}
	return nil, nil
}

// declared reports whether name is one of the buckets initSchema creates.
func declared(name []byte) bool {
	if bytes.Equal(name, snapshotsBucket) || bytes.Equal(name, sourcesBucket) {
		return true
	}
	for _, b := range userBuckets {
		if string(b) == string(name) {
			return true
		}
	}
	return false
}

// Put stores value under key in bucket b, replacing any previous value.
func (s *Store) Put(b Bucket, key string, value []byte) error {
	return s.Write("put "+string(b)+"/"+key, func(w *TxWriter) error { return w.Put(b, key, value) })
}

// Get returns a copy of the value under key in bucket b, or ErrNotFound.
func (s *Store) Get(b Bucket, key string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		bk, err := readBucket(tx, b)
		if err != nil {
			return err
		}
		if bk == nil {
			return ErrNotFound
		}
		v := bk.Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get %s/%s from %s: %w", b, key, s.path, err)
	}
	return out, nil
}

// Delete removes key from bucket b; deleting a missing key is not an error.
func (s *Store) Delete(b Bucket, key string) error {
	return s.update("delete "+string(b)+"/"+key, func(tx *bolt.Tx) error {
		bk, err := userBucket(tx, b)
		if err != nil {
			return err
		}
		return bk.Delete([]byte(key))
	})
}

// Keys lists the keys of bucket b in byte order. For time-keyed buckets
// written by AppendRecord use RangeRecords instead.
func (s *Store) Keys(b Bucket) ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		bk, err := readBucket(tx, b)
		if err != nil || bk == nil {
			return err
		}
		return bk.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list keys of %s in %s: %w", b, s.path, err)
	}
	return out, nil
}

// AppendRecord stores value in bucket b under time t. The key is t (8
// bytes, time-ordered) followed by the bucket's sequence number, so records
// at the same nanosecond never collide and keep their insertion order.
func (s *Store) AppendRecord(b Bucket, t time.Time, value []byte) error {
	return s.Write("append record to "+string(b), func(w *TxWriter) error { return w.AppendRecord(b, t, value) })
}

// RangeRecords calls fn for every record of bucket b written by AppendRecord
// with from <= t < to, in time order (zero from/to unbounded). value is a
// copy fn may keep; fn runs outside any transaction and an error from it
// stops the range and is returned unwrapped. Keys of another shape (written
// with Put) are skipped.
func (s *Store) RangeRecords(b Bucket, from, to time.Time, fn func(t time.Time, value []byte) error) error {
	type record struct {
		t time.Time
		v []byte
	}
	var batch []record
	return s.scan([]byte(b), from, to, func(k, v []byte) (bool, error) {
		if len(k) != 16 {
			return false, nil
		}
		batch = append(batch, record{keyTime(k), bytes.Clone(v)})
		return true, nil
	}, func() error {
		for _, r := range batch {
			if err := fn(r.t, r.v); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	})
}
