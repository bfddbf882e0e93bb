package nginx

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// renderedLine matches every line RenderUpstreams may write: a config file
// can only get upstream blocks with these directives, never an injected one.
var renderedLine = regexp.MustCompile(`^(# Managed by lbtune.*|` +
	`upstream [^\s;{}"'#\\$]+ \{|` +
	`    zone [^\s;{}]+ [0-9]+[kKmM]?;|` +
	`    (least_conn|random|random two);|` +
	`    server [^\s;{}"'#\\$]+ weight=[0-9]+( max_fails=[0-9]+)?( fail_timeout=[0-9]+s)?( backup)?( down)?;( # [^\r\n]*)?|` +
	`\}|)$`)

// FuzzRenderUpstreams: names, addresses and the zone come from the config
// file (outside input). Whatever they hold, RenderUpstreams either refuses
// them or writes only the lines above, with weights in 1..1000.
func FuzzRenderUpstreams(f *testing.F) {
	f.Add("app", "64k", "", "127.0.0.1:18081", "s1", 5, 3, int64(10*time.Second), false, false)
	f.Add("legacy", "", "least_conn", "127.0.0.1:18082", "", 1, 0, int64(0), true, false)
	f.Add("a;b", "1m", "random two", "h:1; include /etc/passwd", "x\ny", 0, -1, int64(-1), false, true)
	f.Add("app", "64k}", "ip_hash", "h:1", "i-0abc # }", 1001, 2, int64(1500*time.Millisecond), true, true)
	f.Fuzz(func(t *testing.T, name, zone, method, addr, srvName string, weight, maxFails int, failTimeout int64, down, backup bool) {
		ups := []Upstream{{Name: name, Zone: zone, Method: method, Servers: []UpstreamServer{
			{Address: addr, Name: srvName, Weight: weight, MaxFails: maxFails, FailTimeout: time.Duration(failTimeout), Down: down, Backup: backup},
		}}}
		var buf bytes.Buffer
		if err := RenderUpstreams(&buf, ups); err != nil {
			if buf.Len() != 0 {
				t.Fatalf("wrote %d bytes despite error %v", buf.Len(), err)
			}
			return
		}
		if weight < 1 || weight > MaxWeight {
			t.Fatalf("weight %d accepted", weight)
		}
		for _, line := range strings.Split(buf.String(), "\n") {
			if !renderedLine.MatchString(line) {
				t.Fatalf("unexpected line %q in\n%s", line, buf.String())
			}
		}
	})
}
