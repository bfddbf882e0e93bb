package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// This file tests the prom+http source against a real Prometheus (Debian
// prometheus 2.42) scraping a real HAProxy's exporter every second, and its
// failure cases against a dead, slow or canned Prometheus.

const prometheusBin = "/usr/bin/prometheus"

// promScrape is the scrape interval of the test Prometheus.
const promScrape = time.Second

// needPrometheus fails (or, with -short only, skips) when the prometheus
// binary is missing.
func needPrometheus(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(prometheusBin); err != nil {
		if testing.Short() {
			t.Skipf("%s is missing (%v) and -short is set", prometheusBin, err)
		}
		t.Fatalf("%s is missing (%v): install it (scripts/deps.sh prometheus) to run the Prometheus tests", prometheusBin, err)
	}
}

// startPrometheus runs Prometheus scraping targets (host:port) as job with
// a 1 s interval, storage in t.TempDir(), and waits for /-/ready (bounded).
// It returns the base URL http://127.0.0.1:PORT.
func startPrometheus(t *testing.T, job string, targets ...string) string {
	t.Helper()
	needPrometheus(t)
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets: [%s]\n",
		promScrape, promScrape, job, strings.Join(quoted, ", "))
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	out := startProcess(t, prometheusBin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	base := "http://" + listen
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("prometheus at %s not ready within 30s; output:\n%s", base, out)
	return ""
}

// startHAProxyExporter runs HAProxy with backend app over servers (weights
// n..1), a stats socket, and the Prometheus exporter on its own frontend
// (so that scraping it does not count in app). It returns the HAProxy and
// the exporter's host:port.
func startHAProxyExporter(t *testing.T, servers []string) (realHAProxy, string) {
	t.Helper()
	needBinary(t, haproxyBin)
	dir := t.TempDir()
	h := realHAProxy{
		frontend: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		socket:   filepath.Join(dir, "admin.sock"),
	}
	exporter := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global\n  stats socket %s mode 600 level admin\n  maxconn 500\n", h.socket)
	cfg.WriteString("defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n")
	fmt.Fprintf(&cfg, "frontend fe\n  bind %s\n  default_backend app\n", h.frontend)
	cfg.WriteString("backend app\n  balance roundrobin\n")
	for i, s := range servers {
		fmt.Fprintf(&cfg, "  server s%d %s weight %d\n", i+1, s, len(servers)-i)
	}
	fmt.Fprintf(&cfg, "frontend prom\n  bind %s\n  http-request use-service prometheus-exporter if { path /metrics }\n", exporter)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := startProcess(t, haproxyBin, "-db", "-f", path)
	waitTCP(t, h.frontend, out)
	waitTCP(t, exporter, out)
	return h, exporter
}

// slowBackends starts n httptest servers answering after (i+1)*base.
func slowBackends(t *testing.T, n int, base time.Duration) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		delay := time.Duration(i+1) * base
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(delay)
			fmt.Fprintln(w, "ok")
		}))
		t.Cleanup(srv.Close)
		addrs[i] = strings.TrimPrefix(srv.URL, "http://")
	}
	return addrs
}

