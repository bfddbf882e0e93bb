package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// importBatch is how many snapshots Import stores per transaction.
const importBatch = 500

// Export writes the store's snapshots of source ("" for all) with
// from <= Time < to (zero: unbounded), and the events of that time window,
// to w in time order; an event goes before a snapshot of the same time.
// It returns the number of snapshots and events written.
func Export(s *Store, w *Writer, source string, from, to time.Time) (snaps, events int, err error) {
	var evs []Event
	err = s.RangeRecords(BucketEvents, from, to, func(_ time.Time, v []byte) error {
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("export events: %w", err)
	}
	flush := func(until time.Time, all bool) error {
		for len(evs) > 0 && (all || !evs[0].Time.After(until)) {
			if err := w.WriteEvent(evs[0]); err != nil {
				return err
			}
			evs = evs[1:]
			events++
		}
		return nil
	}
	err = s.Range(source, from, to, func(sn collector.Snapshot) error {
		if err := flush(sn.Time, false); err != nil {
			return err
		}
		snaps++
		return w.WriteSnapshot(sn)
	})
	if err == nil {
		err = flush(time.Time{}, true)
	}
	if err != nil {
		return snaps, events, fmt.Errorf("export from %s: %w", s.Path(), err)
	}
	return snaps, events, nil
}

// Import stores every snapshot and event of r in s: snapshots in batches of
// importBatch per transaction, events as BucketEvents records (an event
// already stored with the same time and content is skipped, so importing a
// file twice stores it once). The header is kept in BucketMeta under
// "import/<source>". It returns the number of snapshots and events read.
// A malformed line stops the import; batches before it stay committed.
func Import(s *Store, r *Reader) (snaps, events int, err error) {
	h, err := json.Marshal(r.Header())
	if err != nil {
		return 0, 0, fmt.Errorf("import: header: %w", err)
	}
	if err := s.Put(BucketMeta, "import/"+strings.TrimSpace(r.Header().Source), h); err != nil {
		return 0, 0, fmt.Errorf("import: %w", err)
	}
	batch := make([]collector.Snapshot, 0, importBatch)
	store := func() error {
		if err := s.Append(batch...); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		snaps += len(batch)
		batch = batch[:0]
		return nil
	}
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return snaps, events, store()
		}
		if err != nil {
			if serr := store(); serr != nil {
				return snaps, events, errors.Join(fmt.Errorf("import: %w", err), serr)
			}
			return snaps, events, fmt.Errorf("import: %w", err)
		}
		if e.Snapshot != nil {
			batch = append(batch, *e.Snapshot)
			if len(batch) == importBatch {
				if err := store(); err != nil {
					return snaps, events, err
				}
			}
			continue
		}
		if err := importEvent(s, *e.Event); err != nil {
			return snaps, events, err
		}
		events++
	}
}

// importEvent stores ev unless an identical event is stored at its time.
func importEvent(s *Store, ev Event) error {
	v, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("import event: %w", err)
	}
	dup := false
	err = s.RangeRecords(BucketEvents, ev.Time, ev.Time.Add(time.Nanosecond), func(_ time.Time, old []byte) error {
		dup = dup || bytes.Equal(old, v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("import event: %w", err)
	}
	if dup {
		return nil
	}
	if err := s.AppendRecord(BucketEvents, ev.Time, v); err != nil {
		return fmt.Errorf("import event: %w", err)
	}
	return nil
}

// AppendEvent stores one event (for recorders that log scripted actions as
// they take them).
func (s *Store) AppendEvent(ev Event) error {
	if ev.Time.IsZero() || ev.Kind == "" {
		return fmt.Errorf("append event: event without time or kind")
	}
	v, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	return s.AppendRecord(BucketEvents, ev.Time, v)
}
