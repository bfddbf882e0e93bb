package model

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

func TestFitCSV(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("x,y\n")
	for i := range 60 {
		c := float64(10 * (i % 2))
		fmt.Fprintf(&b, "%g,%g\n", c+float64(i%7)/10, c-float64(i%5)/10)
	}
	path := filepath.Join(dir, "a.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res, sel, err := FitCSV(context.Background(), path, 1, 3, FitConfig{Cov: Full, Restarts: 1, Threads: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.K != sel.K || res.Samples != 60 || res.Dims != 2 || res.Threads != 1 || len(res.BICByK) != 3 || res.Cov != string(Full) {
		t.Errorf("FitCSV = %+v", res)
	}
	if _, _, err := FitCSV(context.Background(), filepath.Join(dir, "none.csv"), 1, 1, FitConfig{}, 1); err == nil {
		t.Error("FitCSV of a missing file: no error")
	}
}

func TestLoadInputNoSamples(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.jsonl")
	w, err := datasets.CreateFile(path, datasets.Header{Source: "s", Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	called := 0
	_, err = LoadInput([]string{path}, func(string, []collector.Snapshot, []Features, SampleStats) { called++ })
	if !errors.Is(err, ErrNoSamples) || called != 1 {
		t.Errorf("LoadInput of an empty file: %v after %d calls; want ErrNoSamples after 1", err, called)
	}
}