// waitPromScrape scrapes src until it gives a snapshot whose time is after
// since, for at most 15 s.
func waitPromScrape(t *testing.T, src *PromSource, since time.Time) Snapshot {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		snap, err := src.Scrape(ctx)
		cancel()
		if err == nil && snap.Time.After(since) {
			return snap
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no prometheus snapshot after %s within 45s; last error: %v", since, last)
	return Snapshot{}
}

func scrapeDirect(t *testing.T, src Source) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	snap, err := src.Scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestPromMatchesHAProxy drives a bounded load through a real HAProxy and
// reads it both directly (stats socket) and through a real Prometheus
// scraping HAProxy's exporter every second.
//
// Under load, the request rate of each server over the same ~4 s window
// read both ways agrees within 25%: the Prometheus window starts and ends at
// the scrapes before the direct reads (up to 1 s earlier each, the
// scrape-alignment error), so on a load of steady rate the two windows
// differ by at most 1 s at each end of 4 s. After the load and two more
// scrapes, every counter, weight, state and the latency (qtime + ctime +
// rtime) read through Prometheus equals the direct read (latency within
// 0.5 ms: the exporter's averages and the CSV's are the same integer ms).
func TestPromMatchesHAProxy(t *testing.T) {
	needPrometheus(t)
	h, exporter := startHAProxyExporter(t, slowBackends(t, 2, 5*time.Millisecond))
	prom := startPrometheus(t, "haproxy", exporter)
	src, err := OpenProm("prom+" + prom + "?job=haproxy&proxy=app&stale=5s")
	if err != nil {
		t.Fatal(err)
	}
	direct, err := Open("haproxy+unix://" + h.socket)
	if err != nil {
		t.Fatal(err)
	}
	first := waitPromScrape(t, src, time.Time{})
	if first.Pool("app") == nil || len(first.Pools) != 1 {
		t.Fatalf("pools via prometheus = %+v, want only app (proxy=app)", first.Pools)
	}

	// Load for 6 s in the background (at most 6000 requests); read both
	// ways at ~1 s and ~5 s.
	var wg sync.WaitGroup
	var served int
	wg.Add(1)
	go func() { defer wg.Done(); served = load(t, "http://"+h.frontend+"/", 6*time.Second, 6000) }()
	time.Sleep(1200 * time.Millisecond)
	d0, p0 := scrapeDirect(t, direct), waitPromScrape(t, src, first.Time)
	time.Sleep(4 * time.Second)
	d1, p1 := scrapeDirect(t, direct), waitPromScrape(t, src, p0.Time)
	wg.Wait()
	if served < 100 {
		t.Fatalf("load served only %d requests", served)
	}
	rd, err := Rate(&d0, &d1)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := Rate(&p0, &p1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s1", "s2"} {
		var a, b *ServerRates
		for i := range rd.Pool("app").Servers {
			if s := &rd.Pool("app").Servers[i]; s.Name == name {
				a = s
			}
		}
		for i := range rp.Pool("app").Servers {
			if s := &rp.Pool("app").Servers[i]; s.Name == name {
				b = s
			}
		}
		if a == nil || b == nil {
			t.Fatalf("server %s missing: direct %v, prometheus %v", name, a, b)
		}
		diff := math.Abs(a.Requests-b.Requests) / a.Requests
		t.Logf("%s: direct %.1f req/s over %.2fs, via prometheus %.1f req/s over %.2fs (%.1f%% apart); latency %.2f ms vs %.2f ms",
			name, a.Requests, rd.Seconds(), b.Requests, rp.Seconds(), 100*diff, a.MeanLatencyMs, b.MeanLatencyMs)
		if a.Requests < 5 || diff > 0.25 {
			t.Errorf("%s request rate: direct %.2f/s, via prometheus %.2f/s: more than 25%% apart", name, a.Requests, b.Requests)
		}
	}

	// Idle: two more scrapes, then every value agrees.
	time.Sleep(2500 * time.Millisecond)
	pEnd := waitPromScrape(t, src, p1.Time.Add(2*promScrape))
	dEnd := scrapeDirect(t, direct)
	for _, sd := range dEnd.Pool("app").Servers {
		sp := pEnd.Pool("app").Server(sd.Name)
		if sp == nil {
			t.Fatalf("server %s missing via prometheus", sd.Name)
		}
		cd, cp := sd.Counters, sp.Counters
		cd.LatencySumMs, cp.LatencySumMs = 0, 0
		if cd != cp {
			t.Errorf("%s counters: direct %+v, via prometheus %+v", sd.Name, cd, cp)
		}
		if sd.Weight != sp.Weight || sd.State != sp.State {
			t.Errorf("%s weight/state: direct %d/%s, via prometheus %d/%s", sd.Name, sd.Weight, sd.State, sp.Weight, sp.State)
		}
		if math.Abs(sd.Gauges.AvgResponseMs-sp.Gauges.AvgResponseMs) > 0.5 || sd.Gauges.AvgResponseMs < 4 {
			t.Errorf("%s latency (qtime+ctime+rtime): direct %.3f ms, via prometheus %.3f ms", sd.Name, sd.Gauges.AvgResponseMs, sp.Gauges.AvgResponseMs)
		}
		if math.Abs(sd.Gauges.TotalTimeMs-sp.Gauges.TotalTimeMs) > 0.5 {
			t.Errorf("%s ttime: direct %.3f ms, via prometheus %.3f ms", sd.Name, sd.Gauges.TotalTimeMs, sp.Gauges.TotalTimeMs)
		}
	}

	// Backfill the window just read: one snapshot per scrape, the last
	// equal to the live read of the same scrape.
	// The steps start a whole number of scrape periods before the live
	// read, so the last one lands on it (scrapes drift off whole seconds
	// on a busy machine: from first.Time the last step could fall just
	// before the live scrape and see the one before).
	var mem memAppender
	span := int(pEnd.Time.Sub(first.Time) / promScrape)
	from := pEnd.Time.Add(-time.Duration(span) * promScrape)
	st, err := src.Backfill(context.Background(), from, pEnd.Time, promScrape, &mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backfill %s..%s: %+v", from.Format(time.RFC3339), pEnd.Time.Format(time.RFC3339), st)
	// One snapshot per scrape: span+1 when every scrape ran on time; a busy
	// machine delays some (then a step repeats the one before).
	if st.Appended < span/2 || st.Appended > span+1 || st.Resets != 0 || st.Bad != 0 || st.Stale != 0 {
		t.Errorf("backfill stats %+v: want %d to %d snapshots and no skips", st, span/2, span+1)
	}
	if n := len(mem.snaps); n == 0 || !mem.snaps[n-1].Time.Equal(pEnd.Time) {
		t.Fatalf("backfill's last snapshot is not the live one at %s", pEnd.Time)
	}
	if got, want := mem.snaps[len(mem.snaps)-1].Pool("app").Server("s1").Counters, pEnd.Pool("app").Server("s1").Counters; got != want {
		t.Errorf("backfilled s1 counters %+v, live %+v", got, want)
	}
}

// fakeProm is a canned Prometheus HTTP API: /api/v1/query answers the
// series query with values (the exposition of one HAProxy server) and the
// max/min(timestamp(...)) queries with newest and oldest.
type fakeProm struct {
	mu             sync.Mutex
	values         []fakeSeries
	newest, oldest time.Time
	delay          time.Duration
}

type fakeSeries struct {
	labels string // JSON object body without braces
	value  float64
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	values, newest, oldest, delay := f.values, f.newest, f.oldest, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	_ = r.ParseForm()
	q := r.Form.Get("query")
	var result []string
	switch {
	case strings.HasPrefix(q, "max("):
		if len(values) > 0 {
			result = append(result, fmt.Sprintf(`{"metric":{},"value":[%d,"%.3f"]}`, time.Now().Unix(), float64(newest.UnixMilli())/1000))
		}
	case strings.HasPrefix(q, "min("):
		if len(values) > 0 {
			result = append(result, fmt.Sprintf(`{"metric":{},"value":[%d,"%.3f"]}`, time.Now().Unix(), float64(oldest.UnixMilli())/1000))
		}
	default:
		for _, s := range values {
			result = append(result, fmt.Sprintf(`{"metric":{%s},"value":[%d,"%g"]}`, s.labels, time.Now().Unix(), s.value))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, strings.Join(result, ","))
}

// haproxyServerSeries is one HAProxy server's series with requests and
// 2xx responses n.
func haproxyServerSeries(n float64) []fakeSeries {
	l := func(name, extra string) string {
		return fmt.Sprintf(`"__name__":%q,"job":"haproxy","proxy":"app","server":"s1"%s`, name, extra)
	}
	return []fakeSeries{
		{l("haproxy_server_sessions_total", ""), n},
		{l("haproxy_server_bytes_in_total", ""), 10 * n},
		{l("haproxy_server_bytes_out_total", ""), 20 * n},
		{l("haproxy_server_http_responses_total", `,"code":"2xx"`), n},
		{l("haproxy_server_current_sessions", ""), 1},
		{l("haproxy_server_current_queue", ""), 0},
		{l("haproxy_server_weight", ""), 3},
		{l("haproxy_server_status", `,"state":"UP"`), 1},
		{l("haproxy_server_status", `,"state":"DOWN"`), 0},
		{l("haproxy_server_response_time_average_seconds", ""), 0.004},
	}
}

// TestPromFailures: a dead or slow Prometheus, an empty result, a stale
// series, a counter reset and an ambiguous selector each end the first
// scrape of a record loop with one error line naming the cause, and nothing
// is appended.
func TestPromFailures(t *testing.T) {
	now := time.Now()
	dead := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	tests := []struct {
		name string
		// prime is the state of the fake before a first, good scrape (nil:
		// no first scrape).
		prime *fakeProm
		fake  *fakeProm
		url   string // instead of the fake
		want  error
		line  string
	}{
		{name: "dead", url: dead, fake: &fakeProm{}, line: "connection refused"},
		{name: "slow", fake: &fakeProm{values: haproxyServerSeries(5), newest: now, oldest: now, delay: 2 * time.Second},
			want: context.DeadlineExceeded, line: "context deadline exceeded"},
		{name: "empty result", fake: &fakeProm{}, want: ErrEmptyResult, line: `returned no series for the selector: haproxy_server_*{job="haproxy",proxy=~"app"}`},
		{name: "stale series", fake: &fakeProm{values: haproxyServerSeries(5), newest: now, oldest: now.Add(-2 * time.Minute)},
			want: ErrStale, line: "the oldest sample is 2m"},
		{name: "counter reset",
			prime: &fakeProm{values: haproxyServerSeries(500), newest: now.Add(-time.Second), oldest: now.Add(-time.Second)},
			fake:  &fakeProm{values: haproxyServerSeries(3), newest: now, oldest: now},
			want:  ErrCounterReset, line: "app/s1 requests 500 -> 3"},
		{name: "two targets", fake: &fakeProm{values: append(haproxyServerSeries(5),
			fakeSeries{`"__name__":"haproxy_server_weight","job":"haproxy","instance":"b","proxy":"app","server":"s1"`, 3}), newest: now, oldest: now},
			want: ErrIncomplete, line: "narrow the URI with instance="},
		{name: "NaN", fake: &fakeProm{values: append(haproxyServerSeries(5)[:6],
			fakeSeries{`"__name__":"haproxy_server_weight","job":"haproxy","proxy":"app","server":"s1"`, math.NaN()}), newest: now, oldest: now},
			want: ErrIncomplete, line: "= NaN"},
		{name: "no status", fake: &fakeProm{values: haproxyServerSeries(5)[:7], newest: now, oldest: now},
			want: ErrIncomplete, line: "has no haproxy_server_status series"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			fake := &fakeProm{}
			if url == "" {
				srv := httptest.NewServer(fake)
				defer srv.Close()
				url = srv.URL
			}
			src, err := OpenProm("prom+" + url + "?job=haproxy&proxy=app&stale=10s")
			if err != nil {
				t.Fatal(err)
			}
			if tc.prime != nil {
				fake.set(tc.prime)
				if _, err := src.Scrape(context.Background()); err != nil {
					t.Fatalf("priming scrape: %v", err)
				}
			}
			fake.set(tc.fake)
			var logs strings.Builder
			var mem memAppender
			loop := &Loop{Source: src, Interval: time.Second, Timeout: 500 * time.Millisecond, Appender: &mem,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)), FailFast: true}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = loop.Run(ctx)
			if !errors.Is(err, ErrFirstScrape) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Run = %v, want %v and %v", err, ErrFirstScrape, tc.want)
			}
			if !strings.Contains(err.Error(), tc.line) || strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("error %q: want one line containing %q", err, tc.line)
			}
			if len(mem.snaps) != 0 {
				t.Errorf("%d snapshots appended after %v", len(mem.snaps), err)
			}
			t.Logf("%v", err)
		})
	}
}

