package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

// recordCaptures is ../shared/captures seen from this package directory.
const recordCaptures = "../../../shared/captures"

// TestRecord runs the test binary of lbtune (lbtuneBinary) as `lbtune record` against
// replayed captures, bad sources, a signal and a real HAProxy under load.
func TestRecord(t *testing.T) {
	if _, err := os.Stat(recordCaptures); err != nil {
		t.Fatalf("captures missing: %v", err)
	}
	bin := lbtuneBinary(t)
	t.Run("replay", func(t *testing.T) { recordTestReplay(t, bin) })
	t.Run("bad sources", func(t *testing.T) { recordTestBad(t, bin) })
	t.Run("SIGTERM stops cleanly", func(t *testing.T) { recordTestSignal(t, bin) })
	t.Run("real HAProxy 15s", func(t *testing.T) { recordTestHAProxy(t, bin) })
	t.Run("host signals", func(t *testing.T) { recordTestHost(t, bin) })
}

// recordTestHost records a stats page with --host: with this machine's
// /proc every snapshot carries host signals; with a broken procfs root the
// snapshots are still recorded, without them, and the failure is logged
// once; with replayed captures --host is a usage error.
func recordTestHost(t *testing.T, bin string) {
	csv, err := os.ReadFile(filepath.Join(recordCaptures, "haproxy", "captures", "02-load-baseline", "show_stat.csv"))
	if err != nil {
		t.Fatal(err)
	}
	stats := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(csv) }))
	defer stats.Close()
	source := "haproxy+" + stats.URL + "/stats;csv"
	broken := t.TempDir() // no stat, meminfo, ... in it
	tests := []struct {
		name     string
		args     []string
		wantHost bool
		wantWarn int
	}{
		{"this machine", []string{"--host"}, true, 0},
		{"broken procfs root", []string{"--host", "--host-proc", broken}, false, 1},
		{"without --host", nil, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "h.db")
			args := append([]string{"record", "--source", source, "--db", db, "--interval", "200ms", "--duration", "1100ms"}, tc.args...)
			code, _, errOut := recordExec(t, bin, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			snaps := recordStored(t, db)
			if len(snaps) < 3 {
				t.Fatalf("stored %d snapshots in 1.1 s at 200ms, want >= 3", len(snaps))
			}
			for i, sn := range snaps {
				if (sn.Host != nil) != tc.wantHost {
					t.Fatalf("snapshot %d: host %+v, want present=%v", i, sn.Host, tc.wantHost)
				}
				if sn.Pool("app") == nil {
					t.Fatalf("snapshot %d lost the balancer data", i)
				}
			}
			if tc.wantHost {
				r, err := collector.Rate(&snaps[0], &snaps[len(snaps)-1])
				if err != nil || r.Host == nil || r.Host.CPUBusy < 0 || r.Host.CPUBusy > 1 || r.Host.MemTotalBytes == 0 {
					t.Errorf("host rates %+v, %v", r.Host, err)
				}
			}
			if n := strings.Count(errOut, "level=WARN"); n != tc.wantWarn {
				t.Errorf("%d warnings, want %d:\n%s", n, tc.wantWarn, errOut)
			}
			if tc.wantWarn > 0 && !strings.Contains(errOut, filepath.Join(broken, "stat")) {
				t.Errorf("warning does not name the file:\n%s", errOut)
			}
		})
	}
	code, _, errOut := recordExec(t, bin, "record", "--host", "--source", "haproxy+file:"+recordCaptures+"/haproxy/captures", "--db", filepath.Join(t.TempDir(), "r.db"))
	if code != 2 || !strings.Contains(errOut, "--host") {
		t.Errorf("--host with a replay: exit %d, stderr %q; want 2 naming --host", code, errOut)
	}
}

