package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/actuator"
)

// backendBin is the test backend built once by TestMain.
var backendBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleet-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	backendBin = filepath.Join(dir, "backend")
	out, err := exec.Command("go", "build", "-o", backendBin, "./testdata/backend").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build test backend: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func testTemplate() Template {
	return Template{
		Command:        []string{backendBin, "-listen", "{addr}"},
		HealthInterval: 50 * time.Millisecond,
		HealthFails:    2,
		StopGrace:      2 * time.Second,
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(string(b[i+1:]), " Z")
}

func pidOf(t *testing.T, f *Fleet, pool, name string) int {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.procs[pool][name]
	if !ok {
		t.Fatalf("%s/%s not tracked", pool, name)
	}
	return p.pid
}

func get(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitUnhealthy polls Members until name is unhealthy and returns its reason.
func waitUnhealthy(t *testing.T, f *Fleet, pool, name string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ms, err := f.Members(context.Background(), pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Name == name && !m.Healthy {
				return m.Reason
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not reported unhealthy within %s", name, within)
	return ""
}

func TestFleetLifecycle(t *testing.T) {
	f := New(map[string]Template{"web": testTemplate(), "api": testTemplate()})
	t.Cleanup(func() { _ = f.Close() })
	ctx := context.Background()

	var ms []actuator.Member
	for _, pool := range []string{"web", "web", "web", "api"} {
		m, err := f.Launch(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if got := get(t, m.Addr); got != m.Addr {
			t.Errorf("server at %s answered %q", m.Addr, got)
		}
		ms = append(ms, m)
	}
	web, _ := f.Members(ctx, "web")
	if len(web) != 3 || !web[0].Healthy || web[0].Name != ms[0].Name {
		t.Fatalf("web members = %+v, want 3 healthy, oldest first", web)
	}
	pids := map[string]int{}
	for i, m := range ms {
		pool := "web"
		if i == 3 {
			pool = "api"
		}
		pids[m.Name] = pidOf(t, f, pool, m.Name)
	}

	t.Run("kill -9 is detected", func(t *testing.T) {
		if err := syscall.Kill(pids[ms[0].Name], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		reason := waitUnhealthy(t, f, "web", ms[0].Name, 2*time.Second)
		if !strings.Contains(reason, "exited") {
			t.Errorf("reason = %q, want process exited", reason)
		}
		if err := f.Stop(ctx, "web", ms[0]); err != nil {
			t.Errorf("Stop of a dead server: %v", err)
		}
	})
	t.Run("failing health checks are detected", func(t *testing.T) {
		resp, err := http.Get("http://" + ms[1].Addr + "/fail")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		reason := waitUnhealthy(t, f, "web", ms[1].Name, 2*time.Second)
		if !strings.Contains(reason, "health checks") {
			t.Errorf("reason = %q, want failed health checks", reason)
		}
	})
	t.Run("stop ends the process", func(t *testing.T) {
		if err := f.Stop(ctx, "web", ms[1]); err != nil {
			t.Fatal(err)
		}
		if alive(pids[ms[1].Name]) {
			t.Error("process still alive after Stop")
		}
		if err := f.Stop(ctx, "web", ms[1]); err == nil {
			t.Error("second Stop of the same server succeeded")
		}
	})
	t.Run("close leaves no process", func(t *testing.T) {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		for name, pid := range pids {
			if alive(pid) {
				t.Errorf("%s (pid %d) alive after Close", name, pid)
			}
		}
		if _, err := f.Launch(ctx, "web"); !errors.Is(err, ErrClosed) {
			t.Errorf("Launch after Close: err = %v, want ErrClosed", err)
		}
	})
}

func TestFleetLaunchFailures(t *testing.T) {
	tests := []struct {
		name    string
		pool    string
		tmpl    Template
		wantErr error  // nil: any error
		want    string // substring of the error
	}{
		{"unknown pool", "nosuch", testTemplate(), actuator.ErrUnknownPool, "nosuch"},
		{"exits at once", "p", Template{Command: []string{"false"}}, ErrExited, "exited before ready"},
		{"never ready", "p", Template{Command: []string{"sleep", "30"}, ReadyTimeout: 300 * time.Millisecond, StopGrace: time.Second}, nil, "not ready"},
		{"no such binary", "p", Template{Command: []string{"/nonexistent/backend"}}, nil, "start"},
		{"empty command", "p", Template{}, nil, "empty command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New(map[string]Template{"p": tc.tmpl})
			defer f.Close()
			_, err := f.Launch(context.Background(), tc.pool)
			if err == nil {
				t.Fatal("Launch succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want mention of %q", err, tc.want)
			}
			if ms, _ := f.Members(context.Background(), "p"); len(ms) != 0 {
				t.Errorf("failed launch left members %+v", ms)
			}
		})
	}
}
