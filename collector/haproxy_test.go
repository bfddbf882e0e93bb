package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHAProxyCaptures(t *testing.T) {
	dir := captures(t, "haproxy/captures")
	src, err := Open("haproxy+file:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	snaps := scrapeAll(t, src)
	if len(snaps) != 15 {
		t.Fatalf("got %d snapshots, want 15 (one per capture directory)", len(snaps))
	}
	// Times come from ../timeline.tsv, matched by the directory label.
	if got, want := snaps[0].Time, time.Date(2026, 11, 28, 9, 1, 35, 374e6, time.UTC); !got.Equal(want) {
		t.Errorf("capture 01 time = %v, want %v from timeline.tsv", got, want)
	}
	rates := assertRates(t, snaps)
	if r := rates[0].Pool("app").Requests(); r <= 0 {
		t.Errorf("app request rate 01->02 (wrk started) = %v, want > 0", r)
	}
	tests := []struct {
		name    string
		capture int // 1-based directory number
		pool    string
		server  string
		state   State
		weight  int
		absent  bool
	}{
		{"baseline", 2, "app", "s1", StateUp, 5, false},
		{"weight 10", 3, "app", "s1", StateUp, 10, false},
		{"drain", 4, "app", "s2", StateDrain, 3, false},
		{"maint", 6, "app", "s3", StateMaint, 1, false},
		{"going down is still up", 8, "app", "s2", StateUp, 3, false},
		{"down", 9, "app", "s2", StateDown, 3, false},
		{"added server in maint", 11, "app", "s4", StateMaint, 1, false},
		{"added server up", 12, "app", "s4", StateUp, 2, false},
		{"deleted server", 13, "app", "s4", "", 0, true},
		{"static-rr server", 2, "app_static", "x1", StateUp, 5, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := snaps[tc.capture-1]
			if s.Pool("stats") != nil {
				t.Errorf("backend without servers (stats) kept as a pool")
			}
			p := s.Pool(tc.pool)
			if p == nil {
				t.Fatalf("no pool %s", tc.pool)
			}
			sv := p.Server(tc.server)
			if tc.absent {
				if sv != nil {
					t.Fatalf("server %s still present: %+v", tc.server, sv)
				}
				return
			}
			if sv == nil {
				t.Fatalf("no server %s", tc.server)
			}
			if sv.State != tc.state || sv.Weight != tc.weight {
				t.Errorf("state %s weight %d, want %s %d", sv.State, sv.Weight, tc.state, tc.weight)
			}
		})
	}
	// The killed backend collected connection errors.
	if e := snaps[8].Pool("app").Server("s2").Counters.Errors; e == 0 {
		t.Errorf("s2 errors after the kill = 0, want econ > 0")
	}
	// Check status and the four time averages, as in the capture's
	// check_status, qtime, ctime, rtime, ttime columns.
	checks := []struct {
		name                string
		capture             int
		server              string
		check               string
		qtime, ctime, rtime float64
		ttime               float64
	}{
		{"passing check", 2, "s1", "L7OK", 0, 0, 6, 6},
		{"slow server", 2, "s3", "L7OK", 0, 0, 52, 52},
		{"check in progress: '* L7OK' read as L7OK", 7, "s2", "L7OK", 0, 0, 21, 21},
		{"going down: connection refused", 8, "s2", "L4CON", 0, 0, 21, 21},
		{"down", 9, "s2", "L4CON", 0, 0, 21, 21},
		{"maint: no check status", 6, "s3", "", 0, 0, 52, 52},
		{"new server: connect time", 12, "s4", "L7OK", 0, 1, 13, 13},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			sv := snaps[tc.capture-1].Pool("app").Server(tc.server)
			if sv == nil {
				t.Fatalf("no server %s", tc.server)
			}
			g := sv.Gauges
			if sv.CheckStatus != tc.check || g.QueueTimeMs != tc.qtime || g.ConnectTimeMs != tc.ctime || g.ResponseTimeMs != tc.rtime || g.TotalTimeMs != tc.ttime {
				t.Errorf("check %q q/c/r/t %v/%v/%v/%v, want %q %v/%v/%v/%v", sv.CheckStatus, g.QueueTimeMs, g.ConnectTimeMs, g.ResponseTimeMs, g.TotalTimeMs,
					tc.check, tc.qtime, tc.ctime, tc.rtime, tc.ttime)
			}
			if want := tc.qtime + tc.ctime + tc.rtime; g.AvgResponseMs != want {
				t.Errorf("AvgResponseMs %v, want qtime+ctime+rtime %v", g.AvgResponseMs, want)
			}
		})
	}
}

