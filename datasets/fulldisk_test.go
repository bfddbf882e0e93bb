package datasets

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// fullEnv names the store the re-executed test binary fills.
const fullEnv = "LBTUNE_TEST_FULL_DISK_DB"

// TestFullDiskHelper is not a test on its own: TestFullDisk re-executes the
// test binary running only this function. It caps its own file size
// (RLIMIT_FSIZE, so writes past it fail with EFBIG as on a full disk),
// appends until Append fails, reports each commit and the error, and checks
// that the store keeps refusing cleanly and closes.
func TestFullDiskHelper(t *testing.T) {
	path := os.Getenv(fullEnv)
	if path == "" {
		t.Skip("helper process for TestFullDisk")
	}
	signal.Ignore(syscall.SIGXFSZ) // get EFBIG instead of being killed
	s, err := Open(path)
	if err != nil {
		fmt.Println("fatal", err)
		os.Exit(3)
	}
	st, err := os.Stat(path)
	if err != nil {
		fmt.Println("fatal", err)
		os.Exit(3)
	}
	limit := uint64(st.Size()) + 512<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		fmt.Println("fatal", err)
		os.Exit(3)
	}
	failed := 0
	for i := 0; i < 5000 && failed < 3; i++ {
		if err := s.Append(synth("a", t0.Add(time.Duration(i)*time.Second), 2, 20, uint64(i))); err != nil {
			fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " "))
			failed++
			continue
		}
		fmt.Printf("committed %d\n", i)
	}
	if err := s.Close(); err != nil {
		fmt.Println("close", err)
	}
	os.Exit(0)
}

// TestFullDisk checks that a write the disk cannot hold returns an error,
// and that everything committed before it is intact after reopening.
func TestFullDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "full.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), fullEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := map[int]bool{}
	var errs []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "committed "):
			i, _ := strconv.Atoi(strings.TrimPrefix(line, "committed "))
			committed[i] = true
		case strings.HasPrefix(line, "error "):
			errs = append(errs, line)
		default:
			t.Errorf("helper: %s", line)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper did not exit cleanly (a panic or a signal?): %v", err)
	}
	if len(committed) < 10 || len(errs) == 0 {
		t.Fatalf("%d commits and %d errors: want the file to fill up after some commits", len(committed), len(errs))
	}
	if !strings.Contains(errs[0], "file too large") {
		t.Errorf("first error %q does not say why", errs[0])
	}
	s, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{}
	err = s.Range("a", time.Time{}, time.Time{}, func(sn collector.Snapshot) error {
		got[int(sn.Time.Sub(t0)/time.Second)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range committed {
		if !got[i] {
			t.Fatalf("snapshot %d was committed before the disk filled but is gone", i)
		}
	}
	if len(got) != len(committed) {
		t.Fatalf("store holds %d snapshots, %d were reported committed", len(got), len(committed))
	}
	if err := s.Append(synth("a", t0.Add(-time.Second), 1, 1, 1)); err != nil {
		t.Fatalf("append with space again: %v", err)
	}
	t.Logf("%d commits, then: %s", len(committed), errs[0])
}
