package datasets

import (
	"bytes"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TimedRecord is one record of a time-keyed bucket (written by
// AppendRecord or AppendRecords).
type TimedRecord struct {
	Time  time.Time
	Value []byte
}

// recordKeyLen is the length of a key written by AppendRecord: 8 bytes of
// time, 8 of sequence number.
const recordKeyLen = 16

// LatestRecords returns the newest records of bucket b with time at or
// after from (zero from: no bound) that keep accepts, at most limit (>= 1),
// in time order. It walks the bucket backwards from its end in one read
// transaction and stops after limit accepted records or at from, so a call
// costs what it visits, not the size of the bucket: the newest 200
// decisions of a year-long store cost what they cost on a day-old one. (A
// keep that refuses most records still visits them, down to from.)
//
// keep (nil keeps every record) runs inside the read transaction: it must
// not use the store, and value is only valid during the call. An error
// from keep ends the walk and is returned unwrapped. Keys of another shape
// (written with Put) are skipped.
func (s *Store) LatestRecords(b Bucket, from time.Time, limit int, keep func(t time.Time, value []byte) (bool, error)) ([]TimedRecord, error) {
	if limit < 1 {
		return nil, fmt.Errorf("latest records of %s: limit %d: want at least 1", b, limit)
	}
	lo, ok := seekKey(from)
	if !ok {
		return nil, nil // from is after every representable time
	}
	var out []TimedRecord
	err := s.viewBucket(b, func(bk *bolt.Bucket) error {
		c := bk.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			if lo != nil && bytes.Compare(k[:min(len(k), 8)], lo) < 0 {
				return nil
			}
			if len(k) != recordKeyLen {
				continue
			}
			t := keyTime(k)
			if keep != nil {
				ok, err := keep(t, v)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			out = append(out, TimedRecord{Time: t, Value: bytes.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// AppendRecords stores records in bucket b in one transaction, each keyed
// as AppendRecord keys one. On any error none is stored.
func (s *Store) AppendRecords(b Bucket, recs []TimedRecord) error {
	return s.Write("append records to "+string(b), func(w *TxWriter) error {
		for i, r := range recs {
			if err := w.AppendRecord(b, r.Time, r.Value); err != nil {
				return fmt.Errorf("record %d of %d: %w", i+1, len(recs), err)
			}
		}
		return nil
	})
}

// viewBucket runs fn on user bucket b in a guarded read transaction; a
// declared bucket missing from an old read-only store reads as empty.
func (s *Store) viewBucket(b Bucket, fn func(bk *bolt.Bucket) error) error {
	return s.view(func(tx *bolt.Tx) error {
		bk, err := readBucket(tx, b)
		if err != nil {
			return fmt.Errorf("read %s in %s: %w", b, s.path, err)
		}
		if bk == nil {
			return nil
		}
		return fn(bk)
	})
}

// seekKey is the 8-byte time key of from for a seek: nil (no bound) for a
// zero time or one before the first representable time (1677); ok is
// false for a time after the last (2262), which no record can reach.
func seekKey(from time.Time) (key []byte, ok bool) {
	switch {
	case from.IsZero() || from.Before(time.Unix(0, math.MinInt64)):
		return nil, true
	case from.After(time.Unix(0, math.MaxInt64)):
		return nil, false
	}
	return timeKey(nil, from), true
}