func (f *fakeProm) set(o *fakeProm) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values, f.newest, f.oldest, f.delay = o.values, o.newest, o.oldest, o.delay
}

// TestPromCounterResetRecovers: after a reset the next scrape succeeds
// (the reset snapshot is the new baseline).
func TestPromCounterResetRecovers(t *testing.T) {
	now := time.Now()
	fake := &fakeProm{values: haproxyServerSeries(500), newest: now.Add(-2 * time.Second), oldest: now.Add(-2 * time.Second)}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	src, err := OpenProm("prom+" + srv.URL + "?job=haproxy")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		n    float64
		at   time.Time
		want error
	}{
		{500, now.Add(-2 * time.Second), nil},
		{500, now.Add(-2 * time.Second), ErrNotLater},
		{3, now.Add(-time.Second), ErrCounterReset},
		{9, now, nil},
	}
	for i, st := range steps {
		fake.set(&fakeProm{values: haproxyServerSeries(st.n), newest: st.at, oldest: st.at})
		snap, err := src.Scrape(context.Background())
		if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("step %d: err %v, want %v", i, err, st.want)
		}
		if err == nil && snap.Pool("app").Server("s1").Counters.Requests != uint64(st.n) {
			t.Fatalf("step %d: requests %d, want %v", i, snap.Pool("app").Server("s1").Counters.Requests, st.n)
		}
	}
}