// recordExec runs the binary and returns exit code, stdout and stderr.
func recordExec(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// recordStored reads every snapshot of a store.
func recordStored(t *testing.T, db string) []collector.Snapshot {
	t.Helper()
	st, err := datasets.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var snaps []collector.Snapshot
	if err := st.Range("", time.Time{}, time.Time{}, func(s collector.Snapshot) error {
		snaps = append(snaps, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return snaps
}

// recordMinRate is the smallest per-server request rate between consecutive
// snapshots, and the smallest per-pool rate of pool.
func recordMinRate(t *testing.T, snaps []collector.Snapshot, pool string) (minServer, minPool float64) {
	t.Helper()
	minServer, minPool = 1e300, 1e300
	for i := 1; i < len(snaps); i++ {
		r, err := collector.Rate(&snaps[i-1], &snaps[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Pools {
			for _, s := range p.Servers {
				minServer = min(minServer, s.Requests)
			}
			if p.Name == pool {
				minPool = min(minPool, p.Requests())
			}
		}
	}
	return minServer, minPool
}

func recordTestReplay(t *testing.T, bin string) {
	tests := []struct {
		name   string
		source string
		want   int
	}{
		{"vts captures", "vts+file:" + recordCaptures + "/vts", 64},
		{"haproxy show stat captures", "haproxy+file:" + recordCaptures + "/haproxy/captures", 15},
		{"nginx access log in 1s windows", "nginxlog+file:" + recordCaptures + "/nginx-log/access.log?replay=1s", 13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "r.db")
			code, out, errOut := recordExec(t, bin, "record", "--source", tc.source, "--db", db)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, fmt.Sprintf("recorded %d snapshots", tc.want)) {
				t.Errorf("stdout %q does not report %d snapshots", out, tc.want)
			}
			snaps := recordStored(t, db)
			if len(snaps) != tc.want {
				t.Fatalf("store holds %d snapshots, want %d", len(snaps), tc.want)
			}
			// Across the reload and the restart no rate is negative.
			if ms, _ := recordMinRate(t, snaps, ""); ms < 0 {
				t.Errorf("min per-server request rate %v < 0", ms)
			}
		})
	}
}

func recordTestBad(t *testing.T, bin string) {
	dir := t.TempDir()
	capture, err := os.ReadFile(filepath.Join(recordCaptures, "vts", "0030.json"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.json")
	garbage := filepath.Join(dir, "garbage.csv")
	if err := os.WriteFile(truncated, capture[:len(capture)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(garbage, []byte("this,is\x00,not\nhaproxy,csv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer stall.Close()
	refused := recordFreeAddr(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no source", []string{"--db", "x.db"}, 2, "--source is required"},
		{"timeout over interval", []string{"--source", "vts+file:x", "--db", "x.db", "--timeout", "2s"}, 2, "must not exceed"},
		{"unknown scheme", []string{"--source", "statsd://x", "--db", "x.db"}, 1, "unknown source scheme"},
		{"connection refused", []string{"--source", "vts+http://" + refused + "/status/format/json", "--db", "x.db"}, 1, "connection refused"},
		{"10 s stall, 500ms timeout", []string{"--source", "haproxy+" + stall.URL + "/stats;csv", "--db", "x.db", "--timeout", "500ms"}, 1, "deadline exceeded"},
		{"truncated JSON", []string{"--source", "vts+file:" + truncated, "--db", "x.db"}, 1, "unexpected end of document"},
		{"garbage CSV", []string{"--source", "haproxy+file:" + garbage, "--db", "x.db"}, 1, "no header"},
		{"missing capture dir", []string{"--source", "vts+file:" + filepath.Join(dir, "none"), "--db", "x.db"}, 1, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"record"}, tc.args...)
			for i, a := range args {
				if a == "x.db" {
					args[i] = filepath.Join(t.TempDir(), "x.db")
				}
			}
			start := time.Now()
			code, _, errOut := recordExec(t, bin, args...)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantCode, errOut)
			}
			if tc.wantCode == 1 && strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", errOut)
			}
			if !strings.HasPrefix(errOut, "lbtune record: ") || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "panic") {
				t.Errorf("stderr %q: want one 'lbtune record:' line with %q", errOut, tc.want)
			}
		})
	}
}

func recordTestSignal(t *testing.T, bin string) {
	csv, err := os.ReadFile(filepath.Join(recordCaptures, "haproxy", "captures", "02-load-baseline", "show_stat.csv"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(csv) }))
	defer srv.Close()
	db := filepath.Join(t.TempDir(), "s.db")
	cmd := exec.Command(bin, "record", "--source", "haproxy+"+srv.URL+"/stats;csv", "--db", db, "--interval", "200ms")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, stderr %q", err, errb.String())
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("record did not stop on SIGTERM")
	}
	// The store was closed cleanly: it opens, and holds what was reported.
	n := len(recordStored(t, db))
	if n < 3 || !strings.Contains(out.String(), fmt.Sprintf("recorded %d snapshots", n)) {
		t.Errorf("store holds %d snapshots, stdout %q", n, out.String())
	}
}

// recordTestHAProxy is the acceptance run: a real HAProxy under
// load, recorded for 15 s through the stats socket, stores >= 14 snapshots
// whose request rates are > 0.
func recordTestHAProxy(t *testing.T, bin string) {
	const haproxy = "/usr/sbin/haproxy"
	if _, err := os.Stat(haproxy); err != nil {
		t.Fatalf("%s missing (%v): install haproxy to run this test", haproxy, err)
	}
	dir := t.TempDir()
	var backends []string
	for range 3 {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
		defer b.Close()
		backends = append(backends, strings.TrimPrefix(b.URL, "http://"))
	}
	front := recordFreeAddr(t)
	sock := filepath.Join(dir, "admin.sock")
	cfg := fmt.Sprintf("global\n  stats socket %s mode 600 level admin\n  maxconn 500\n"+
		"defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n"+
		"frontend fe\n  bind %s\n  default_backend app\n"+
		"backend app\n  balance roundrobin\n  server s1 %s\n  server s2 %s\n  server s3 %s\n",
		sock, front, backends[0], backends[1], backends[2])
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	hap := exec.Command(haproxy, "-db", "-f", cfgPath)
	var hapOut bytes.Buffer
	hap.Stdout, hap.Stderr = &hapOut, &hapOut
	if err := hap.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hap.Process.Kill(); _ = hap.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy stats socket never came up: %s", hapOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Bounded load: 2 clients, at most 40000 requests, for 17 s, only
	// against 127.0.0.1.
	ctx, cancel := context.WithTimeout(context.Background(), 17*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 2 * time.Second}
			for i := 0; i < 20000 && ctx.Err() == nil; i++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+front+"/", nil)
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	time.Sleep(500 * time.Millisecond) // load is flowing before the first scrape

	db := filepath.Join(dir, "x.db")
	code, out, errOut := recordExec(t, bin, "record", "--source", "haproxy+unix://"+sock, "--db", db, "--duration", "15s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	snaps := recordStored(t, db)
	if len(snaps) < 14 {
		t.Fatalf("stored %d snapshots in 15 s, want >= 14 (stdout %q, stderr %q)", len(snaps), out, errOut)
	}
	if _, minPool := recordMinRate(t, snaps, "app"); minPool <= 0 {
		t.Errorf("smallest app request rate between snapshots = %v, want > 0", minPool)
	}
}

func recordFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
