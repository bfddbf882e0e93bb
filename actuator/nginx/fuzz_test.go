package nginx

import (
	"bytes"
	"os"
	"path/filepath"
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

// captureConf is the NGINX config the vts captures were recorded with:
// outside input written by hand, with two upstream blocks.
const captureConf = "../../../shared/captures/vts/nginx.conf"

// captureUpstreams returns the upstream blocks of the capture config, as a
// hand-written include file would hold them.
func captureUpstreams(t testing.TB) []byte {
	t.Helper()
	src, err := os.ReadFile(captureConf)
	if err != nil {
		t.Fatalf("capture config (../shared/captures): %v", err)
	}
	s := string(src)
	i := strings.Index(s, "    upstream app")
	j := strings.Index(s, "    server {")
	if i < 0 || j < i {
		t.Fatalf("no upstream blocks in %s", captureConf)
	}
	return []byte(s[i:j])
}

// parseSeeds are include files: rendered ones, the capture's hand-written
// blocks, and broken or unsupported ones.
func parseSeeds(f *testing.F) {
	for _, tc := range goldenCases {
		var buf bytes.Buffer
		if err := RenderUpstreams(&buf, tc.ups); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(captureUpstreams(f))
	for _, s := range []string{
		"upstream a { server h:1 weight=2; } # x\n",
		"upstream a { server h:1; keepalive 8; }",
		"upstream a { server h:1 max_conns=3 }",
		"upstream 'a b' { server \"h:1\" fail_timeout=1m30s; }",
		"upstream a { server h:1; # i-0abc\r\n}",
		"upstream a {",
		"map $a $b { default 1; }",
		"upstream a { server h:1 fail_timeout=99999999999999999d; }",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseUpstreams: an include file is outside input (written by hand or
// by an older lbtune). Whatever it holds, ParseUpstreams returns an error
// or upstreams that render, and rendering is a fixed point of parsing:
// Render(Parse(Render(x))) == Render(x).
func FuzzParseUpstreams(f *testing.F) {
	parseSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ups, err := ParseUpstreams(bytes.NewReader(data))
		if err != nil {
			return
		}
		var r1 bytes.Buffer
		if err := RenderUpstreams(&r1, ups); err != nil {
			t.Fatalf("parsed upstreams do not render: %v\n%+v", err, ups)
		}
		again, err := ParseUpstreams(bytes.NewReader(r1.Bytes()))
		if err != nil {
			t.Fatalf("rendered file does not parse: %v\n%s", err, r1.String())
		}
		var r2 bytes.Buffer
		if err := RenderUpstreams(&r2, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r1.Bytes(), r2.Bytes()) {
			t.Fatalf("render/parse not a fixed point:\n%s\n---\n%s", r1.String(), r2.String())
		}
	})
}

// FuzzLexConf: the main config and the files it includes are outside
// input. The lexer never panics, and its tokens lie in order within the
// source without overlapping.
func FuzzLexConf(f *testing.F) {
	src, err := os.ReadFile(captureConf)
	if err != nil {
		f.Fatalf("capture config (../shared/captures): %v", err)
	}
	f.Add(src)
	f.Add([]byte(`include "a b.conf"; set $x ${y}z; location ~ "^/a{2}" { return 200 'it\'s'; } # end`))
	f.Add([]byte("a\\"))
	f.Add([]byte(`"unterminated`))
	f.Add([]byte(`"a"b;`))
	f.Fuzz(func(t *testing.T, src []byte) {
		toks, err := lexConf(src)
		if err != nil {
			return
		}
		prev := 0
		for _, tk := range toks {
			if tk.start < prev || tk.end <= tk.start || tk.end > len(src) {
				t.Fatalf("token %+v out of order or bounds (prev end %d, len %d)", tk, prev, len(src))
			}
			prev = tk.end
		}
		for _, d := range directives(toks) {
			if d.start < 0 || d.end > len(src) || d.start >= d.end || src[d.end-1] != ';' {
				t.Fatalf("directive %+v has a bad span", d)
			}
		}
	})
}

// FuzzStageConfig: stageConfig reads a main config (outside input) and
// writes a copy for nginx -t. Whatever the config, it never panics, never
// writes outside the config's directory, and a copy it writes reads the
// staged file and no longer the include.
func FuzzStageConfig(f *testing.F) {
	src, err := os.ReadFile(captureConf)
	if err != nil {
		f.Fatalf("capture config (../shared/captures): %v", err)
	}
	f.Add(append(src, "\ninclude up.conf;\n"...))
	f.Add([]byte("http { include up.conf; include mime.types; }"))
	f.Add([]byte("http { include *.conf; include \"u\"p.conf; }"))
	f.Add([]byte("include nginx.conf;"))
	f.Fuzz(func(t *testing.T, main []byte) {
		dir := t.TempDir()
		mainPath := filepath.Join(dir, "nginx.conf")
		inc := filepath.Join(dir, "up.conf")
		staged := filepath.Join(dir, ".up.conf.lbtune-staged-1")
		if err := os.WriteFile(mainPath, main, 0o644); err != nil {
			t.Fatal(err)
		}
		out, written, err := stageConfig(mainPath, inc, staged)
		if err != nil {
			if len(written) != 0 {
				t.Fatalf("written %v despite error", written)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, checkFilePattern)); len(left) > 0 {
				t.Fatalf("copies left after error %v: %v", err, left)
			}
			return
		}
		for _, w := range written {
			if filepath.Dir(w) != dir {
				t.Fatalf("copy written outside %s: %s", dir, w)
			}
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		toks, err := lexConf(b)
		if err != nil {
			t.Fatalf("copy does not lex: %v\n%s", err, b)
		}
		sawStaged := false
		for _, d := range directives(toks) {
			if d.name != "include" || len(d.args) != 1 {
				continue
			}
			if samePath(filepath.Join(dir, d.args[0]), inc) || d.args[0] == inc {
				t.Fatalf("copy still includes %s:\n%s", inc, b)
			}
			sawStaged = sawStaged || d.args[0] == staged
		}
		if !sawStaged && len(written) == 1 {
			t.Fatalf("copy does not include the staged file:\n%s", b)
		}
	})
}
