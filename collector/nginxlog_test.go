package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		pool     string
		attempts []logAttempt
		bytesOut uint64
	}{
		{
			name:     "lbtune format over syslog",
			line:     `<190>Nov 28 09:00:15 nginx: lbtune=1 msec=1795856415.123 pool=app status=200 rt=0.012 bytes=230 reqlen=80 ua="127.0.0.1:18081" us="200" urt="0.011"`,
			pool:     "app",
			attempts: []logAttempt{{"127.0.0.1:18081", 200, 11}},
			bytesOut: 230,
		},
		{
			name:     "lbtune format, two attempts",
			line:     `lbtune=1 msec=1795856415.123 pool=app status=200 rt=0.071 bytes=30 reqlen=80 ua="127.0.0.1:18083, 127.0.0.1:18082" us="502, 200" urt="0.046, 0.025"`,
			pool:     "app",
			attempts: []logAttempt{{"127.0.0.1:18083", 502, 46}, {"127.0.0.1:18082", 200, 25}},
			bytesOut: 30,
		},
		{
			name:     "lbtune format, no upstream",
			line:     `lbtune=1 msec=1795856415.000 pool=- status=404 rt=0.000 bytes=150 reqlen=80 ua="-" us="-" urt="-"`,
			pool:     "-",
			bytesOut: 150,
		},
		{
			name:     "lbtune format, no live upstreams (group name as address)",
			line:     `lbtune=1 msec=1795856415.000 pool=app status=502 rt=0.000 bytes=150 reqlen=80 ua="app" us="502" urt="0.000"`,
			pool:     "app",
			bytesOut: 150,
		},
		{
			name:     "timing format from the captures",
			line:     `127.0.0.1 - [28/Nov/2026:09:00:15 +0000] "GET / HTTP/1.1" 200 30 host=shop.example.test server=shop.example.test rt=0.071 us="502, 200" ua="127.0.0.1:18083, 127.0.0.1:18082" urt="0.046, 0.025" uct="0.000, 0.000" uht="-, 0.025" cache=-`,
			pool:     "default",
			attempts: []logAttempt{{"127.0.0.1:18083", 502, 46}, {"127.0.0.1:18082", 200, 25}},
			bytesOut: 30,
		},
		{
			name:     "timing format, connect failure without response time",
			line:     `127.0.0.1 - [28/Nov/2026:09:00:15 +0000] "POST /noretry/checkout HTTP/1.1" 502 157 host=a server=a rt=0.001 us="502" ua="127.0.0.1:18083" urt="-" uct="-" uht="-" cache=-`,
			pool:     "default",
			attempts: []logAttempt{{"127.0.0.1:18083", 502, -1}},
			bytesOut: 157,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseLogLine(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if e.pool != tc.pool || e.bytesOut != tc.bytesOut || e.time.IsZero() {
				t.Errorf("pool %q bytes %d time %v, want %q %d non-zero", e.pool, e.bytesOut, e.time, tc.pool, tc.bytesOut)
			}
			if len(e.attempts) != len(tc.attempts) {
				t.Fatalf("attempts %+v, want %+v", e.attempts, tc.attempts)
			}
			for i, a := range e.attempts {
				w := tc.attempts[i]
				if a.addr != w.addr || a.status != w.status || (a.ms-w.ms) > 1e-9 || (w.ms-a.ms) > 1e-9 {
					t.Errorf("attempt %d = %+v, want %+v", i, a, w)
				}
			}
		})
	}
}

func TestNginxLogBadInput(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want string
	}{
		{"garbage", "\x00\x01 this is not a log line\n", "not an lbtune or timing log line"},
		{"unterminated quote", `lbtune=1 msec=1795856415.000 pool=app status=200 rt=0.1 bytes=1 reqlen=1 ua="127.0.0.1:1` + "\n", "unterminated quote"},
		{"bad msec", `lbtune=1 msec=yesterday pool=app status=200 rt=0.1 bytes=1 reqlen=1 ua="-" us="-" urt="-"` + "\n", "msec"},
		{"bad upstream time", `lbtune=1 msec=1795856415.000 pool=app status=200 rt=0.1 bytes=1 reqlen=1 ua="127.0.0.1:1" us="200" urt="NaN"` + "\n", "upstream response time"},
		{"truncated timing line", `127.0.0.1 - [28/Nov/2026:09:00:15 +0000] "GET / HTT`, "unterminated request"},
		{"syslog without message", "<190>Nov 28 09:00:15 nginx", "syslog"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := ParseNginxLog([]byte(tc.log), "nginxlog+file:bad.log", time.Unix(1, 0))
			if err == nil {
				t.Fatalf("no error, snapshot %+v", snap)
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nginxlog+file:bad.log") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrMalformed naming the source and %q", err, tc.want)
			}
		})
	}
	// A streaming window holding only malformed lines is an error too.
	agg := newLogAggregator(nginxLog)
	agg.addLine("garbage")
	if _, err := agg.snapshot("nginxlog+udp://x", time.Unix(1, 0)); err == nil {
		t.Error("window of garbage gave a snapshot")
	}
	if s, err := agg.snapshot("nginxlog+udp://x", time.Unix(2, 0)); err != nil || len(s.Pools) != 0 {
		t.Errorf("empty window after listening: %+v, %v; want an empty snapshot", s, err)
	}
}

