package nginx

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
daemon on;
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
