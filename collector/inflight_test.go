package collector

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestInFlight(t *testing.T) {
	for _, tc := range []struct {
		busyMs float64
		window time.Duration
		want   float64
	}{
		{1500, time.Second, 1.5},
		{250, 500 * time.Millisecond, 0.5},
		{30000, 5 * time.Second, 6},
		{0, time.Second, 0},
		{100, 0, 0},
		{100, -time.Second, 0},
		{-5, time.Second, 0},
	} {
		if got := InFlight(tc.busyMs, tc.window); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("InFlight(%v, %v) = %v, want %v", tc.busyMs, tc.window, got, tc.want)
		}
	}
}

// TestLogInFlight replays request logs whose timers are known and checks
// each window's Active and Queue against the time the requests spent with
// the server and in HAProxy's queue over the window since the previous
// snapshot.
func TestLogInFlight(t *testing.T) {
	type want struct{ active, queue float64 }
	tests := []struct {
		name   string
		scheme string
		lines  []string
		// per window, per server
		want []map[string]want
	}{
		{
			name:   "haproxy",
			scheme: "haproxylog",
			lines: []string{
				// window 1 [0 s, 1 s): s1 queued 100 ms then served 200 ms; s1
				// 400 ms after a 5 ms receive; s2 600 ms.
				`127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe app/s1 0/100/0/150/300 200 175 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
				`127.0.0.1:1 [28/Nov/2026:09:01:35.200] fe app/s1 5/0/0/390/405 200 175 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
				`127.0.0.1:1 [28/Nov/2026:09:01:35.300] fe app/s2 0/0/1/599/600 200 175 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
				// window 3 [2 s, 3 s), 2 s after window 1's end: s2 aborted
				// in the queue after 1000 ms (Tw -1); s1 answered by a 503
				// after 300 ms in the queue and 100 ms on the server.
				`127.0.0.1:1 [28/Nov/2026:09:01:37.100] fe app/s2 0/-1/-1/-1/1000 503 0 - - CQ-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
				`127.0.0.1:1 [28/Nov/2026:09:01:37.500] fe app/s1 0/300/0/100/400 503 175 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
			},
			want: []map[string]want{
				{"s1": {0.6, 0.1}, "s2": {0.6, 0}},
				{"s1": {0.05, 0.15}, "s2": {0, 0.5}},
			},
		},
		{
			// A request of 60 s (2 s queued) logged in a 1 s window was in
			// flight for at most that second: it counts 1, split as its time.
			name:   "haproxy, one long request",
			scheme: "haproxylog",
			lines: []string{
				`127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe app/s1 0/2000/0/58000/60000 200 175 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
				`127.0.0.1:1 [28/Nov/2026:09:01:35.500] fe app/s2 0/0/0/200/200 200 175 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
			},
			want: []map[string]want{
				{"s1": {58.0 / 60, 2.0 / 60}, "s2": {0.2, 0}},
			},
		},
		{
			name:   "nginx",
			scheme: "nginxlog",
			lines: []string{
				// window 1: a retry, 46 ms on 18083 then 25 ms on 18082,
				// and 929 ms on 18082.
				`lbtune=1 msec=1795856415.100 pool=app status=200 rt=0.071 bytes=30 reqlen=80 ua="127.0.0.1:18083, 127.0.0.1:18082" us="502, 200" urt="0.046, 0.025"`,
				`lbtune=1 msec=1795856415.900 pool=app status=200 rt=0.930 bytes=30 reqlen=80 ua="127.0.0.1:18082" us="200" urt="0.929"`,
				// window 2: 18083 500 ms.
				`lbtune=1 msec=1795856416.500 pool=app status=200 rt=0.500 bytes=30 reqlen=80 ua="127.0.0.1:18083" us="200" urt="0.500"`,
			},
			want: []map[string]want{
				{"127.0.0.1:18082": {0.954, 0}, "127.0.0.1:18083": {0.046, 0}},
				{"127.0.0.1:18082": {0, 0}, "127.0.0.1:18083": {0.5, 0}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "access.log")
			if err := os.WriteFile(path, []byte(strings.Join(tc.lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			src, err := Open(tc.scheme + "+file:" + path + "?replay=1s")
			if err != nil {
				t.Fatal(err)
			}
			snaps := scrapeAll(t, src)
			if len(snaps) != len(tc.want) {
				t.Fatalf("%d windows, want %d", len(snaps), len(tc.want))
			}
			for i, w := range tc.want {
				p := snaps[i].Pools[0]
				for name, ww := range w {
					s := p.Server(name)
					if s == nil {
						t.Fatalf("window %d: no server %s in %+v", i+1, name, p.Servers)
					}
					if math.Abs(s.Gauges.Active-ww.active) > 1e-9 || math.Abs(s.Gauges.Queue-ww.queue) > 1e-9 {
						t.Errorf("window %d server %s: active %v queue %v, want %v %v", i+1, name, s.Gauges.Active, s.Gauges.Queue, ww.active, ww.queue)
					}
				}
			}
		})
	}
	// A whole log read at once has no window: no estimate.
	snap, err := ParseHAProxyLog([]byte(tests[0].lines[0]+"\n"), "test", time.Date(2026, 11, 28, 9, 2, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if g := snap.Pools[0].Servers[0].Gauges; g.Active != 0 || g.Queue != 0 {
		t.Errorf("whole log: active %v queue %v, want 0 0", g.Active, g.Queue)
	}
}

// TestVTSInFlight replays vts documents and checks Active against the
// growth of requestMsecCounter over the growth of nowMsec, with none for
// the first document, a new peer and a counter that went back, and at most
// one per request completed.
func TestVTSInFlight(t *testing.T) {
	dir := t.TempDir()
	type peer struct {
		name          string
		requests, sum uint64
	}
	doc := func(now uint64, peers ...peer) string {
		var ps []string
		for _, p := range peers {
			ps = append(ps, fmt.Sprintf(`{"server":%q,"requestCounter":%d,"inBytes":0,"outBytes":0,"responses":{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0},"requestMsecCounter":%d,"requestMsec":10,"weight":1,"backup":false,"down":false}`,
				p.name, p.requests, p.sum))
		}
		return fmt.Sprintf(`{"nowMsec":%d,"upstreamZones":{"app":[%s]}}`, now, strings.Join(ps, ","))
	}
	docs := []string{
		doc(1_000_000, peer{"a:1", 100, 1000}),
		doc(1_002_000, peer{"a:1", 400, 4000}, peer{"b:1", 50, 500}),
		doc(1_007_000, peer{"a:1", 10, 100}, peer{"b:1", 1050, 10500}),
		// b: one request of 60 s ended in these 2 s: it counts 1.
		doc(1_009_000, peer{"a:1", 10, 100}, peer{"b:1", 1051, 70500}),
	}
	for i, d := range docs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d.json", i)), []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src, err := Open("vts+file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	snaps := scrapeAll(t, src)
	if len(snaps) != 4 {
		t.Fatalf("%d snapshots, want 4", len(snaps))
	}
	want := []map[string]float64{
		{"a:1": 0},
		{"a:1": 1.5, "b:1": 0}, // 3000 ms over 2 s; b new
		{"a:1": 0, "b:1": 2},   // a went back (restart); b 10000 ms over 5 s
		{"a:1": 0, "b:1": 1},   // a idle; b's one request, 60000 ms over 2 s
	}
	for i, w := range want {
		for name, v := range w {
			s := snaps[i].Pools[0].Server(name)
			if s == nil || math.Abs(s.Gauges.Active-v) > 1e-9 {
				t.Errorf("document %d server %s: %+v, want active %v", i+1, name, s, v)
			}
		}
	}
}

// TestRealHAProxyLogInFlight runs a real HAProxy whose two servers take one
// request at a time (maxconn 1) under more concurrent clients than that,
// and checks the request log's Active and Queue against HAProxy's own
// scur and qcur gauges, sampled through the stats socket over the same
// window.
func TestRealHAProxyLogInFlight(t *testing.T) {
	needBinary(t, haproxyBin)
	udp, err := Open("haproxylog+udp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.(*logUDP).Close() })
	b := slowBackends(t, 2, 20*time.Millisecond)
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	front := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`global
  log %s local0 info
  stats socket %s mode 600 level admin
defaults
  mode http
  log global
  option httplog
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  timeout queue 10s
frontend fe
  bind %s
  default_backend app
backend app
  balance roundrobin
  server s1 %s maxconn 1
  server s2 %s maxconn 1
`, udp.(*logUDP).Addr(), sock, front, b[0], b[1])
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := startProcess(t, haproxyBin, "-db", "-f", path)
	waitTCP(t, front, out)
	stats, err := Open("haproxy+unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := udp.Scrape(context.Background()); err != nil { // the window starts here
		t.Fatal(err)
	}
	// Sample HAProxy's gauges until the window ends.
	var active, queue float64
	var n int
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			s, err := stats.Scrape(context.Background())
			if err != nil {
				continue
			}
			p := s.Pool("app")
			if p == nil {
				continue
			}
			n++
			queue += p.Queue
			for _, sv := range p.Servers {
				active += sv.Gauges.Active
				queue += sv.Gauges.Queue
			}
		}
	}()
	ok := load(t, "http://"+front+"/", 2*time.Second, 2000)
	time.Sleep(300 * time.Millisecond) // let the last datagrams land
	close(done)
	wg.Wait()
	snap, err := udp.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ok == 0 || n < 20 {
		t.Fatalf("%d requests succeeded, %d samples of the stats socket", ok, n)
	}
	p := snap.Pool("app")
	if p == nil {
		t.Fatalf("no pool app in %+v", snap.Pools)
	}
	var logActive, logQueue float64
	for _, s := range p.Servers {
		logActive += s.Gauges.Active
		logQueue += s.Gauges.Queue
	}
	active, queue = active/float64(n), queue/float64(n)
	t.Logf("log: active %.2f queue %.2f; stats socket (%d samples): active %.2f queue %.2f; %d requests", logActive, logQueue, n, active, queue, ok)
	// Both servers busy most of the load's 2 s of the ~2.3 s window, and
	// the load's other clients waiting.
	if logActive < 1 || logQueue < 0.5 {
		t.Errorf("log: active %.2f queue %.2f, want >= 1 and >= 0.5 (2 servers of maxconn 1, %d clients)", logActive, logQueue, loadWorkers)
	}
	for _, c := range []struct {
		name      string
		log, real float64
	}{{"active", logActive, active}, {"queue", logQueue, queue}} {
		if math.Abs(c.log-c.real) > 0.15+0.2*c.real {
			t.Errorf("%s: log %.2f, stats socket %.2f: want within 0.15 + 20%%", c.name, c.log, c.real)
		}
	}
}
