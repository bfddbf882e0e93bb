package datasets

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestGroupCommit: 64 goroutines write at once; every record lands once,
// fewer page writes than writes happen (so commits were shared), and one writer's error fails only
// that writer.
func TestGroupCommit(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writes := func() int64 { st := s.db.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	const writers, each = 64, 20
	bad := errors.New("refused")
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var err error
				if w == 7 && i == 3 {
					err = s.update("failing write", func(tx *bolt.Tx) error {
						if err := tx.Bucket([]byte(BucketMeta)).Put([]byte("never"), []byte("x")); err != nil {
							return err
						}
						return bad
					})
				} else {
					err = s.AppendRecord(BucketEvents, time.Unix(int64(1000+i), int64(w)), fmt.Appendf(nil, "%d/%d", w, i))
				}
				if err != nil && errs[w] == nil {
					errs[w] = err
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if w == 7 {
			if !errors.Is(err, bad) {
				t.Errorf("writer 7: %v, want its own error", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	n := 0
	seen := map[string]bool{}
	if err := s.RangeRecords(BucketEvents, time.Time{}, time.Time{}, func(_ time.Time, v []byte) error {
		n++
		if seen[string(v)] {
			t.Errorf("record %s stored twice", v)
		}
		seen[string(v)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := writers*each - 1; n != want {
		t.Errorf("%d records, want %d", n, want)
	}
	if _, err := s.Get(BucketMeta, "never"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the failing write's put was committed: %v", err)
	}
	// Every commit writes at least a data page and a meta page: ungrouped,
	// the writes would take at least 2 page writes each.
	pages := writes() - before
	t.Logf("%d writes, %d page writes", writers*each, pages)
	if pages >= int64(writers*each) {
		t.Errorf("%d page writes for %d concurrent writes: nothing was grouped", pages, writers*each)
	}
}
