package nginx

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestParseUpstreams reads hand-written and rendered include files, and
// refuses what RenderUpstreams could not write back.
func TestParseUpstreams(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    []Upstream
		wantErr error // nil = parses; else errors.Is
	}{
		{"capture blocks (hand-written)", string(captureUpstreams(t)), []Upstream{
			{Name: "app", Zone: "64k", Servers: []UpstreamServer{
				{Address: "127.0.0.1:18081", Weight: 5, MaxFails: 3, FailTimeout: 10 * time.Second},
				{Address: "127.0.0.1:18082", Weight: 3},
				{Address: "127.0.0.1:18083", Weight: 1},
				{Address: "127.0.0.1:18084", Weight: 1, Backup: true},
			}},
			{Name: "legacy", Servers: []UpstreamServer{
				{Address: "127.0.0.1:18081", Weight: 1, MaxFails: 2, FailTimeout: 5 * time.Second},
				{Address: "127.0.0.1:18082", Weight: 1, Down: true},
			}},
		}, nil},
		{"auto comment, anywhere in the block", "upstream a {\n  # lbtune: method auto\n  server h:1;\n}\nupstream b {\n  least_conn;\n  server h:2; # lbtune: method auto\n  #lbtune: method auto  \n}\nupstream c { server h:3; } # lbtune: method auto\n", []Upstream{
			{Name: "a", Auto: true, Servers: []UpstreamServer{{Address: "h:1", Weight: 1}}},
			// On a server line the comment is the server's name.
			{Name: "b", Auto: true, Method: "least_conn", Servers: []UpstreamServer{{Address: "h:2", Name: "lbtune: method auto", Weight: 1}}},
			{Name: "c", Servers: []UpstreamServer{{Address: "h:3", Weight: 1}}},
		}, nil},
		{"names, methods, units, quotes", "# lbtune\nupstream w {\n  least_conn;\n  server 10.0.0.1:80 weight=2 fail_timeout=1m30s; # i-0abc\n" +
			"  server \"10.0.0.2:80\"\n    down;\n  # not a name\n}\nupstream r { random two; server u:1 fail_timeout=500ms; }\n", []Upstream{
			{Name: "w", Method: "least_conn", Servers: []UpstreamServer{
				{Address: "10.0.0.1:80", Name: "i-0abc", Weight: 2, FailTimeout: 90 * time.Second},
				{Address: "10.0.0.2:80", Weight: 1, Down: true},
			}},
			{Name: "r", Method: "random two", Servers: []UpstreamServer{{Address: "u:1", Weight: 1, FailTimeout: 500 * time.Millisecond}}},
		}, nil},
		{"parked upstream (as rendered)", "upstream p {\n    server 127.0.0.1:9 weight=1 down; # lbtune-parked\n}\n", []Upstream{
			{Name: "p", Servers: []UpstreamServer{Parked}},
		}, nil},
		{"empty file", "# nothing\n", nil, nil},
		{"keepalive", "upstream a { server h:1; keepalive 8; }", nil, ErrUnsupported},
		{"max_conns", "upstream a { server h:1 max_conns=3; }", nil, ErrUnsupported},
		{"other top-level directive", "map $a $b { default 1; }", nil, ErrUnsupported},
		{"hash method", "upstream a { hash $uri; server h:1; }", nil, ErrUnsupported},
		{"weight 0", "upstream a { server h:1 weight=0; }", nil, ErrInvalidUpstream},
		{"empty upstream", "upstream a { }", nil, ErrInvalidUpstream},
		{"bad time", "upstream a { server h:1 fail_timeout=10x; }", nil, errAny},
		{"missing brace", "upstream a { server h:1;", nil, errAny},
		{"missing semicolon", "upstream a { server h:1 }", nil, errAny},
		{"unterminated quote", "upstream a { server \"h:1; }", nil, errSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUpstreams(strings.NewReader(tc.src))
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantErr == errAny && err == nil, tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && !reflect.DeepEqual(got, tc.want):
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// Every golden file parses back to upstreams that render it again
	// (sub-second fail_timeouts are rounded up when rendered).
	for _, tc := range goldenCases {
		var buf bytes.Buffer
		if err := RenderUpstreams(&buf, tc.ups); err != nil {
			t.Fatal(err)
		}
		got, err := ParseUpstreams(bytes.NewReader(buf.Bytes()))
		var again bytes.Buffer
		if err == nil {
			err = RenderUpstreams(&again, got)
		}
		if err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
			t.Errorf("%s: render(parse(render)) = %s, %v; want %s", tc.name, again.String(), err, buf.String())
		}
	}
}

// errAny stands for "some error" in test tables.
var errAny = errors.New("any error")

// TestLexConf: words, quotes, escapes, variables and comments as NGINX reads them.
func TestLexConf(t *testing.T) {
	tests := []struct {
		src  string
		want []string // token texts; comments as #text
	}{
		{`include a.conf;`, []string{"include", "a.conf", ";"}},
		{`include "a b.conf" ;`, []string{"include", "a b.conf", ";"}},
		{`set $x ${y}z;`, []string{"set", "$x", "${y}z", ";"}},
		{`a 'it\'s'{b;}`, []string{"a", "it's", "{", "b", ";", "}"}},
		{"a b#c;\n# d\ne;", []string{"a", "b#c", ";", "# d", "e", ";"}},
		// An escaped space joins the word; NGINX keeps the backslash.
		{`a\ b;`, []string{`a\ b`, ";"}},
	}
	for _, tc := range tests {
		toks, err := lexConf([]byte(tc.src))
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		var got []string
		for _, tk := range toks {
			if tk.kind == tokComment {
				got = append(got, "#"+tk.text)
			} else {
				got = append(got, tk.text)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: tokens %q, want %q", tc.src, got, tc.want)
		}
	}
	for _, bad := range []string{`"open`, `"a"b;`, `'x`} {
		if _, err := lexConf([]byte(bad)); !errors.Is(err, errSyntax) {
			t.Errorf("%q: err = %v, want errSyntax", bad, err)
		}
	}
}