func TestHAProxyEveryCaptureFile(t *testing.T) {
	dir := captures(t, "haproxy/captures")
	var files []string
	for _, name := range []string{"show_stat.csv", "http_stats.csv"} {
		m, err := filepath.Glob(filepath.Join(dir, "*", name))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	timeline, err := readTimeline(filepath.Join(dir, "..", "timeline.tsv"))
	if err != nil || len(timeline) != 15 {
		t.Fatalf("timeline: %d captures, %v", len(timeline), err)
	}
	if len(files) < 15 {
		t.Fatalf("found %d capture files, want >= 15", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			src, err := Open("haproxy+file:" + f)
			if err != nil {
				t.Fatal(err)
			}
			snaps := scrapeAll(t, src)
			if len(snaps) != 1 || snaps[0].Pool("app") == nil || len(snaps[0].Pool("app").Servers) < 3 {
				t.Fatalf("want one snapshot with pool app of >= 3 servers, got %+v", snaps)
			}
			// The time comes from ../../timeline.tsv, not the file's mtime.
			if want := timeline[filepath.Base(filepath.Dir(f))]; !snaps[0].Time.Equal(want) {
				t.Errorf("time %v, want %v from timeline.tsv", snaps[0].Time, want)
			}
		})
	}
}

func TestHAProxyBadInput(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(captures(t, "haproxy/captures"), "02-load-baseline", "show_stat.csv"))
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(good), "\n")
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"empty", "", "no header"},
		{"garbage", "\x00\x01garbage,,,\nmore", "no header"},
		{"html error page", "<html><body>503 Service Unavailable</body></html>", "no header"},
		{"header missing columns", "# pxname,svname,status\napp,s1,UP\n", "no \"qcur\" column"},
		{"short row", header + "\napp,s1,0\n", "fields"},
		{"non-numeric counter", strings.Replace(string(good), "app,s1,0,0,3,5,,1578", "app,s1,0,0,3,5,,x578", 1), "stot"},
		{"unknown status", strings.Replace(string(good), ",UP,5,1,0", ",WEIRD,5,1,0", 1), "unknown status"},
		{"negative gauge", strings.Replace(string(good), "app,s1,0,0,3", "app,s1,0,0,-3", 1), "bad value"},
		{"negative rtime", strings.Replace(string(good), "0,0,6,6,,,,Layer7", "0,0,-6,6,,,,Layer7", 1), "rtime"},
		{"NaN qtime", strings.Replace(string(good), "0,0,6,6,,,,Layer7", "NaN,0,6,6,,,,Layer7", 1), "qtime"},
		{"non-numeric ctime", strings.Replace(string(good), "0,0,6,6,,,,Layer7", "0,x,6,6,,,,Layer7", 1), "ctime"},
		{"unterminated quote", header + "\napp,\"s1,0\n", "line"},
		{"quote inside a field", header + "\napp,s\"1,0\n", "bare \""},
		{"text after a quoted field", header + "\napp,\"s1\"x,0\n", "after a quoted field"},
		{"counter 2^64-1", strings.Replace(string(good), "app,s1,0,0,3,5,,1578", "app,s1,0,0,3,5,,18446744073709551615", 1), "counter requests 18446744073709551615 above"},
		{"negative weight", strings.Replace(string(good), ",UP,5,1,0", ",UP,-5,1,0", 1), "weight"},
		{"weight above MaxWeight", strings.Replace(string(good), ",UP,5,1,0", ",UP,1048577,1,0", 1), "weight 1048577 out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := ParseHAProxyCSV([]byte(tc.doc), "haproxy+file:bad.csv", time.Unix(1, 0))
			if err == nil {
				t.Fatalf("no error, snapshot %+v", snap)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), "haproxy+file:bad.csv") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the source and %q", err, tc.want)
			}
		})
	}
}

