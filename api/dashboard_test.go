package api

import (
	"context"
	"fmt"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
)

const chromiumPath = "/usr/bin/chromium"

// chromium runs headless Chromium on url with extra flags and returns its
// stdout. Every flag keeps it off the network and away from the user's
// profile.
func chromium(t *testing.T, url string, extra ...string) []byte {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless dashboard test needs %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=8000", "--window-size=1400,1800",
	}
	args = append(append(args, extra...), url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromiumPath, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", extra, err)
	}
	return out
}

// dashFake is the fake daemon as a dashboard sees a pool in shadow mode,
// paused: 30 minutes of points with an idle stretch (no requests from
// 10:43:20 to 10:44:10, i.e. points 120..129... see idle) and errors, the
// fake's applied decisions plus a noop decision every 20 s between them,
// and three learned clusters. With newRun, the pool started 3 minutes ago.
type dashFake struct {
	*fakeDaemon
	newRun bool
}

// idle reports whether fake point i (every 5 s from 30 minutes before
// testNow) had no requests: points 200..209.
func idle(i int) bool { return i >= 200 && i < 210 }

func (f *dashFake) Series(ctx context.Context, pool string, since time.Time) ([]collector.PoolPoint, error) {
	if f.newRun && since.Before(testNow.Add(-3*time.Minute)) {
		since = testNow.Add(-3 * time.Minute)
	}
	pts, err := f.fakeDaemon.Series(ctx, pool, since)
	for j := range pts {
		i := int(pts[j].Time.Sub(testNow.Add(-30*time.Minute)) / (5 * time.Second))
		pts[j].ErrorRatio = 0.01 * float64(i%4)
		if idle(i) {
			pts[j].Rate, pts[j].Active, pts[j].MeanMs, pts[j].P95Ms, pts[j].ErrorRatio = 0, 0, 0, 0, 0
		}
	}
	return pts, err
}

func (f *dashFake) Decisions(ctx context.Context, pool string, since time.Time, limit int) ([]agent.Decision, error) {
	ds, err := f.fakeDaemon.Decisions(ctx, pool, since, 10000)
	for k := range 90 {
		t := testNow.Add(-30 * time.Minute).Add(time.Duration(k) * 20 * time.Second)
		if k%3 == 0 || t.Before(since) || (pool != "" && pool != "web") {
			continue // on the minute: the fake's applied decisions
		}
		ds = append(ds, agent.Decision{Time: t, Pool: "web", Policy: "threshold", Reason: "p95 within target", Outcome: agent.OutcomeNoop})
	}
	slices.SortFunc(ds, func(a, b agent.Decision) int { return a.Time.Compare(b.Time) })
	if len(ds) > limit {
		ds = ds[len(ds)-limit:]
	}
	return ds, err
}

func (f *dashFake) Policy(context.Context) (Policy, error) {
	// As the daemon: the model's clusters at the top and in every pool
	// (the dashboard asks for ?clusters=once and reads the top's).
	clusters := []Cluster{
		{ID: 0, Share: 0.5, Centroid: map[string]float64{"load_servers": 1.5, "utilisation": 0.4, "p95_latency_x_target": 0.6, "servers": 2}},
		{ID: 1, Share: 0.3, Centroid: map[string]float64{"load_servers": 3, "utilisation": 0.7, "p95_latency_x_target": 1.2, "servers": 3}},
		{ID: 2, Share: 0.2, Centroid: map[string]float64{"rate_rps": 120, "p95_latency_ms": 300, "servers": 4}},
	}
	return Policy{Clusters: clusters, Pools: []PoolPolicy{{Pool: "web", Policy: "agent", Trained: true, Clusters: clusters}}}, nil
}

// serveDashboard serves the API and dashboard over r on 127.0.0.1 and
// returns the dashboard's URL.
func serveDashboard(t *testing.T, r *dashFake) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	srv := NewHTTPServer(ln.Addr().String(), Handler(Options{Reader: r, Operator: r, Gatherer: reg, Now: func() time.Time { return testNow }}))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// drawnPath is one series path of the rendered dashboard.
type drawnPath struct {
	d            string
	points, segs int
}

// dashboardPaths loads url in headless Chromium and returns the DOM and
// its series paths by name (a name drawn twice adds up).
func dashboardPaths(t *testing.T, url string) (string, map[string]drawnPath) {
	t.Helper()
	dom := string(chromium(t, url, "--dump-dom"))
	paths := map[string]drawnPath{}
	for _, m := range regexp.MustCompile(`<path class="series" d="(M[^"]+)" stroke="[^"]+" data-points="(\d+)" data-segments="(\d+)" data-name="([^"]+)"`).FindAllStringSubmatch(dom, -1) {
		n, _ := strconv.Atoi(m[2])
		s, _ := strconv.Atoi(m[3])
		p := paths[m[4]]
		paths[m[4]] = drawnPath{d: p.d + m[1], points: p.points + n, segs: p.segs + s}
	}
	return dom, paths
}