// TestOpenProm checks the URI's selectors and its errors.
func TestOpenProm(t *testing.T) {
	tests := []struct {
		uri, query, err string
	}{
		{uri: "prom+http://127.0.0.1:9090?job=haproxy&proxy=web,api",
			query: `job="haproxy",proxy=~"web|api"}`},
		{uri: "prom+http://127.0.0.1:9090/prom?job=nginx&upstream=back.end&instance=h:1",
			query: `job="nginx",instance="h:1",upstream=~"back\\.end"}`},
		{uri: "prom+http://127.0.0.1:9090?exporter=vts", query: `nginx_vts_upstream_request_seconds"}`},
		{uri: "prom+http://127.0.0.1:9090?job=a&proxy=x&upstream=y", err: "not both"},
		{uri: "prom+http://127.0.0.1:9090?jobs=a", err: `unknown parameter "jobs"`},
		{uri: "prom+http://127.0.0.1:9090?stale=-1s", err: "positive duration"},
		{uri: "prom+http://127.0.0.1:9090?exporter=nginx", err: "want haproxy or vts"},
		{uri: "prom+ftp://x", err: "unknown source scheme"},
		{uri: "prom+http://?job=a", err: "want prom+http://HOST:PORT"},
	}
	for _, tc := range tests {
		s, err := Open(tc.uri)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Open(%q) = %v, want error containing %q", tc.uri, err, tc.err)
			}
		case err != nil:
			t.Errorf("Open(%q): %v", tc.uri, err)
		case !strings.HasSuffix(s.(*PromSource).Query(), tc.query):
			t.Errorf("Open(%q).Query() = %s, want suffix %s", tc.uri, s.(*PromSource).Query(), tc.query)
		}
	}
}