// TestDeadAndSlowEndpoints: refused connections, a missing socket and a
// server that stalls 10 s all give a prompt error naming the source.
func TestDeadAndSlowEndpoints(t *testing.T) {
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stall.Close)
	// A unix socket that accepts and never answers.
	sock := filepath.Join(t.TempDir(), "stall.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	refused := freePort(t)
	stallHost := strings.TrimPrefix(stall.URL, "http://")
	tests := []struct {
		name string
		uri  string
		want string
	}{
		{"vts refused", "vts+http://127.0.0.1:" + itoa(refused) + "/status/format/json", "connection refused"},
		{"haproxy http refused", "haproxy+http://127.0.0.1:" + itoa(refused) + "/stats;csv", "connection refused"},
		{"haproxy socket missing", "haproxy+unix://" + filepath.Join(t.TempDir(), "none.sock"), "no such file"},
		{"vts stalls", "vts+http://" + stallHost + "/status/format/json", "deadline exceeded"},
		{"haproxy http stalls", "haproxy+http://" + stallHost + "/stats;csv", "deadline exceeded"},
		{"haproxy socket stalls", "haproxy+unix://" + sock, "deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Open(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			snap, err := src.Scrape(ctx)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("scrape took %v with a 300ms timeout", took)
			}
			if err == nil {
				t.Fatalf("no error, snapshot %+v", snap)
			}
			if !strings.Contains(err.Error(), tc.uri) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the source and %q", err, tc.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestRealHAProxy scrapes a real HAProxy under a small bounded load through
// the stats socket and the stats page: counters grow and rates are positive.
func TestRealHAProxy(t *testing.T) {
	h := startHAProxy(t, backends(t, 3))
	for _, uri := range []string{"haproxy+unix://" + h.socket, "haproxy+" + h.statsURL} {
		t.Run(strings.SplitN(uri, ":", 2)[0], func(t *testing.T) {
			src, err := Open(uri)
			if err != nil {
				t.Fatal(err)
			}
			scrape := func() Snapshot {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				s, err := src.Scrape(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			before := scrape()
			if n := load(t, "http://"+h.frontend+"/", time.Second, 600); n == 0 {
				t.Fatal("no request succeeded through HAProxy")
			}
			after := scrape()
			p := after.Pool("app")
			if p == nil || len(p.Servers) != 3 {
				t.Fatalf("want pool app with 3 servers, got %+v", after.Pools)
			}
			r, err := Rate(&before, &after)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range r.Pool("app").Servers {
				if s.Requests <= 0 || s.Reset {
					t.Errorf("server %s: rate %v reset %v, want > 0 without reset", s.Name, s.Requests, s.Reset)
				}
				if s.State != StateUp {
					t.Errorf("server %s state %s, want up", s.Name, s.State)
				}
			}
			if w := p.Server("s1").Weight; w != 3 {
				t.Errorf("s1 weight %d, want 3", w)
			}
		})
	}
}

// TestRealHAProxyChecks runs HAProxy 2.6 with an HTTP health check on a
// live server (L7OK), on a port where nothing listens (L4CON) and a server
// without check (""), and reads check_status through the stats socket.
func TestRealHAProxyChecks(t *testing.T) {
	live := backends(t, 2)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens here
	h := startHAProxyBackend(t, []string{
		"option httpchk GET /",
		"default-server inter 100ms fall 1 rise 1",
		"server ok " + live[0] + " check",
		"server refused " + dead + " check",
		"server nocheck " + live[1],
	})
	src, err := Open("haproxy+unix://" + h.socket)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		check string
		state State
	}{"ok": {"L7OK", StateUp}, "refused": {"L4CON", StateDown}, "nocheck": {"", StateUp}}
	var got map[string]Server
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		snap, err := src.Scrape(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]Server{}
		done := true
		for _, sv := range snap.Pool("app").Servers {
			got[sv.Name] = sv
			if w := want[sv.Name]; sv.CheckStatus != w.check || sv.State != w.state {
				done = false
			}
		}
		if done && len(got) == len(want) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, w := range want {
		if sv := got[name]; sv.CheckStatus != w.check || sv.State != w.state {
			t.Errorf("server %s: check %q state %s, want %q %s", name, sv.CheckStatus, sv.State, w.check, w.state)
		}
	}
}

// TestHAProxyQuotedField: HAProxy quotes fields holding commas (e.g. a
// check description); the row still maps by header position.
func TestHAProxyQuotedField(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(captures(t, "haproxy/captures"), "02-load-baseline", "show_stat.csv"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1795856501, 0)
	want, err := ParseHAProxyCSV(good, "x", at)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new string }{
		{"comma in quotes", "6,6,,,,Layer7 check passed,", `6,6,,,,"Layer7, check passed",`},
		{"escaped quote", "6,6,,,,Layer7 check passed,", `6,6,,,,"say ""hi""",`},
		{"newline in quotes", "6,6,,,,Layer7 check passed,", "6,6,,,,\"two\nlines\","},
		{"CRLF line ends", "\n", "\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(string(good), tc.old, tc.new, 1)
			if tc.old == "\n" {
				doc = strings.ReplaceAll(string(good), tc.old, tc.new)
			}
			if doc == string(good) {
				t.Fatal("replacement did not apply")
			}
			got, err := ParseHAProxyCSV([]byte(doc), "x", at)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := got.Pool("app").Server("s1"), want.Pool("app").Server("s1"); g == nil || g.Counters != w.Counters || g.Address != w.Address || g.State != w.State {
				t.Errorf("s1 = %+v, want %+v", g, w)
			}
			if len(got.Pools) != len(want.Pools) || len(got.Pool("app").Servers) != 3 {
				t.Errorf("pools %+v", got.Pools)
			}
		})
	}
}

// TestHAProxyAvgResponse checks which of HAProxy's time averages becomes
// AvgResponseMs: the request's queue + connect + response time, not the
// session time ttime, which on keep-alive connections includes the idle
// time between requests (the testbed at 60 req/s had rtime 4-7 ms and
// ttime 48-66 ms while clients measured a mean of 5.4 ms).
func TestHAProxyAvgResponse(t *testing.T) {
	tests := []struct {
		name string
		csv  string
		want float64
	}{
		{"http: qtime+ctime+rtime",
			"# pxname,svname,qcur,scur,stot,bin,bout,econ,eresp,status,weight,bck,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,qtime,ctime,rtime,ttime,mode\n" +
				"be,s1,0,0,10,1,1,0,0,UP,1,0,0,10,0,0,0,1,2,5,60,http\n", 8},
		{"no mode column: http assumed",
			"# pxname,svname,qcur,scur,stot,bin,bout,econ,eresp,status,weight,bck,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,qtime,ctime,rtime,ttime\n" +
				"be,s1,0,0,10,1,1,0,0,UP,1,0,0,10,0,0,0,0,0,5,60\n", 5},
		{"tcp mode: rtime is always 0, ttime is the connection",
			"# pxname,svname,qcur,scur,stot,bin,bout,econ,eresp,status,weight,bck,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,qtime,ctime,rtime,ttime,mode\n" +
				"be,s1,0,0,10,1,1,0,0,UP,1,0,0,0,0,0,0,0,1,0,60,tcp\n", 60},
		{"no rtime column: ttime",
			"# pxname,svname,qcur,scur,stot,bin,bout,econ,eresp,status,weight,bck,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,ttime\n" +
				"be,s1,0,0,10,1,1,0,0,UP,1,0,0,10,0,0,0,60\n", 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseHAProxyCSV([]byte(tc.csv), "test", time.Unix(1795856495, 0))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Pools[0].Servers[0].Gauges.AvgResponseMs; got != tc.want {
				t.Errorf("AvgResponseMs = %v, want %v", got, tc.want)
			}
		})
	}
}
