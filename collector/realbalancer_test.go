package collector

import (
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
	"testing"
	"time"
)

// This file starts real HAProxy and NGINX processes for the integration
// tests: configs in t.TempDir(), listeners on free 127.0.0.1 ports, stopped
// in t.Cleanup.

const (
	haproxyBin = "/usr/sbin/haproxy"
	nginxBin   = "/usr/sbin/nginx"
)

func needBinary(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v): install it (apt-get install -y haproxy nginx) to run the real-balancer tests", path, err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// backends starts n httptest servers that answer 200 after a short sleep.
func backends(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		delay := time.Duration(i+1) * time.Millisecond
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(delay)
			fmt.Fprintln(w, "ok")
		}))
		t.Cleanup(srv.Close)
		addrs[i] = strings.TrimPrefix(srv.URL, "http://")
	}
	return addrs
}

// startProcess runs cmd until the test ends and returns its output buffer.
func startProcess(t *testing.T, name string, args ...string) *strings.Builder {
	t.Helper()
	var out strings.Builder
	var mu sync.Mutex
	cmd := exec.Command(name, args...)
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
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
	return &out
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// waitTCP waits until addr accepts connections.
func waitTCP(t *testing.T, addr string, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never accepted connections; output:\n%s", addr, log)
}

// realHAProxy is a running HAProxy with a stats socket and stats page.
type realHAProxy struct {
	frontend string // host:port of the frontend
	socket   string // admin socket path
	statsURL string // http://host:port/stats;csv
}

// startHAProxy runs HAProxy (balance roundrobin over the given backend
// addresses, stats socket level admin in t.TempDir()).
func startHAProxy(t *testing.T, servers []string) realHAProxy {
	t.Helper()
	lines := make([]string, len(servers))
	for i, s := range servers {
		lines[i] = fmt.Sprintf("server s%d %s weight %d", i+1, s, len(servers)-i)
	}
	return startHAProxyBackend(t, lines)
}

// startHAProxyBackend runs HAProxy whose backend app has the given lines
// (server and option lines).
func startHAProxyBackend(t *testing.T, backend []string) realHAProxy {
	t.Helper()
	needBinary(t, haproxyBin)
	dir := t.TempDir()
	h := realHAProxy{
		frontend: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		socket:   filepath.Join(dir, "admin.sock"),
	}
	stats := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	h.statsURL = "http://" + stats + "/stats;csv"
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global\n  stats socket %s mode 600 level admin\n  maxconn 500\n", h.socket)
	cfg.WriteString("defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n")
	fmt.Fprintf(&cfg, "frontend fe\n  bind %s\n  default_backend app\n", h.frontend)
	cfg.WriteString("backend app\n  balance roundrobin\n")
	for _, l := range backend {
		fmt.Fprintf(&cfg, "  %s\n", l)
	}
	fmt.Fprintf(&cfg, "listen stats\n  bind %s\n  stats enable\n  stats uri /stats\n", stats)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := startProcess(t, haproxyBin, "-db", "-f", path)
	waitTCP(t, h.frontend, out)
	waitTCP(t, stats, out)
	return h
}

// loadWorkers is how many requests load keeps in flight.
const loadWorkers = 4

// load sends GETs to url from loadWorkers clients until d has passed or max
// requests were sent, and returns how many got a 200.
func load(t *testing.T, url string, d time.Duration, max int) int {
	t.Helper()
	ok, _ := loadBusy(t, url, d, max)
	return ok
}

// loadBusy is load that also returns the clients' summed time waiting for
// responses (the clients' own count of requests in flight, times the time).
func loadBusy(t *testing.T, url string, d time.Duration, max int) (int, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var busy time.Duration
	sent, ok := 0, 0
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for range loadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				if sent >= max {
					mu.Unlock()
					return
				}
				sent++
				mu.Unlock()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					busy += time.Since(start)
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				busy += time.Since(start)
				if resp.StatusCode == http.StatusOK {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok, busy
}
