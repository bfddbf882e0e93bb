package tuner

import (
	"bytes"
	"context"
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
	"syscall"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/tuner/config"
)

// TestNGINX runs the daemon in process on a real NGINX (stock Debian, no vts):
// observed through its access log over syslog UDP, weights applied through
// the include file lbtune owns. The pool runs in shadow mode over an
// include the operator wrote (weights 5/1, max_fails): the daemon adopts it
// and never rewrites it (shadow changes nothing: the file stays
// byte-identical); requests keep succeeding; the daemon sees the traffic
// in its state (/v1/state).
func TestNGINX(t *testing.T) {
	const nginxBin = "/usr/sbin/nginx"
	if _, err := os.Stat(nginxBin); err != nil {
		t.Fatalf("nginx binary %s missing (apt-get install nginx; CI does): %v", nginxBin, err)
	}
	dir := t.TempDir()
	var backends []string
	for range 2 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
		t.Cleanup(srv.Close)
		backends = append(backends, strings.TrimPrefix(srv.URL, "http://"))
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	syslog := udp.LocalAddr().String()
	udp.Close()
	front := freeAddr(t)
	include := filepath.Join(dir, "upstreams.conf")
	orig := []byte(fmt.Sprintf("upstream web {\n    server %s weight=5 max_fails=3;\n    server %s weight=1;\n}\n", backends[0], backends[1]))
	if err := os.WriteFile(include, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	nginxConf := fmt.Sprintf(`daemon off;
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
  include %[4]s;
  server {
    listen %[5]s;
    location / {
      proxy_pass http://web;
      access_log syslog:server=%[6]s,tag=nginx,nohostname %[2]s;
    }
  }
}
`, dir, collector.NginxLogFormatName, collector.NginxLogFormat, include, front, syslog)
	if err := os.WriteFile(conf, []byte(nginxConf), 0o600); err != nil {
		t.Fatal(err)
	}
	var nout bytes.Buffer
	ncmd := exec.Command(nginxBin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	ncmd.Stdout, ncmd.Stderr = &nout, &nout
	if err := ncmd.Start(); err != nil {
		t.Fatal(err)
	}
	ndone := make(chan struct{})
	go func() { _ = ncmd.Wait(); close(ndone) }()
	t.Cleanup(func() { _ = ncmd.Process.Signal(syscall.SIGQUIT); <-ndone })
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", front)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	addr := freeAddr(t)
	cfg := fmt.Sprintf(`api: {listen: %q, token_file: lbtune.token}
store: {path: lbtune.db}
intervals: {scrape: 1s, scrape_timeout: 500ms, decide: 2s}
sources:
  - {name: nginx, uri: "nginxlog+udp://%s"}
actuators:
  - name: nginx
    nginx:
      conf: %q
      include: %q
      prefix: %q
      pid_file: %q
      upstreams:
        - {name: web, servers: [%q, %q]}
pools:
  - name: web
    source: nginx
    actuator: nginx
    mode: shadow
    template: {min: 1, max: 2, target_seconds: 0.5, max_weight: 1000}
`, addr, syslog, conf, include, dir, filepath.Join(dir, "nginx.pid"), backends[0], backends[1])
	if err := os.WriteFile(filepath.Join(dir, "lbtune.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lbtune.token"), []byte("test-token-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile, err := config.Load(filepath.Join(dir, "lbtune.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfgFile, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()

	// A shadow daemon leaves the operator's include byte-identical.
	checkInclude := func(when string) {
		t.Helper()
		b, err := os.ReadFile(include)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, orig) {
			t.Errorf("%s: a shadow daemon changed the include file:\n%s\nwant:\n%s", when, b, orig)
		}
	}
	checkInclude("after start")
	// Traffic through NGINX succeeds and the daemon sees it.
	var seen float64
	waitFor(t, func() bool {
		for range 20 {
			resp, err := http.Get("http://" + front + "/")
			if err != nil {
				t.Fatalf("request through NGINX: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("request through NGINX: %s", resp.Status)
			}
		}
		st, err := d.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l := st.Pools[0].Latest; l != nil && l.Rate > 0 && l.Servers == 2 {
			seen = l.Rate
			return true
		}
		return false
	})
	t.Logf("daemon sees %.1f req/s over both NGINX servers", seen)
	checkInclude("under traffic")
	// /v1/policy shows the adopted upstream's method: NGINX's default
	// round robin, the operator's (not auto).
	pol, err := d.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := pol.Pools[0].Balance; b == nil || b.Algorithm != "" || b.Auto || b.Error != "" {
		t.Errorf("policy balance %+v, want algorithm \"\" (round robin), not auto", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return 15 s after cancel")
	}
	checkInclude("after stop")
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("condition not met within 20 s")
}