// vtsExporter serves nginx-module-vts's Prometheus format for one upstream
// "back" with two peers whose counters grow by 10 requests per GET.
type vtsExporter struct {
	mu sync.Mutex
	n  int
}

// restart sets the counters back to zero, as an NGINX restart does.
func (v *vtsExporter) restart() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.n = 0
}

func (v *vtsExporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	v.n++
	n := v.n * 10
	v.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, "# HELP nginx_vts_upstream_requests_total The upstream requests counter\n# TYPE nginx_vts_upstream_requests_total counter\n")
	for i, peer := range []string{"127.0.0.1:8081", "127.0.0.1:8082"} {
		k := n * (i + 1)
		for c, code := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
			val := 0
			switch c {
			case 1:
				val = k - k/10
			case 4:
				val = k / 10
			}
			fmt.Fprintf(w, "nginx_vts_upstream_requests_total{upstream=\"back\",backend=%q,code=%q} %d\n", peer, code, val)
		}
		fmt.Fprintf(w, "nginx_vts_upstream_requests_total{upstream=\"back\",backend=%q,code=\"total\"} %d\n", peer, k)
		fmt.Fprintf(w, "nginx_vts_upstream_bytes_total{upstream=\"back\",backend=%q,direction=\"in\"} %d\n", peer, 100*k)
		fmt.Fprintf(w, "nginx_vts_upstream_bytes_total{upstream=\"back\",backend=%q,direction=\"out\"} %d\n", peer, 1000*k)
		fmt.Fprintf(w, "nginx_vts_upstream_request_seconds_total{upstream=\"back\",backend=%q} %.3f\n", peer, 0.025*float64(k))
		fmt.Fprintf(w, "nginx_vts_upstream_request_seconds{upstream=\"back\",backend=%q} %.3f\n", peer, 0.025)
	}
}

