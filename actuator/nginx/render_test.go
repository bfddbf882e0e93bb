package nginx

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenCases are valid upstream sets; each renders to testdata/<name>.golden
// and must pass nginx -t.
var goldenCases = []struct {
	name string
	ups  []Upstream
}{
	{
		name: "single",
		ups: []Upstream{{Name: "app", Servers: []UpstreamServer{
			{Address: "127.0.0.1:18081", Weight: 1},
		}}},
	},
	{
		// The capture config's app group: zone, failure limits and a backup.
		name: "capture_app",
		ups: []Upstream{{Name: "app", Zone: "64k", Servers: []UpstreamServer{
			{Address: "127.0.0.1:18081", Weight: 5, MaxFails: 3, FailTimeout: 10 * time.Second},
			{Address: "127.0.0.1:18082", Weight: 3},
			{Address: "127.0.0.1:18083", Weight: 1},
			{Address: "127.0.0.1:18084", Weight: 1, Backup: true},
		}}},
	},
	{
		// Three pools, each method, a draining (down) server, sub-second timeout rounded up.
		name: "pools",
		ups: []Upstream{
			{Name: "light", Zone: "64k", Servers: []UpstreamServer{
				{Address: "127.0.0.1:19001", Weight: 1000},
				{Address: "127.0.0.1:19002", Weight: 1, Down: true},
			}},
			{Name: "medium", Zone: "1m", Method: "least_conn", Servers: []UpstreamServer{
				{Address: "127.0.0.1:19011", Weight: 7, MaxFails: 2, FailTimeout: 1500 * time.Millisecond},
				{Address: "127.0.0.1:19012", Weight: 3, Backup: true},
			}},
			{Name: "heavy", Method: "random two", Servers: []UpstreamServer{
				{Address: "127.0.0.1:19021", Weight: 2},
				{Address: "unix:/tmp/heavy.sock", Weight: 2},
			}},
			{Name: "rand", Method: "random", Servers: []UpstreamServer{
				{Address: "localhost:19031", Weight: 9},
			}},
		},
	},
	{
		// method: auto, rendering round robin (before any advice) and
		// least_conn (after it); the comment keeps them auto when adopted.
		name: "auto",
		ups: []Upstream{
			{Name: "web", Zone: "64k", Auto: true, Servers: []UpstreamServer{
				{Address: "127.0.0.1:19041", Weight: 25},
				{Address: "127.0.0.1:19042", Weight: 100},
			}},
			{Name: "api", Zone: "64k", Auto: true, Method: "least_conn", Servers: []UpstreamServer{
				{Address: "127.0.0.1:19051", Weight: 10},
			}},
		},
	},
	{name: "empty", ups: nil},
}

func TestRenderUpstreamsGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderUpstreams(&buf, tc.ups); err != nil {
				t.Fatalf("RenderUpstreams: %v", err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("rendered output differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
			// Deterministic: a second render is byte-identical.
			var again bytes.Buffer
			if err := RenderUpstreams(&again, tc.ups); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
				t.Errorf("second render differs (err %v)", err)
			}
		})
	}
}

// TestRenderUpstreamsNginxAccepts runs the real nginx -t on every golden case.
func TestRenderUpstreamsNginxAccepts(t *testing.T) {
	bin := requireNginx(t)
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var buf bytes.Buffer
			if err := RenderUpstreams(&buf, tc.ups); err != nil {
				t.Fatal(err)
			}
			inc := filepath.Join(dir, "upstreams.conf")
			if err := os.WriteFile(inc, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			conf := writeMainConf(t, dir, inc, freePort(t))
			if out, err := nginxTest(bin, dir, conf); err != nil {
				t.Fatalf("nginx -t refused the rendered file: %v\n%s\n%s", err, out, buf.String())
			}
		})
	}
}

func TestRenderUpstreamsInvalid(t *testing.T) {
	ok := UpstreamServer{Address: "127.0.0.1:1", Weight: 1}
	tests := []struct {
		name string
		ups  []Upstream
		want string // substring of the error
	}{
		{"empty name", []Upstream{{Servers: []UpstreamServer{ok}}}, `name ""`},
		{"name with space", []Upstream{{Name: "a b", Servers: []UpstreamServer{ok}}}, `name "a b"`},
		{"name with brace", []Upstream{{Name: "a}", Servers: []UpstreamServer{ok}}}, `name "a}"`},
		{"duplicate name", []Upstream{{Name: "a", Servers: []UpstreamServer{ok}}, {Name: "a", Servers: []UpstreamServer{ok}}}, `"a" defined twice`},
		{"bad zone", []Upstream{{Name: "a", Zone: "64kb", Servers: []UpstreamServer{ok}}}, `zone size "64kb"`},
		{"bad method", []Upstream{{Name: "a", Method: "ip_hash", Servers: []UpstreamServer{ok}}}, `method "ip_hash"`},
		{"auto rendering random", []Upstream{{Name: "a", Auto: true, Method: "random", Servers: []UpstreamServer{ok}}}, `method auto renders`},
		{"no servers", []Upstream{{Name: "a"}}, `has no servers`},
		{"weight zero", []Upstream{{Name: "a", Servers: []UpstreamServer{{Address: "h:1"}}}}, `weight 0 outside 1..1000`},
		{"weight too big", []Upstream{{Name: "a", Servers: []UpstreamServer{{Address: "h:1", Weight: 1001}}}}, `weight 1001 outside 1..1000`},
		{"address with semicolon", []Upstream{{Name: "a", Servers: []UpstreamServer{{Address: "h:1;", Weight: 1}}}}, `address "h:1;"`},
		{"duplicate address", []Upstream{{Name: "a", Servers: []UpstreamServer{ok, ok}}}, `listed twice`},
		{"negative max_fails", []Upstream{{Name: "a", Servers: []UpstreamServer{{Address: "h:1", Weight: 1, MaxFails: -1}}}}, `max_fails -1`},
		{"negative fail_timeout", []Upstream{{Name: "a", Servers: []UpstreamServer{{Address: "h:1", Weight: 1, FailTimeout: -time.Second}}}}, `fail_timeout -1s`},
		{"backup with random", []Upstream{{Name: "a", Method: "random two", Servers: []UpstreamServer{ok, {Address: "h:2", Weight: 1, Backup: true}}}}, `backup`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := RenderUpstreams(&buf, tc.ups)
			if err == nil {
				t.Fatalf("RenderUpstreams accepted invalid input:\n%s", buf.String())
			}
			if !errors.Is(err, ErrInvalidUpstream) {
				t.Errorf("error %v does not wrap ErrInvalidUpstream", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", buf.Len())
			}
		})
	}
}

func TestNginxDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "10s"},
		{1500 * time.Millisecond, "2s"},
		{time.Microsecond, "1s"},
		{2*time.Second + time.Millisecond, "3s"},
	}
	for _, tc := range tests {
		if got := nginxDuration(tc.d); got != tc.want {
			t.Errorf("nginxDuration(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
