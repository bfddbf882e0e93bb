package datasets

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/lbtune/lbtune/collector"
)

// RecoverReport counts what Recover copied and what it could not.
type RecoverReport struct {
	// Copied counts the entries written to the new store, by bucket
	// ("snapshots", "decisions", "policies", ...).
	Copied map[string]int
	// Lost counts the entries found but not copied, by bucket: a snapshot
	// that does not decode, does not match its key or is not valid; an
	// element that points outside its page or breaks the key order.
	Lost map[string]int
	// LostPages counts the pages that could not be read at all (damaged,
	// or past the end of a truncated file): what they held is lost, and
	// how many entries that was is not known.
	LostPages int
	// LostPagesIn counts LostPages by the bucket they were in ("root":
	// the top level, above every bucket).
	LostPagesIn map[string]int
	// SnapshotsStored is how many snapshots the old store's per-source
	// counts say it held, -1 when those counts could not be read; when
	// known, Lost["snapshots"] is SnapshotsStored minus those copied
	// (including the ones on unreadable pages).
	SnapshotsStored int
	// Salvaged counts the snapshots (included in Copied) found on pages
	// no longer reachable from the root, after a page above them was lost.
	Salvaged int
	// Skipped counts the entries of buckets lbtune does not use, not copied.
	Skipped int
	// Problems lists the first problems met; ProblemCount counts them all.
	Problems     []string
	ProblemCount int
}

// recoverBatch is how many entries Recover writes per transaction.
const recoverBatch = 1000

// Recover copies every readable snapshot, decision, reward, event, model,
// policy and meta record of the store file at oldPath into a new store at
// newPath, which must not exist. It reads oldPath without bbolt, page by
// page (the reader of check.go), skipping what it cannot read, and never
// writes to it (it opens it read-only and takes a shared lock, so a
// running writer makes it fail with ErrLocked). Snapshots are re-checked
// (decode, key, Validate) and re-appended, so the new store's per-source
// counts are right; other records keep their keys and their bucket's
// sequence. The error is nil when the copy completed, however much was lost.
func Recover(oldPath, newPath string) (RecoverReport, error) {
	rep := RecoverReport{Copied: map[string]int{}, Lost: map[string]int{}, SnapshotsStored: -1}
	if _, err := os.Lstat(newPath); err == nil {
		return rep, fmt.Errorf("recover into %s: the file exists; give a new file name", newPath)
	}
	if a, b := filepath.Clean(oldPath), filepath.Clean(newPath); a == b {
		return rep, fmt.Errorf("recover %s: the new store must be another file", oldPath)
	}
	f, err := openLocked(oldPath, DefaultLockTimeout)
	if err != nil {
		return rep, fmt.Errorf("recover %s: %w", oldPath, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return rep, fmt.Errorf("recover %s: %w", oldPath, err)
	}
	raw, err := openRaw(f, st.Size(), 0, true)
	if err != nil {
		return rep, fmt.Errorf("recover %s: nothing readable: %w", oldPath, corruptError(oldPath, err))
	}
	dst, err := OpenWith(newPath, Options{NoSync: true})
	if err != nil {
		return rep, fmt.Errorf("recover into %s: %w", newPath, err)
	}

	c := &copier{dst: dst, rep: &rep, seqs: map[Bucket]uint64{}, puts: map[Bucket][][2][]byte{}}
	sourcesSeen := false
	w := &walker{f: raw, reached: make([]bool, raw.pages), entry: c.entry, seq: func(path []string, seq uint64) {
		sourcesSeen = sourcesSeen || (len(path) == 1 && path[0] == string(sourcesBucket))
		c.seq(path, seq)
	}}
	w.reached[0], w.reached[1] = true, true
	if raw.meta.root < 2 || raw.meta.root >= raw.meta.hwm {
		w.problem("meta page says the root page is %d, outside the file's pages", raw.meta.root)
		w.losePage(nil)
	} else {
		w.bucket(nil, raw.meta.root, raw.meta.seq, nil)
	}
	// The counts are whole if the sources bucket was found and nothing
	// under it was lost.
	c.sourcesOK = sourcesSeen && w.lost[string(sourcesBucket)] == 0 && !w.lostUnder(string(sourcesBucket))
	if w.lostPages > 0 {
		c.salvage(w)
	}
	c.flushSnapshots()
	for _, b := range userBuckets {
		c.flushPuts(b)
	}
	for b, seq := range c.seqs {
		if c.err == nil {
			c.err = dst.raiseSequence(b, seq)
		}
	}
	rep.LostPages, rep.LostPagesIn = w.lostPages, w.lostPagesIn
	for b, n := range w.lost {
		rep.Lost[b] += n
	}
	if c.sourcesOK {
		rep.SnapshotsStored = c.stored
		snaps := string(snapshotsBucket)
		if n := c.stored - rep.Copied[snaps]; n > rep.Lost[snaps] {
			rep.Lost[snaps] = n
		}
	}
	rep.Problems = append(w.problems, rep.Problems...)
	rep.ProblemCount += w.problemCount
	if len(rep.Problems) > maxProblems {
		rep.Problems = rep.Problems[:maxProblems]
	}
	if c.err == nil {
		c.err = catch(dst.db.Sync)
	}
	if err := dst.Close(); c.err == nil {
		c.err = err
	}
	if c.err != nil {
		return rep, fmt.Errorf("recover %s into %s: %w", oldPath, newPath, c.err)
	}
	return rep, nil
}

// salvage reads the leaf pages the walk did not reach (below a page it
// could not read, such as a root past the end of a truncated file) and
// copies the snapshots on them: a snapshot checks itself (it decodes to the
// time and source of its key), so it needs no parent page to be trusted.
// Pages the freelist lists are skipped when it is readable (they hold
// deleted or superseded data). Other records cannot be told apart without
// their bucket (a decision and a reward have the same shape), so they stay
// lost.
func (c *copier) salvage(w *walker) {
	free, _, err := w.f.checkFreelist()
	if err != nil {
		free = nil
	}
	path := []string{string(snapshotsBucket)}
	for id := uint64(2); id < w.f.pages; id++ {
		if w.reached[id] || (free != nil && free[id]) {
			continue
		}
		p, err := w.f.page(id)
		if err != nil || p.flags != pageLeaf {
			continue
		}
		for i := id; i <= id+p.overflow; i++ {
			w.reached[i] = true
		}
		for i := 0; i < p.count; i++ {
			flags, k, v, _, err := element(p.buf, i, true)
			if err != nil || flags&leafIsBucket != 0 || checkSnapshot(k, v, nil) != nil {
				continue
			}
			c.rep.Salvaged++
			c.entry(path, k, v)
		}
	}
}

// copier writes what the walker reads into the new store, in batches.
type copier struct {
	dst   *Store
	rep   *RecoverReport
	snaps []collector.Snapshot
	puts  map[Bucket][][2][]byte
	seqs  map[Bucket]uint64
	err   error // the first write error; later entries are not written
	// stored sums the old store's per-source snapshot counts; sourcesOK
	// says its sources bucket was read whole.
	stored    int
	sourcesOK bool
}

// problem records a problem of the copy itself.
func (c *copier) problem(format string, a ...any) {
	c.rep.ProblemCount++
	if len(c.rep.Problems) < maxProblems {
		c.rep.Problems = append(c.rep.Problems, fmt.Sprintf(format, a...))
	}
}

func (c *copier) entry(path []string, k, v []byte) {
	if len(path) != 1 {
		c.rep.Skipped++
		return
	}
	switch name := path[0]; {
	case name == string(snapshotsBucket):
		if err := checkSnapshot(k, v, nil); err != nil {
			c.rep.Lost[name]++
			c.problem("bucket snapshots: %v", err)
			return
		}
		sn, _ := decodeSnapshot(v)
		if err := sn.Validate(); err != nil {
			c.rep.Lost[name]++
			c.problem("bucket snapshots: snapshot %s at %s: %v", sn.Source, keyTime(k), err)
			return
		}
		c.snaps = append(c.snaps, sn)
		if len(c.snaps) == recoverBatch {
			c.flushSnapshots()
		}
	case name == string(sourcesBucket):
		// Rebuilt by the new store's Append; read to count what is lost.
		if len(v) == 8 {
			c.stored += int(binary.BigEndian.Uint64(v))
		}
	case name == string(schemaBucket):
		// Recorded by the new store's Open.
	case declared([]byte(name)):
		b := Bucket(name)
		c.puts[b] = append(c.puts[b], [2][]byte{k, v})
		if len(c.puts[b]) == recoverBatch {
			c.flushPuts(b)
		}
	default:
		c.rep.Skipped++
	}
}

func (c *copier) seq(path []string, seq uint64) {
	if len(path) == 1 && slices.Contains(userBuckets, Bucket(path[0])) {
		c.seqs[Bucket(path[0])] = seq
	}
}

func (c *copier) flushSnapshots() {
	if len(c.snaps) > 0 && c.err == nil {
		if c.err = c.dst.Append(c.snaps...); c.err == nil {
			c.rep.Copied[string(snapshotsBucket)] += len(c.snaps)
		}
	}
	c.snaps = c.snaps[:0]
}

func (c *copier) flushPuts(b Bucket) {
	kvs := c.puts[b]
	if len(kvs) > 0 && c.err == nil {
		if c.err = c.dst.putRaw(b, kvs); c.err == nil {
			c.rep.Copied[string(b)] += len(kvs)
		}
	}
	c.puts[b] = kvs[:0]
}

// putRaw stores key/value pairs in bucket b as they are (Recover).
func (s *Store) putRaw(b Bucket, kvs [][2][]byte) error {
	return s.update("copy into "+string(b), func(tx *bolt.Tx) error {
		bk, err := userBucket(tx, b)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := bk.Put(kv[0], kv[1]); err != nil {
				return fmt.Errorf("put %x: %w", kv[0], err)
			}
		}
		return nil
	})
}

// raiseSequence sets bucket b's sequence to seq unless it is already
// higher, so records appended later do not reuse a copied key's number.
func (s *Store) raiseSequence(b Bucket, seq uint64) error {
	return s.update("set sequence of "+string(b), func(tx *bolt.Tx) error {
		bk, err := userBucket(tx, b)
		if err != nil {
			return err
		}
		if seq > bk.Sequence() {
			return bk.SetSequence(seq)
		}
		return nil
	})
}
