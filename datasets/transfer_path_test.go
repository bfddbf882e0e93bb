package datasets

import (
	"path/filepath"
	"testing"
	"time"
)

// TestPathHelpers round-trips a store through ExportPath and ImportPath,
// checks it with CheckPath and prunes it with PrunePath.
func TestPathHelpers(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	s, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := s.Append(synth("a", t0.Add(time.Duration(i)*time.Minute), 1, 2, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckPath(src); err != nil {
		t.Fatalf("CheckPath: %v", err)
	}
	out := filepath.Join(dir, "x.jsonl.gz")
	n, _, err := ExportPath(src, out, ExportOptions{From: t0.Add(2 * time.Minute), Now: t0})
	if err != nil || n != 8 {
		t.Fatalf("ExportPath = %d, %v; want 8 snapshots", n, err)
	}
	r, err := OpenFile(out)
	if err != nil {
		t.Fatal(err)
	}
	h := r.Header()
	r.Close()
	if h.Source != "a" || h.Description != "exported from "+src || !h.Created.Equal(t0) {
		t.Errorf("header %+v: want source a, the default description and the given time", h)
	}
	if _, _, err := ExportPath(filepath.Join(dir, "none.db"), filepath.Join(dir, "y.jsonl"), ExportOptions{}); err == nil {
		t.Error("ExportPath of a missing store: no error")
	}

	dst := filepath.Join(dir, "dst.db")
	d, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := ImportPath(d, out); err != nil || n != 8 {
		t.Fatalf("ImportPath = %d, %v; want 8", n, err)
	}
	if _, _, err := ImportPath(d, filepath.Join(dir, "none.jsonl")); err == nil {
		t.Error("ImportPath of a missing file: no error")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := PrunePath(dst, t0.Add(5*time.Minute)); err != nil || n != 3 {
		t.Fatalf("PrunePath = %d, %v; want 3", n, err)
	}
}
