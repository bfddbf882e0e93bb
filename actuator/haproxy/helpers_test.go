package haproxy

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const haproxyBin = "/usr/sbin/haproxy"

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startHAProxy renders c (its Socket is set here) into a temp dir, starts
// HAProxy in the foreground and returns a Runtime on its socket.
func startHAProxy(t testing.TB, c Config) *Runtime {
	t.Helper()
	if _, err := os.Stat(haproxyBin); err != nil {
		t.Fatalf("haproxy binary %s missing (install the haproxy package; CI does): %v", haproxyBin, err)
	}
	dir := t.TempDir()
	c.Socket = filepath.Join(dir, "admin.sock")
	var buf bytes.Buffer
	if err := RenderConfig(&buf, c); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(haproxyBin, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	r := &Runtime{Socket: c.Socket, PollInterval: 20 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := r.Exec(context.Background(), "show info"); err == nil {
			return r
		}
		select {
		case <-done:
			t.Fatalf("haproxy exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy socket not ready: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backend is a test HTTP server counting the requests it served.
type backend struct {
	*httptest.Server
	hits atomic.Int64
}

func newBackend(t testing.TB, delay time.Duration) *backend {
	t.Helper()
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		b.hits.Add(1)
		time.Sleep(delay)
		_, _ = w.Write([]byte("ok\n"))
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }
