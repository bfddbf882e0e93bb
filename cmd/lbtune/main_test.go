package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The exec tests (record, testbed, run, ...) share one build of the lbtune
// binary: building it once per test file cost a `go build` each.
var (
	lbtuneBinOnce sync.Once
	lbtuneBinDir  string
	lbtuneBinPath string
	lbtuneBinErr  error
)

// lbtuneBinary builds lbtune once per test process and returns its path.
func lbtuneBinary(t *testing.T) string {
	t.Helper()
	lbtuneBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lbtune-test-bin")
		if err != nil {
			lbtuneBinErr = err
			return
		}
		lbtuneBinDir = dir
		lbtuneBinPath = filepath.Join(dir, "lbtune")
		if out, err := exec.Command("go", "build", "-o", lbtuneBinPath, ".").CombinedOutput(); err != nil {
			lbtuneBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if lbtuneBinErr != nil {
		t.Fatal(lbtuneBinErr)
	}
	return lbtuneBinPath
}

// TestMain removes the shared binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if lbtuneBinDir != "" {
		os.RemoveAll(lbtuneBinDir)
	}
	os.Exit(code)
}