// TestNginxLogCaptureReplay replays the captured access log (timing format)
// in 1 s windows: every attempt of every line is counted once, rates are
// never negative and percentiles are ordered.
func TestNginxLogCaptureReplay(t *testing.T) {
	path := captures(t, "nginx-log/access.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Independent count of attempts: the ua="..." addresses that are not "-".
	want := map[string]uint64{}
	for _, m := range regexp.MustCompile(` ua="([^"]*)"`).FindAllStringSubmatch(string(data), -1) {
		for _, a := range strings.Split(m[1], ", ") {
			if a != "-" {
				want[a]++
			}
		}
	}
	src, err := Open("nginxlog+file:" + path + "?replay=1s")
	if err != nil {
		t.Fatal(err)
	}
	snaps := scrapeAll(t, src)
	if len(snaps) < 10 { // 6 slices of about 1-3 s each
		t.Fatalf("%d windows, want >= 10", len(snaps))
	}
	assertRates(t, snaps)
	last := snaps[len(snaps)-1].Pool("default")
	if last == nil {
		t.Fatal("no pool default")
	}
	for addr, n := range want {
		s := last.Server(addr)
		if s == nil || s.Counters.Requests != n {
			t.Errorf("server %s: %+v, want %d requests", addr, s, n)
		}
	}
	if s := last.Server("127.0.0.1:18083"); s == nil || s.Counters.Responses[4] == 0 {
		t.Errorf("18083 has no 5xx although it was killed under load: %+v", s)
	}
	var withPct int
	for _, snap := range snaps {
		for _, s := range snap.Pools[0].Servers {
			g := s.Gauges
			if g.P50Ms == nil {
				continue
			}
			withPct++
			if !(*g.P50Ms <= *g.P95Ms && *g.P95Ms <= *g.P99Ms) {
				t.Errorf("%s %s: percentiles out of order: %v %v %v", snap.Time, s.Name, *g.P50Ms, *g.P95Ms, *g.P99Ms)
			}
		}
	}
	if withPct == 0 {
		t.Error("no window carried percentiles")
	}
}

// TestRealNginxLog runs a real NGINX proxying to httptest backends and
// logging in the lbtune format both to the UDP syslog source and to a file
// tailed by the file source.
func TestRealNginxLog(t *testing.T) {
	needBinary(t, nginxBin)
	udp, err := Open("nginxlog+udp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.(*logUDP).Close() })
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b := slowBackends(t, 2, 10*time.Millisecond)
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  log_format %[2]s '%[3]s';
  upstream app { server %[4]s weight=3; server %[5]s weight=1; }
  server {
    listen %[6]s;
    location / {
      proxy_pass http://app;
      access_log syslog:server=%[7]s,tag=nginx,nohostname %[2]s;
      access_log %[8]s %[2]s;
    }
  }
}
`, dir, NginxLogFormatName, NginxLogFormat, b[0], b[1], listen, udp.(*logUDP).Addr(), logPath)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := startProcess(t, nginxBin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	waitTCP(t, listen, out)
	file, err := Open("nginxlog+file://" + logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []Source{udp, file} {
		t.Run(strings.SplitN(src.String(), ":", 2)[0]+"/before-load", func(t *testing.T) {
			s, err := src.Scrape(context.Background())
			if err != nil || len(s.Pools) != 0 {
				t.Fatalf("scrape before any request: %+v, %v; want an empty snapshot", s, err)
			}
		})
	}
	before := map[Source]Snapshot{}
	for _, src := range []Source{udp, file} {
		before[src], _ = src.Scrape(context.Background())
	}
	start := time.Now()
	ok, busy := loadBusy(t, "http://"+listen+"/", time.Second, 400)
	if ok == 0 {
		t.Fatal("no request succeeded through NGINX")
	}
	time.Sleep(300 * time.Millisecond) // let the last datagrams and writes land
	// The clients' own mean number of requests in flight over the window.
	clients := InFlight(float64(busy)/float64(time.Millisecond), time.Since(start))
	for _, src := range []Source{udp, file} {
		t.Run(strings.SplitN(src.String(), ":", 2)[0], func(t *testing.T) {
			after, err := src.Scrape(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			p := after.Pool("app")
			if p == nil || len(p.Servers) != 2 {
				t.Fatalf("want pool app with 2 servers, got %+v", after.Pools)
			}
			var total uint64
			for _, s := range p.Servers {
				total += s.Counters.Requests
				g := s.Gauges
				if g.P50Ms == nil || !(*g.P50Ms <= *g.P95Ms && *g.P95Ms <= *g.P99Ms) || *g.P50Ms <= 0 {
					t.Errorf("server %s: bad percentiles %+v", s.Name, g)
				}
			}
			// Each of load's 4 workers may have one request in flight when
			// its deadline cancels it: NGINX logs that request (499 or a
			// late 200) although the client saw no 200.
			if total < uint64(ok) || total > uint64(ok)+loadWorkers {
				t.Errorf("logged %d upstream requests, %d got a 200 (want %d..%d)", total, ok, ok, ok+loadWorkers)
			}
			// In flight at the servers, from the log (InFlight over the
			// window), against the clients' own figure: the upstream time
			// is all of a request's but NGINX's and the client's share.
			var active float64
			for _, s := range p.Servers {
				active += s.Gauges.Active
			}
			t.Logf("in flight: log %.2f, clients %.2f", active, clients)
			if active < 0.6*clients || active > 1.05*clients {
				t.Errorf("in flight at the servers %.2f from the log, clients' own %.2f: want 0.6-1.05 of it", active, clients)
			}
			r, err := Rate(ptrSnap(before[src]), &after)
			if err != nil {
				t.Fatal(err)
			}
			if r.Pool("app").Requests() <= 0 {
				t.Errorf("request rate %v, want > 0", r.Pool("app").Requests())
			}
			// The next window has no request: percentiles are gone, counters stay.
			idle, err := src.Scrape(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range idle.Pool("app").Servers {
				if s.Gauges.P50Ms != nil || s.Counters.Requests == 0 {
					t.Errorf("idle window server %s: %+v", s.Name, s)
				}
			}
		})
	}
}

func ptrSnap(s Snapshot) *Snapshot { return &s }

// TestNginxLogFileTail: the file source starts at the end of the file as
// it was at Open, keeps an unfinished last line for the next scrape, and
// starts over after a truncation.
func TestNginxLogFileTail(t *testing.T) {
	line := func(ms int) string {
		return fmt.Sprintf(`lbtune=1 msec=1795856415.%03d pool=app status=200 rt=0.010 bytes=100 reqlen=50 ua="10.0.0.1:80" us="200" urt="0.%03d"`+"\n", ms, ms)
	}
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte(line(1)+line(2)), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := Open("nginxlog+file://" + path)
	if err != nil {
		t.Fatal(err)
	}
	appendTo := func(s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	third := line(30)
	steps := []struct {
		name         string
		do           func()
		wantRequests uint64 // cumulative on 10.0.0.1:80
		wantP50      float64
	}{
		{"lines before Open are not read", func() {}, 0, 0},
		{"a new line is read", func() { appendTo(line(10)) }, 1, 10},
		{"an unfinished line waits", func() { appendTo(third[:20]) }, 1, 0},
		{"and is read once finished", func() { appendTo(third[20:]) }, 2, 30},
		{"truncation starts over", func() {
			if err := os.WriteFile(path, []byte(line(40)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, 3, 40},
	}
	for _, st := range steps {
		st.do()
		s, err := src.Scrape(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var got uint64
		var p50 float64
		if p := s.Pool("app"); p != nil {
			sv := p.Server("10.0.0.1:80")
			got = sv.Counters.Requests
			if sv.Gauges.P50Ms != nil {
				p50 = *sv.Gauges.P50Ms
			}
		}
		if got != st.wantRequests || p50 != st.wantP50 {
			t.Errorf("%s: requests %d p50 %v, want %d %v", st.name, got, p50, st.wantRequests, st.wantP50)
		}
	}
}

// TestNginxLogServerCap: lines naming more servers than maxLogServers are
// refused (counted as malformed), so stray datagrams cannot grow memory.
func TestNginxLogServerCap(t *testing.T) {
	agg := newLogAggregator(nginxLog)
	for i := 0; i <= maxLogServers; i++ {
		agg.addLine(fmt.Sprintf(`lbtune=1 msec=1795856415.000 pool=app status=200 rt=0.001 bytes=1 reqlen=1 ua="10.%d.%d.%d:80" us="200" urt="0.001"`, i>>16, (i>>8)&255, i&255))
	}
	if agg.servers != maxLogServers || agg.bad != 1 || !errors.Is(agg.lastBad, errTooManyServers) {
		t.Errorf("servers %d bad %d last %v; want %d servers and the extra line refused", agg.servers, agg.bad, agg.lastBad, maxLogServers)
	}
	// A known server is still counted.
	agg.addLine(`lbtune=1 msec=1795856415.000 pool=app status=200 rt=0.001 bytes=1 reqlen=1 ua="10.0.0.0:80" us="200" urt="0.001"`)
	s, err := agg.snapshot("x", time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Pool("app").Server("10.0.0.0:80").Counters.Requests; n != 2 {
		t.Errorf("known server requests = %d, want 2", n)
	}
}
