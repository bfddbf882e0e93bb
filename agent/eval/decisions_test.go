package eval

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
)

func TestParseOffset(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 0, false},
		{"72h", 72 * time.Hour, false},
		{"3d", 72 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{"-1h", 0, true},
		{"-1d", 0, true},
		{"xd", 0, true},
		{"soon", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseOffset(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseOffset(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrBadOffset) {
			t.Errorf("ParseOffset(%q): error %v is not ErrBadOffset", tc.in, err)
		}
	}
}

func TestDecisionLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	l, err := CreateDecisionLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := l.Record(context.Background(), agent.Decision{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
	}
	if n != 3 {
		t.Errorf("%d lines, want 3", n)
	}
	if _, err := CreateDecisionLog(filepath.Join(t.TempDir(), "no", "d.jsonl")); err == nil {
		t.Error("CreateDecisionLog in a missing directory: no error")
	}
}
