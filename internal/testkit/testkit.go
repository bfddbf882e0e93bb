// Package testkit holds the set-up that tests in several packages share:
// the example configuration written with a test's changes, the shipped
// model's path, and a log sink safe for a daemon's goroutines. Only tests
// import it.
package testkit

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/lbtune/lbtune/tuner/config"
)

// RepoRoot is the repository's top directory, found from this file's own
// path, so a test finds the repository's files whatever its package depth.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testkit: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ShippedModel is the absolute path of the default model shipped in
// datasets/ (`make model`); the test fails when it is missing.
func ShippedModel(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(RepoRoot(t), "datasets", "default-agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shipped model missing: %v", err)
	}
	return p
}

// ExampleConfig writes `lbtune config example` (with --sim when sim) to
// dir/lbtune.yaml with each key of repl replaced once by its value, and
// returns the file's path. The test fails when the example lacks a key:
// a change of the example must not leave a test on defaults it meant to
// change.
func ExampleConfig(t testing.TB, dir string, sim bool, repl map[string]string) string {
	t.Helper()
	y := config.Example(sim)
	olds := make([]string, 0, len(repl))
	for old := range repl {
		olds = append(olds, old)
	}
	sort.Strings(olds) // one order, whatever the map's
	for _, old := range olds {
		if !strings.Contains(y, old) {
			t.Fatalf("example lacks %q", old)
		}
		y = strings.Replace(y, old, repl[old], 1)
	}
	path := filepath.Join(dir, "lbtune.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers: a log sink for
// a daemon or server under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines are the non-empty lines written so far that contain every one of
// subs.
func (s *SyncBuffer) Lines(subs ...string) []string {
	var out []string
	for l := range strings.SplitSeq(s.String(), "\n") {
		ok := l != ""
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// LearnConfig writes the --sim example for a daemon that learns online:
// API on addr without a token, 30x speed-up, the shipped model, learning
// on with exploration from epsilon 1 down to 0.5, the policy saved every
// minute. It returns the file's path.
func LearnConfig(t testing.TB, dir, addr string) string {
	t.Helper()
	return ExampleConfig(t, dir, true, map[string]string{
		"listen: 127.0.0.1:9464":   "listen: " + addr,
		"token_file: lbtune.token": `token_file: ""`,
		"speedup: 10 ":             "speedup: 30 ",
		`path: ""`:                 "path: " + ShippedModel(t),
		"enabled: false":           "enabled: true",
		"epsilon: 0.1 ":            "epsilon: 1 ",
		"min_epsilon: 0.02":        "min_epsilon: 0.5",
		"save_every: 10m":          "save_every: 1m",
	})
}
