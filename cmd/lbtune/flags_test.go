package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// TestParseFlagsInterleaved: flags may follow positional arguments (the
// operator guide writes `lbtune mode auto --pool P`); a negative number is a
// positional argument; "--" ends the flags.
func TestParseFlagsInterleaved(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		pool    string
		token   string
		json    bool
		pos     []string
		wantErr bool
	}{
		{name: "flags first", args: []string{"--pool", "web", "manual"}, pool: "web", pos: []string{"manual"}},
		{name: "flags after positional", args: []string{"manual", "--token-file", "F", "--pool", "web"}, pool: "web", token: "F", pos: []string{"manual"}},
		{name: "equals form", args: []string{"auto", "-pool=light"}, pool: "light", pos: []string{"auto"}},
		{name: "bool flag between positionals", args: []string{"web", "--json", "+1"}, json: true, pos: []string{"web", "+1"}},
		{name: "negative delta is positional", args: []string{"web", "-1", "--pool", "x"}, pool: "x", pos: []string{"web", "-1"}},
		{name: "negative delta first", args: []string{"-1", "web"}, pos: []string{"-1", "web"}},
		{name: "double dash ends flags", args: []string{"--pool", "p", "--", "--json"}, pool: "p", pos: []string{"--json"}},
		{name: "unknown flag after positional", args: []string{"manual", "--bogus"}, wantErr: true},
		{name: "missing value", args: []string{"manual", "--pool"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("t", io.Discard)
			pool := fs.String("pool", "", "")
			token := fs.String("token-file", "", "")
			asJSON := fs.Bool("json", false, "")
			err := parseFlags(fs, tc.args)
			if tc.wantErr {
				if !errors.Is(err, errUsage) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *pool != tc.pool || *token != tc.token || *asJSON != tc.json {
				t.Errorf("pool %q token %q json %v, want %q %q %v", *pool, *token, *asJSON, tc.pool, tc.token, tc.json)
			}
			if got := fs.Args(); !reflect.DeepEqual(got, tc.pos) && !(len(got) == 0 && len(tc.pos) == 0) {
				t.Errorf("positional %q, want %q", got, tc.pos)
			}
		})
	}
}

// TestConfigExampleSimModel: `config example --sim` rehearses the agent, so
// from a source tree it names the shipped model; --haproxy-socket fills in
// the socket (the README's tour against lbtune testbed up).
func TestConfigExampleSimModel(t *testing.T) {
	t.Chdir("../..")
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), []string{"config", "example", "--sim"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "datasets/default-agent.db\"") {
		t.Errorf("config example --sim does not name the shipped model:\n%s", out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"config", "example", "--haproxy-socket", "/tmp/tb/haproxy.sock"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), "/run/haproxy/admin.sock") || !strings.Contains(out.String(), "/tmp/tb/haproxy.sock") {
		t.Errorf("--haproxy-socket not written in:\n%s", out.String())
	}
}
