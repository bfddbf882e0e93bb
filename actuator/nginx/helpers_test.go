package nginx

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nginxBin is the NGINX the tests run (stock Debian 1.22.1 in CI).
const nginxBin = "/usr/sbin/nginx"

// requireNginx returns the nginx binary path or fails the test with a clear message.
func requireNginx(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		t.Fatalf("nginx binary %s missing (install the nginx package; CI does): %v", nginxBin, err)
	}
	return nginxBin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeMainConf writes dir/nginx.conf: a minimal main config that includes
// inc and listens on 127.0.0.1:port, proxying / to the upstream "app" when
// proxyApp is set and otherwise answering 200 itself.
func writeMainConf(t testing.TB, dir, inc string, port int, proxyApp ...bool) string {
	t.Helper()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers must reach the 0700 temp dir
	}
	loc := "return 200 \"ok\\n\";"
	if len(proxyApp) > 0 && proxyApp[0] {
		loc = "proxy_pass http://app; proxy_next_upstream error timeout http_502; proxy_http_version 1.1; proxy_set_header Connection \"\";"
	}
	conf := fmt.Sprintf(`%sworker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log notice;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[3]s;
    server {
        listen 127.0.0.1:%[4]d;
        location / { %[5]s }
    }
}
`, user, dir, inc, port, loc)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// nginxTest runs nginx -t on conf with prefix dir.
func nginxTest(bin, dir, conf string) ([]byte, error) {
	return exec.Command(bin, "-t", "-q", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf).CombinedOutput()
}

// runningNginx is an NGINX started by a test.
type runningNginx struct {
	*NGINX
	files Files
	front string // http://127.0.0.1:port
}

// startNginx writes ups into an include file, starts NGINX proxying / to
// the upstream "app", and stops it in t.Cleanup.
func startNginx(t testing.TB, ups []Upstream) *runningNginx {
	t.Helper()
	bin := requireNginx(t)
	dir := t.TempDir()
	f := Files{Bin: bin, Prefix: dir, ErrorLog: filepath.Join(dir, "error.log"),
		PIDFile: filepath.Join(dir, "nginx.pid"), Include: filepath.Join(dir, "upstreams.conf")}
	var buf bytes.Buffer
	if err := RenderUpstreams(&buf, ups); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Include, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	f.MainConf = writeMainConf(t, dir, f.Include, port, true)
	cmd := exec.Command(bin, "-p", dir, "-e", f.ErrorLog, "-c", f.MainConf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // fast shutdown: the master stops its workers
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	n := New(f, ups)
	n.DrainTimeout = 10 * time.Second
	n.Log = slog.New(slog.DiscardHandler)
	front := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := n.MasterPID(); err == nil {
			if resp, err := http.Get(front + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(f.ErrorLog)
			t.Fatalf("nginx exited: %s %s", out.String(), b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &runningNginx{NGINX: n, files: f, front: front}
}

// backend is a test HTTP server that answers its own address.
type backend struct {
	*httptest.Server
	hits  atomic.Int64
	delay atomic.Int64 // nanoseconds each non-health request sleeps
}

func newBackend(t testing.TB) *backend {
	t.Helper()
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			b.hits.Add(1)
			time.Sleep(time.Duration(b.delay.Load()))
		}
		_, _ = io.WriteString(w, b.addr())
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// get fetches url and returns the body, failing on a non-200 answer.
func get(url string) (string, error) {
	resp, err := noKeepAlive.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	return string(body), nil
}

var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
