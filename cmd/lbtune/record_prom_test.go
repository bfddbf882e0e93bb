package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const prometheusBin = "/usr/bin/prometheus"

// TestRecordBackfill runs `lbtune record --from --to` against a real
// Prometheus (Debian prometheus 2.42) that scrapes an nginx-module-vts
// Prometheus exposition every second, then reads the dataset back with
// `lbtune dataset info --json`; records the same source live for 3.5 s;
// and checks the backfill's failures: an
// empty window, a dead Prometheus, and the flags' usage errors, each one
// line and no dataset left behind.
func TestRecordBackfill(t *testing.T) {
	if _, err := os.Stat(prometheusBin); err != nil {
		if testing.Short() {
			t.Skipf("%s is missing (%v) and -short is set", prometheusBin, err)
		}
		t.Fatalf("%s is missing (%v): install it (scripts/deps.sh prometheus)", prometheusBin, err)
	}
	bin := lbtuneBinary(t)
	var mu sync.Mutex
	n := 0
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := 10 * n
		mu.Unlock()
		for _, code := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
			v := 0
			if code == "2xx" {
				v = k
			}
			fmt.Fprintf(w, "nginx_vts_upstream_requests_total{upstream=\"back\",backend=\"127.0.0.1:8081\",code=%q} %d\n", code, v)
		}
		fmt.Fprintf(w, "nginx_vts_upstream_bytes_total{upstream=\"back\",backend=\"127.0.0.1:8081\",direction=\"in\"} %d\n", 100*k)
		fmt.Fprintf(w, "nginx_vts_upstream_bytes_total{upstream=\"back\",backend=\"127.0.0.1:8081\",direction=\"out\"} %d\n", 1000*k)
		fmt.Fprintf(w, "nginx_vts_upstream_request_seconds_total{upstream=\"back\",backend=\"127.0.0.1:8081\"} %.3f\n", 0.02*float64(k))
	}))
	defer exporter.Close()
	prom := recordStartPrometheus(t, "nginx", strings.TrimPrefix(exporter.URL, "http://"))
	start := time.Now().UTC()
	time.Sleep(6 * time.Second) // about six scrapes
	end := time.Now().UTC()
	source := "prom+" + prom + "?job=nginx&upstream=back&stale=5s"

	db := filepath.Join(t.TempDir(), "r.db")
	code, out, errOut := recordExec(t, bin, "record", "--source", source, "--from", start.Format(time.RFC3339Nano),
		"--to", end.Format(time.RFC3339Nano), "--step", "1s", "--db", db)
	if code != 0 {
		t.Fatalf("backfill exit %d, stderr %q", code, errOut)
	}
	var stored int
	if _, err := fmt.Sscanf(out, "backfilled %d snapshots", &stored); err != nil || stored < 3 || stored > 7 {
		t.Fatalf("stdout %q: want 3 to 7 snapshots backfilled from 6 s of 1 s scrapes", out)
	}
	info, err := exec.Command(bin, "dataset", "info", "--json", db).Output()
	if err != nil {
		t.Fatalf("dataset info: %v", err)
	}
	var sum struct {
		Snapshots int      `json:"snapshots"`
		Sources   []string `json:"sources"`
	}
	if err := json.Unmarshal(info, &sum); err != nil {
		t.Fatalf("dataset info --json: %v\n%s", err, info)
	}
	if sum.Snapshots != stored || len(sum.Sources) != 1 || sum.Sources[0] != source {
		t.Errorf("dataset info: %d snapshots from %v, want %d from %s\n%s", sum.Snapshots, sum.Sources, stored, source, info)
	}
	// The stored counters are the exporter's: requests grow by 10 per
	// scrape, latency sum 20 ms per request.
	snaps := recordStored(t, db)
	for i, s := range snaps {
		c := s.Pools[0].Servers[0].Counters
		if c.Requests == 0 || c.Requests%10 != 0 || c.LatencySumMs != 20*c.Requests || c.Responses[1] != c.Requests {
			t.Errorf("snapshot %d: counters %+v", i, c)
		}
		if i > 0 && (c.Requests <= snaps[i-1].Pools[0].Servers[0].Counters.Requests || !s.Time.After(snaps[i-1].Time)) {
			t.Errorf("snapshot %d does not follow %d: %+v then %+v", i, i-1, snaps[i-1], s)
		}
	}

	// Live: record --duration reads the same Prometheus with instant
	// queries, one snapshot per new scrape.
	live := filepath.Join(t.TempDir(), "live.db")
	code, out, errOut = recordExec(t, bin, "record", "--source", source, "--interval", "1s", "--duration", "3500ms", "--db", live)
	if code != 0 {
		t.Fatalf("live record exit %d, stderr %q", code, errOut)
	}
	if got := len(recordStored(t, live)); got < 2 || !strings.Contains(out, fmt.Sprintf("recorded %d snapshots", got)) {
		t.Errorf("live record stored %d snapshots, stdout %q, stderr %q", got, out, errOut)
	}

	dead := "prom+http://" + recordFreeAddr(t) + "?job=nginx"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"window before any data", []string{"--source", source, "--from", "2h", "--to", "1h"}, 1, "returned no series"},
		{"dead prometheus", []string{"--source", dead, "--from", "1h", "--to", "now"}, 1, "connection refused"},
		{"from without to", []string{"--source", source, "--from", "1h"}, 2, "needs both --from and --to"},
		{"not prometheus", []string{"--source", "haproxy+unix:///x.sock", "--from", "1h", "--to", "now"}, 2, "prom+http:// source only"},
		{"reversed", []string{"--source", source, "--from", "1h", "--to", "2h"}, 2, "must be before --to"},
		{"bad time", []string{"--source", source, "--from", "yesterday", "--to", "now"}, 2, "neither an RFC 3339 time"},
		{"with --host", []string{"--source", source, "--from", "1h", "--to", "now", "--host"}, 2, "cannot go with a backfill"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "x.db")
			code, _, errOut := recordExec(t, bin, append(append([]string{"record"}, tc.args...), "--db", db)...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantCode, errOut)
			}
			if tc.wantCode == 1 && strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", errOut)
			}
			if !strings.HasPrefix(errOut, "lbtune record: ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q: want an 'lbtune record:' line with %q", errOut, tc.want)
			}
			if _, err := os.Stat(db); err == nil {
				t.Errorf("%s left behind", db)
			}
		})
	}
}

// recordStartPrometheus runs Prometheus scraping target as job every
// second (storage in t.TempDir()), waits for its first scrape for at most
// 30 s, and returns its base URL.
func recordStartPrometheus(t *testing.T, job, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", job, target)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := recordFreeAddr(t)
	var out strings.Builder
	var mu sync.Mutex
	cmd := exec.Command(prometheusBin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	w := lockedWriter{mu: &mu, w: &out}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	// Ready, then scraping: Prometheus hands its targets to the scrape
	// manager only after a few seconds, so wait for the first up sample.
	base := "http://" + listen
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/api/v1/query?query=up"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"value"`) {
				return base
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Fatalf("prometheus at %s did not scrape within 30s; output:\n%s", base, out.String())
	return ""
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
