package datasets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// FuzzCheckFile feeds arbitrary bytes, as a store file, to the page reader
// of check.go (checkHead, checkFile, the walk Recover does). Property: no
// panic; and a file the check finds sound reads through bbolt (Range,
// RangeRecords, Keys) without an error. Seeds: a small real store, whole
// and cut short.
func FuzzCheckFile(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.db")
	s, err := Open(path)
	if err != nil {
		f.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := s.Append(synth("a", t0.Add(time.Duration(i)*time.Second), 1, 2, uint64(i))); err != nil {
			f.Fatal(err)
		}
	}
	if err := s.AppendRecord(BucketDecisions, t0, []byte(`{"pool":"web"}`)); err != nil {
		f.Fatal(err)
	}
	if _, err := s.PutPolicy("web", []byte(`{"q":[1]}`)); err != nil {
		f.Fatal(err)
	}
	rep, err := s.Verify()
	if err != nil {
		f.Fatal(err)
	}
	_ = s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	used := b[:rep.Pages*rep.PageSize]
	f.Add(used)
	f.Add(used[:len(used)/2])
	f.Add(used[:2*rep.PageSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		_ = checkHead(r, int64(len(b)))
		if raw, err := openRaw(r, int64(len(b)), 0, true); err == nil {
			w := &walker{f: raw, reached: make([]bool, raw.pages), entry: func(_ []string, k, v []byte) { _ = checkSnapshot(k, v, nil) }}
			if raw.meta.root >= 2 && raw.meta.root < raw.meta.hwm {
				w.bucket(nil, raw.meta.root, raw.meta.seq, nil)
			}
		}
		rep := checkFile(r, int64(len(b)), 0)
		if rep.ProblemCount > 0 {
			return
		}
		p := filepath.Join(t.TempDir(), "f.db")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenReadOnly(p)
		if err != nil {
			return // e.g. not an lbtune store: a sound bbolt file of another schema
		}
		defer s.Close()
		if err := s.Range("", time.Time{}, time.Time{}, func(collector.Snapshot) error { return nil }); err != nil {
			t.Fatalf("the check found nothing, but Range: %v", err)
		}
		for _, bk := range userBuckets {
			if err := s.RangeRecords(bk, time.Time{}, time.Time{}, func(time.Time, []byte) error { return nil }); err != nil {
				t.Fatalf("the check found nothing, but RangeRecords %s: %v", bk, err)
			}
			if _, err := s.Keys(bk); err != nil {
				t.Fatalf("the check found nothing, but Keys %s: %v", bk, err)
			}
		}
	})
}