// TestPromVTS reads nginx-module-vts's Prometheus format through a real
// Prometheus: per peer, the counters are the exposition's (requests the
// sum of the classes, not code="total"), the latency sum and average are in
// ms, and the interval mean latency from two snapshots is exact.
func TestPromVTS(t *testing.T) {
	needPrometheus(t)
	vts := &vtsExporter{}
	exp := httptest.NewServer(vts)
	defer exp.Close()
	prom := startPrometheus(t, "nginx", strings.TrimPrefix(exp.URL, "http://"))
	src, err := Open("prom+" + prom + "?job=nginx&upstream=back&stale=5s")
	if err != nil {
		t.Fatal(err)
	}
	ps := src.(*PromSource)
	a := waitPromScrape(t, ps, time.Time{})
	b := waitPromScrape(t, ps, a.Time)
	for _, snap := range []Snapshot{a, b} {
		p := snap.Pool("back")
		if p == nil || len(p.Servers) != 2 {
			t.Fatalf("pools %+v, want back with 2 peers", snap.Pools)
		}
		s1, s2 := p.Servers[0], p.Servers[1]
		k := s1.Counters.Requests
		if k == 0 || k%10 != 0 || s2.Counters.Requests != 2*k {
			t.Fatalf("requests %d and %d: want a multiple of 10 and twice it", k, s2.Counters.Requests)
		}
		want := Counters{Requests: k, BytesIn: 100 * k, BytesOut: 1000 * k, Responses: [5]uint64{0, k - k/10, 0, 0, k / 10}, LatencySumMs: 25 * k}
		if s1.Counters != want || s1.Name != "127.0.0.1:8081" || s1.Address != s1.Name || s1.State != StateUp || s1.Gauges.AvgResponseMs != 25 {
			t.Errorf("peer %+v, want counters %+v, up, 25 ms", s1, want)
		}
	}
	r, err := Rate(&a, &b)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Pool("back").Servers[0].MeanLatencyMs; math.Abs(got-25) > 1e-9 {
		t.Errorf("interval mean latency %v ms, want 25", got)
	}
	// The exporter has no in-flight gauge: the source estimates it from the
	// latency sum's growth over the samples' interval (InFlight), nothing
	// for the first snapshot.
	for i := range b.Pool("back").Servers {
		sa, sb := a.Pool("back").Servers[i], b.Pool("back").Servers[i]
		want := min(float64(sb.Counters.LatencySumMs-sa.Counters.LatencySumMs)/float64(b.Time.Sub(a.Time).Milliseconds()),
			float64(sb.Counters.Requests-sa.Counters.Requests))
		if sa.Gauges.Active != 0 || want <= 0 || math.Abs(sb.Gauges.Active-want) > 1e-9 {
			t.Errorf("peer %s: active %v then %v, want 0 then %v", sb.Name, sa.Gauges.Active, sb.Gauges.Active, want)
		}
	}

	// The same real Prometheus, failing: no series for the selector, a
	// limit on age no sample meets, and a restart of the exporter.
	for _, tc := range []struct {
		uri  string
		want error
		line string
	}{
		{"?job=nope&exporter=vts", ErrEmptyResult, `no series for the selector: nginx_vts_upstream_*{job="nope"}`},
		{"?job=nginx&upstream=other", ErrEmptyResult, `nginx_vts_upstream_*{job="nginx",upstream=~"other"}`},
		{"?job=nginx&upstream=back&stale=1ms", ErrStale, "more than stale=1ms"},
	} {
		bad, err := OpenProm("prom+" + prom + tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Scrape(context.Background())
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.line) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %v and %q", tc.uri, err, tc.want, tc.line)
		}
	}
	vts.restart()
	// Generous: Prometheus scrapes every second, but a CI machine running
	// every package at once has stalled it for 10 s (the stop of
	// 2026-12-03); the loop ends at the first reset it reports.
	deadline := time.Now().Add(45 * time.Second)
	for {
		_, err := ps.Scrape(context.Background())
		if errors.Is(err, ErrCounterReset) {
			t.Logf("%v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no counter reset reported within 45 s of the exporter's restart; last: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	after := waitPromScrape(t, ps, time.Time{})
	if got := after.Pool("back").Servers[0].Counters.Requests; got > 30 {
		t.Errorf("after the reset, requests %d: want the restarted exporter's (<= 30)", got)
	}
}

// FuzzPromAnswer feeds arbitrary vectors (the "result" of Prometheus'
// answer to the series query, decoded with common/model as client_golang
// does) to the conversion into a Snapshot: it must not panic, and a
// snapshot it returns is valid and has one state per server.
func FuzzPromAnswer(f *testing.F) {
	now := time.Now()
	render := func(values []fakeSeries) string {
		parts := make([]string, len(values))
		for i, s := range values {
			parts[i] = fmt.Sprintf(`{"metric":{%s},"value":[%d,"%g"]}`, s.labels, now.Unix(), s.value)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	f.Add(render(haproxyServerSeries(5)), false)
	f.Add(render(haproxyServerSeries(1e20)), false)
	f.Add(render(append(haproxyServerSeries(5), fakeSeries{`"__name__":"haproxy_backend_current_queue","proxy":"app"`, 2})), false)
	f.Add(render(nil), false)
	f.Add(`[{"metric":{"__name__":"haproxy_server_weight","proxy":"a","server":"b"},"value":[1,"-Inf"]}]`, false)
	f.Add(`[{"metric":{"__name__":"nginx_vts_upstream_requests_total","upstream":"u","backend":"b","code":"2xx"},"value":[1,"7"]},`+
		`{"metric":{"__name__":"nginx_vts_upstream_bytes_total","upstream":"u","backend":"b","direction":"in"},"value":[1,"70"]}]`, true)
	f.Fuzz(func(t *testing.T, answer string, vts bool) {
		var vec model.Vector
		if err := json.Unmarshal([]byte(answer), &vec); err != nil {
			return
		}
		uri := "prom+http://127.0.0.1:9?job=haproxy"
		if vts {
			uri = "prom+http://127.0.0.1:9?job=nginx&exporter=vts"
		}
		src, err := OpenProm(uri)
		if err != nil {
			t.Fatal(err)
		}
		samples := make([]promSample, len(vec))
		for i, s := range vec {
			samples[i] = promSample{m: s.Metric, v: float64(s.Value)}
		}
		snap, err := src.build(now, samples)
		if err != nil {
			return
		}
		if err := snap.Validate(); err != nil {
			t.Fatalf("build returned an invalid snapshot: %v", err)
		}
	})
}

// TestPromStates maps the exporter's haproxy_server_status state at 1 and
// its check status, as HAProxy 2.6 exports them for a checked server.
func TestPromStates(t *testing.T) {
	src, err := OpenProm("prom+http://127.0.0.1:9?job=haproxy")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		state, check string
		want         State
	}{
		{"UP", "L7OK", StateUp}, {"DOWN", "L4CON", StateDown}, {"MAINT", "", StateMaint},
		{"DRAIN", "L7OK", StateDrain}, {"NOLB", "L7OK", StateDrain},
	} {
		var samples []promSample
		for _, s := range haproxyServerSeries(5) {
			if strings.Contains(s.labels, `"haproxy_server_status"`) {
				continue
			}
			var m model.Metric
			if err := json.Unmarshal([]byte("{"+s.labels+"}"), &m); err != nil {
				t.Fatal(err)
			}
			samples = append(samples, promSample{m: m, v: s.value})
		}
		for _, st := range []string{"UP", "DOWN", "MAINT", "DRAIN", "NOLB"} {
			v := 0.0
			if st == tc.state {
				v = 1
			}
			samples = append(samples, promSample{m: model.Metric{"__name__": "haproxy_server_status", "proxy": "app", "server": "s1", "state": model.LabelValue(st)}, v: v})
		}
		if tc.check != "" {
			samples = append(samples, promSample{m: model.Metric{"__name__": "haproxy_server_check_status", "proxy": "app", "server": "s1", "state": model.LabelValue(tc.check)}, v: 1},
				promSample{m: model.Metric{"__name__": "haproxy_server_check_status", "proxy": "app", "server": "s1", "state": "L6OK"}, v: 0})
		}
		snap, err := src.build(time.Now(), samples)
		if err != nil {
			t.Fatalf("%s: %v", tc.state, err)
		}
		sv := snap.Pool("app").Server("s1")
		if sv.State != tc.want || sv.CheckStatus != tc.check || sv.Weight != 3 || sv.Gauges.AvgResponseMs != 4 {
			t.Errorf("%s/%s: got state %s check %q weight %d latency %v", tc.state, tc.check, sv.State, sv.CheckStatus, sv.Weight, sv.Gauges.AvgResponseMs)
		}
	}
}

// TestPromBackfillSkips runs Backfill over a canned query_range history
// of 8 steps: a gap, a stale step, a repeated scrape and a counter reset
// are each skipped and counted; the other steps are stored in order.
func TestPromBackfillSkips(t *testing.T) {
	t0 := time.Now().Truncate(time.Second).Add(-time.Hour)
	type step struct {
		n              float64 // requests; 0: no data at this step
		newest, oldest time.Duration
	}
	// Step i is evaluated at t0+i s; newest/oldest are the samples' age.
	steps := []step{
		{10, 0, 0}, {20, 0, 0}, {0, 0, 0}, {30, 0, 2 * time.Minute}, {40, 0, 0},
		{40, time.Second, time.Second}, {3, 0, 0}, {13, 0, 0},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		q := r.Form.Get("query")
		var result []string
		point := func(i int, v string) string {
			return fmt.Sprintf(`[%d,"%s"]`, t0.Add(time.Duration(i)*time.Second).Unix(), v)
		}
		switch {
		case strings.HasPrefix(q, "max("), strings.HasPrefix(q, "min("):
			var pts []string
			for i, s := range steps {
				if s.n == 0 {
					continue
				}
				age := s.newest
				if strings.HasPrefix(q, "min(") {
					age = s.oldest
				}
				pts = append(pts, point(i, fmt.Sprintf("%.3f", float64(t0.Add(time.Duration(i)*time.Second-age).UnixMilli())/1000)))
			}
			result = append(result, `{"metric":{},"values":[`+strings.Join(pts, ",")+`]}`)
		default:
			for k, series := range haproxyServerSeries(1) {
				var pts []string
				for i, s := range steps {
					if s.n == 0 {
						continue
					}
					pts = append(pts, point(i, fmt.Sprintf("%g", haproxyServerSeries(s.n)[k].value)))
				}
				result = append(result, `{"metric":{`+series.labels+`},"values":[`+strings.Join(pts, ",")+`]}`)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[%s]}}`, strings.Join(result, ","))
	}))
	defer srv.Close()
	src, err := OpenProm("prom+" + srv.URL + "?job=haproxy&stale=10s")
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var mem memAppender
	st, err := src.Backfill(context.Background(), t0, t0.Add(7*time.Second), time.Second, &mem, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := BackfillStats{Steps: 8, Appended: 4, Empty: 1, Stale: 1, Repeated: 1, Resets: 1}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	var got []uint64
	for _, s := range mem.snaps {
		got = append(got, s.Pool("app").Server("s1").Counters.Requests)
	}
	if fmt.Sprint(got) != "[10 20 40 13]" {
		t.Errorf("stored requests %v, want [10 20 40 13]", got)
	}
	if n := strings.Count(logs.String(), "\n"); n != 2 || !strings.Contains(logs.String(), "requests 40 -> 3") || !strings.Contains(logs.String(), "stale") {
		t.Errorf("log: want one stale and one reset line, got %d:\n%s", n, logs.String())
	}
}
