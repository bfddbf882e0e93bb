package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseHAProxyLogLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    HAProxyLogEntry
		wantErr error // nil: parses
	}{
		{name: "ok", line: `127.0.0.1:56822 [28/Nov/2026:09:01:35.757] fe_main app/s1 0/0/0/7/7 200 175 - - ---- 8/8/7/4/0 0/0 "GET /products HTTP/1.1"`,
			want: HAProxyLogEntry{Frontend: "fe_main", Backend: "app", Server: "s1", Tr: 7, Ta: 7, Status: 200, Bytes: 175, Termination: "----", Request: "GET /products HTTP/1.1"}},
		{name: "5xx", line: `127.0.0.1:56830 [28/Nov/2026:09:01:36.180] fe_main app/s3 0/0/0/54/54 503 192 - - ---- 8/8/7/2/0 0/0 "GET /v2/items HTTP/1.1"`,
			want: HAProxyLogEntry{Frontend: "fe_main", Backend: "app", Server: "s3", Tr: 54, Ta: 54, Status: 503, Bytes: 192, Termination: "----", Request: "GET /v2/items HTTP/1.1"}},
		{name: "syslog prefix, queue, connect refused", line: `Nov 28 09:01:35 localhost haproxy[42]: 10.0.0.1:4242 [28/Nov/2026:09:01:35.000] fe be/s2 1/20/-1/-1/3021 503 217 - - SCNN 1/1/0/0/3 0/0 "GET /heavy HTTP/1.1"`,
			want: HAProxyLogEntry{Frontend: "fe", Backend: "be", Server: "s2", TR: 1, Tw: 20, Tc: -1, Tr: -1, Ta: 3021, Status: 503, Bytes: 217, Termination: "SCNN", Request: "GET /heavy HTTP/1.1"}},
		{name: "rfc3164 datagram", line: `<134>Dec  2 19:40:01 haproxy[1234]: 127.0.0.1:40000 [02/Dec/2026:19:40:01.123] fe_testbed~ light/light-1 0/0/1/5/6 200 120 - - ---- 3/3/1/1/0 0/0 "GET /light HTTP/1.1"`,
			want: HAProxyLogEntry{Frontend: "fe_testbed", Backend: "light", Server: "light-1", Tc: 1, Tr: 5, Ta: 6, Status: 200, Bytes: 120, Termination: "----", Request: "GET /light HTTP/1.1"}},
		{name: "server timeout", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/-1/30001 504 194 - - sH-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
			want: HAProxyLogEntry{Frontend: "fe", Backend: "be", Server: "s1", Tr: -1, Ta: 30001, Status: 504, Bytes: 194, Termination: "sH--", Request: "GET / HTTP/1.1"}},
		{name: "no server", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
			want: HAProxyLogEntry{Frontend: "fe", Backend: "be", Server: "<NOSRV>", Tw: -1, Tc: -1, Tr: -1, Status: 503, Bytes: 217, Termination: "SC--", Request: "GET / HTTP/1.1"}},
		{name: "notice", line: `[WARNING]  (27750) : Server app/s2 enters drain state.`, wantErr: ErrNotHAProxyRequest},
		{name: "bad timers", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/x/1/1 200 1 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, wantErr: ErrMalformed},
		{name: "four timers", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/1/1 200 1 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, wantErr: ErrMalformed},
		{name: "bad status", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/1/1 2000 1 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, wantErr: ErrMalformed},
		{name: "negative bytes", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/1/1 200 -5 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, wantErr: ErrMalformed},
		{name: "empty server", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/ 0/0/0/1/1 200 5 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, wantErr: ErrMalformed},
		{name: "Ta above MaxLatencyMs", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/1/1000000001 200 5 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, wantErr: ErrMalformed},
		{name: "Tr 2^62", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/4611686018427387904/1 200 5 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, wantErr: ErrMalformed},
		{name: "Ta at MaxLatencyMs", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/1/1000000000 200 5 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
			want: HAProxyLogEntry{Frontend: "fe", Backend: "be", Server: "s1", Tr: 1, Ta: 1e9, Status: 200, Bytes: 5, Termination: "----", Request: "GET / HTTP/1.1"}},
		{name: "truncated", line: `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/1/1 200`, wantErr: ErrNotHAProxyRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHAProxyLogLine(tc.line)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got.Time.IsZero() {
				t.Fatal("zero time")
			}
			tc.want.Time = got.Time
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestHAProxyLogEntries: what one line counts for its server. The server's
// status class when it answered; an error (no status) when HAProxy made the
// answer; no server for <NOSRV>; HAProxy's own pages and notices skipped.
func TestHAProxyLogEntries(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		skip     bool
		pool     string
		attempts []logAttempt
	}{
		{"answered", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe app/s1 0/0/1/5/9 200 175 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, false, "app", []logAttempt{{"s1", 200, 9}}},
		{"server's 503", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe app/s3 0/0/0/54/54 503 192 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, false, "app", []logAttempt{{"s3", 503, 54}}},
		{"connect failed: HAProxy's 503 is an error", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe app/s2 0/0/-1/-1/3021 503 217 - - SCNN 1/1/0/0/3 0/0 "GET / HTTP/1.1"`, false, "app", []logAttempt{{"s2", 0, 3021}}},
		{"server timeout: HAProxy's 504 is an error", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe app/s1 0/0/0/-1/30001 504 194 - - sH-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, false, "app", []logAttempt{{"s1", 0, 30001}}},
		{"no server", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe app/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, false, "app", nil},
		{"stats page", `127.0.0.1:58546 [28/Nov/2026:09:01:35.592] stats stats/<STATS> 0/0/0/0/0 200 3775 - - LR-- 1/1/0/0/0 0/0 "GET /stats;csv HTTP/1.1"`, true, "", nil},
		{"notice", `[WARNING]  (27750) : Server app/s2 is DOWN, reason: Layer4 connection problem.`, true, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseHAProxyLogEntry(tc.line)
			if tc.skip {
				if !errors.Is(err, errSkipLine) {
					t.Fatalf("err = %v, want the line skipped", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.pool != tc.pool || fmt.Sprint(e.attempts) != fmt.Sprint(tc.attempts) {
				t.Errorf("pool %q attempts %v, want %q %v", e.pool, e.attempts, tc.pool, tc.attempts)
			}
		})
	}
}

// TestHAProxyLogGolden parses the whole captured HAProxy log into one
// snapshot and compares it with the golden file.
func TestHAProxyLogGolden(t *testing.T) {
	data, err := os.ReadFile(captures(t, "haproxy/haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ParseHAProxyLog(data, "haproxylog+file:haproxy.log", time.Date(2026, 11, 28, 9, 2, 30, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "haproxylog.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestHAProxyLogGolden -update)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("parsed haproxy.log differs from %s (rerun with -update if the change is intended):\n%s", golden, got)
	}
}

// TestHAProxyLogCaptureReplay replays the captured HAProxy log in 1 s
// windows: every request line counts once on its server (checked against
// an independent count), s3's 503s are 5xx responses, and the percentiles
// of servers and pools are ordered.
func TestHAProxyLogCaptureReplay(t *testing.T) {
	path := captures(t, "haproxy/haproxy.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{} // backend/server -> request lines
	for _, m := range regexp.MustCompile(`\] \S+ ([a-z_]+/s\d|[a-z_]+/x\d) `).FindAllStringSubmatch(string(data), -1) {
		want[m[1]]++
	}
	if len(want) == 0 {
		t.Fatal("no request lines found in the capture")
	}
	src, err := Open("haproxylog+file:" + path + "?replay=1s")
	if err != nil {
		t.Fatal(err)
	}
	if !IsReplay(src) {
		t.Error("haproxylog+file with ?replay= is not a replay")
	}
	snaps := scrapeAll(t, src)
	if len(snaps) < 5 {
		t.Fatalf("%d windows, want >= 5", len(snaps))
	}
	assertRates(t, snaps)
	last := snaps[len(snaps)-1]
	var total uint64
	for key, n := range want {
		pool, server, _ := strings.Cut(key, "/")
		var got uint64
		if p := last.Pool(pool); p != nil {
			if s := p.Server(server); s != nil {
				got = s.Counters.Requests
			}
		}
		if got != n {
			t.Errorf("%s: %d requests, want %d", key, got, n)
		}
		total += n
	}
	if s := last.Pool("app").Server("s3"); s == nil || s.Counters.Responses[4] != 20 {
		t.Errorf("app/s3: %+v, want 20 5xx (the capture's 503s)", s)
	}
	var withPct int
	for _, snap := range snaps {
		for _, p := range snap.Pools {
			if p.P50Ms != nil {
				withPct++
				if !(*p.P50Ms <= *p.P95Ms && *p.P95Ms <= *p.P99Ms) {
					t.Errorf("%s pool %s: percentiles out of order", snap.Time, p.Name)
				}
			}
			for _, s := range p.Servers {
				if g := s.Gauges; g.P50Ms != nil && !(*g.P50Ms <= *g.P95Ms && *g.P95Ms <= *g.P99Ms) {
					t.Errorf("%s %s/%s: percentiles out of order", snap.Time, p.Name, s.Name)
				}
			}
		}
	}
	if withPct == 0 {
		t.Error("no window carried pool percentiles")
	}
}

// TestRealHAProxyLog runs a real HAProxy logging each request over UDP
// syslog to the haproxylog+udp source and checks the counters against the
// client's count and the percentiles against the backends' known delays.
func TestRealHAProxyLog(t *testing.T) {
	needBinary(t, haproxyBin)
	udp, err := Open("haproxylog+udp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.(*logUDP).Close() })
	b := backends(t, 2)
	dir := t.TempDir()
	front := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`global
  log %s local0 info
defaults
  mode http
  log global
  option httplog
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend fe
  bind %s
  default_backend app
backend app
  balance roundrobin
  server s1 %s
  server s2 %s
`, udp.(*logUDP).Addr(), front, b[0], b[1])
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := startProcess(t, haproxyBin, "-db", "-f", path)
	waitTCP(t, front, out)
	before, err := udp.Scrape(context.Background())
	if err != nil || len(before.Pools) != 0 {
		t.Fatalf("scrape before any request: %+v, %v; want an empty snapshot", before, err)
	}
	ok := load(t, "http://"+front+"/", time.Second, 300)
	if ok == 0 {
		t.Fatal("no request succeeded through HAProxy")
	}
	time.Sleep(300 * time.Millisecond) // let the last datagrams land
	after, err := udp.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := after.Pool("app")
	if p == nil || len(p.Servers) != 2 || p.P95Ms == nil {
		t.Fatalf("want pool app with 2 servers and percentiles, got %+v", after.Pools)
	}
	var total uint64
	for _, s := range p.Servers {
		total += s.Counters.Requests
		if g := s.Gauges; g.P50Ms == nil || !(*g.P50Ms <= *g.P95Ms && *g.P95Ms <= *g.P99Ms) {
			t.Errorf("server %s: bad percentiles %+v", s.Name, g)
		}
	}
	// A request cancelled by load's deadline is logged too (client abort).
	if total < uint64(ok) || total > uint64(ok)+loadWorkers {
		t.Errorf("logged %d requests, %d got a 200 (want %d..%d)", total, ok, ok, ok+loadWorkers)
	}
	idle, err := udp.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ip := idle.Pool("app"); ip == nil || ip.P50Ms != nil || ip.Servers[0].Counters.Requests == 0 {
		t.Errorf("idle window: %+v, want counters kept and no percentiles", ip)
	}
}