// TestDashboardRendersInChromium serves the dashboard over the fake
// daemon's data, loads it in headless Chromium, and checks what an
// operator reads: every chart drew the expected points, response time and
// errors have a gap where the pool was idle, the window selector changes
// the time shown and a new run fills the charts, the load-state chart
// explains each cluster, the mode and the pause are shown, and noop
// decisions are hidden unless asked for. It saves a PNG screenshot (to
// $LBTUNE_SCREENSHOT when set).
func TestDashboardRendersInChromium(t *testing.T) {
	fake := newFake()
	fake.mode["web"], fake.paused["web"] = "shadow", true
	url := serveDashboard(t, &dashFake{fakeDaemon: fake})

	dom, paths := dashboardPaths(t, url)
	// Seven charts for one pool, all with data.
	if m := regexp.MustCompile(`<body[^>]*data-rendered="(\d+)"`).FindStringSubmatch(dom); m == nil || m[1] != "7" {
		t.Errorf("body data-rendered = %v, want 7 charts with data; error: %v", m, regexp.MustCompile(`data-error="[^"]*"`).FindString(dom))
	}
	tests := []struct {
		series       string
		points, segs int // expected from the fake daemon
	}{
		{"req/s", 360, 1},       // one point per 5 s over 30 minutes; 0 req/s is drawn
		{"mean ms", 350, 2},     // no response time while idle: a gap
		{"p95 ms", 350, 2},      //
		{"errors %", 350, 2},    // no error ratio while idle
		{"target 200 ms", 2, 1}, // a flat line across the window
		{"servers", 360, 1},     //
		{"p95_ms", 30, 1},       // one decision a minute
		{"s0", 360, 1},          // s0 and s1 serve throughout
		{"s3", 120, 1},          // s3 serves only while 4 servers run
		{"cluster", 30, 1},      // from each decision's metrics
	}
	for _, tc := range tests {
		if p := paths[tc.series]; p.points != tc.points || p.segs != tc.segs {
			t.Errorf("series %q drew %d points in %d segments, want %d in %d", tc.series, p.points, p.segs, tc.points, tc.segs)
		}
	}
	for _, want := range []string{
		`data-mode="shadow"`, `data-paused="true"`, // the mode and the pause, beside the pool's name
		`<select id="window"`, `<option value="5m">5m</option>`, `<input type="checkbox" id="show-noop">`,
		`<li data-cluster="0">cluster 0: load 1.5 servers' worth, utilisation 0.4, p95 0.6× target (~120 ms), 2 servers, 50% of training</li>`,
		`<li data-cluster="2">cluster 2: ~120 req/s, p95 300 ms, 4 servers, 20% of training</li>`,
		`load state cluster 2 (~120 req/s, p95 300 ms`,
		`60 noop decisions hidden.`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`data-rows="(\d+)" data-hidden="(\d+)"`).FindStringSubmatch(dom); m == nil || m[1] != "30" || m[2] != "60" {
		t.Errorf("decisions table rows, hidden = %v, want 30 applied shown, 60 noop hidden", m)
	}

	// The last 5 minutes, noop decisions shown.
	dom, paths = dashboardPaths(t, url+"?window=5m&noop=1")
	if p := paths["req/s"]; p.points != 60 {
		t.Errorf("window 5m: req/s drew %d points, want 60", p.points)
	}
	if m := regexp.MustCompile(`data-rows="(\d+)" data-hidden="(\d+)"`).FindStringSubmatch(dom); m == nil || m[1] != "15" || m[2] != "0" {
		t.Errorf("window 5m with noop: rows, hidden = %v, want 15 (5 applied, 10 noop), 0", m)
	}

	// A run 3 minutes old fills the chart in the default window, and is
	// squeezed into the right tenth in a 30-minute one.
	newRun := serveDashboard(t, &dashFake{fakeDaemon: newFake(), newRun: true})
	for _, tc := range []struct {
		query      string
		xmin, xmax float64 // of the first point of req/s (plot area x 44..424)
	}{
		{"", 44, 50},
		{"?window=30m", 380, 392},
	} {
		_, paths = dashboardPaths(t, newRun+tc.query)
		p := paths["req/s"]
		var x float64
		if _, err := fmt.Sscanf(p.d, "M%f,", &x); err != nil || p.points != 36 || x < tc.xmin || x > tc.xmax {
			t.Errorf("new run %q: req/s %d points from x=%v (%v), want 36 from x in [%v, %v]", tc.query, p.points, x, err, tc.xmin, tc.xmax)
		}
	}

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if p := os.Getenv("LBTUNE_SCREENSHOT"); p != "" {
		shot = p
	}
	chromium(t, url, "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("screenshot not written: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if b := img.Bounds(); b.Dx() != 1400 {
		t.Errorf("screenshot is %v, want 1400 px wide", b)
	}
	t.Logf("dashboard screenshot: %s", shot)
}
