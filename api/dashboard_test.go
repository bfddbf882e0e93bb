package api

import (
	"context"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// TestDashboardRendersInChromium serves the dashboard over the fake
// daemon's 30 minutes of data, loads it in headless Chromium, and checks
// that every chart drew a path with the expected number of points and the
// decisions table filled; it saves a PNG screenshot (to
// $LBTUNE_SCREENSHOT when set).
func TestDashboardRendersInChromium(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	srv := NewHTTPServer(ln.Addr().String(), Handler(Options{Reader: newFake(), Operator: newFake(), Gatherer: reg, Now: func() time.Time { return testNow }}))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String() + "/"

	dom := string(chromium(t, url, "--dump-dom"))
	// Six charts for one pool, all with data.
	if m := regexp.MustCompile(`<body[^>]*data-rendered="(\d+)"`).FindStringSubmatch(dom); m == nil || m[1] != "6" {
		t.Errorf("body data-rendered = %v, want 6 charts with data; error: %v", m, regexp.MustCompile(`data-error="[^"]*"`).FindString(dom))
	}
	points := map[string]int{}
	for _, m := range regexp.MustCompile(`<path class="series" d="M[^"]+" stroke="[^"]+" data-points="(\d+)" data-name="([^"]+)"`).FindAllStringSubmatch(dom, -1) {
		n, _ := strconv.Atoi(m[1])
		points[m[2]] += n
	}
	tests := []struct {
		series string
		want   int // points expected from the fake daemon
	}{
		{"req/s", 360},   // one point per 5 s over 30 minutes
		{"mean ms", 360}, //
		{"p95 ms", 360},  //
		{"target", 2},    // a flat line from first to last point
		{"servers", 360}, //
		{"p95_ms", 30},   // one decision a minute
		{"s0", 360},      // s0 and s1 serve throughout
		{"s3", 120},      // s3 serves only while 4 servers run
		{"cluster", 30},  // from each decision's metrics
	}
	for _, tc := range tests {
		if points[tc.series] != tc.want {
			t.Errorf("series %q drew %d points, want %d", tc.series, points[tc.series], tc.want)
		}
	}
	if m := regexp.MustCompile(`data-rows="(\d+)"`).FindStringSubmatch(dom); m == nil || m[1] != "30" {
		t.Errorf("decisions table rows = %v, want 30", m)
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
