package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheck: config check reports what run would refuse (store directory,
// a bad token file) and warns on a missing token file (run creates it), a
// group/world-readable token and a non-loopback listen address.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.token")
	if err := os.WriteFile(good, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.token")
	if err := os.WriteFile(open, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.token")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		listen, token     string
		store             string
		wantWarn, wantErr string
	}{
		{name: "clean", listen: "127.0.0.1:9464", token: good, store: filepath.Join(dir, "a.db")},
		{name: "missing token is created by run", listen: "127.0.0.1:9464", token: filepath.Join(dir, "new.token"), store: filepath.Join(dir, "a.db"), wantWarn: "lbtune run creates it"},
		{name: "world-readable token", listen: "127.0.0.1:9464", token: open, store: filepath.Join(dir, "a.db"), wantWarn: "readable by group or others"},
		{name: "short token refused", listen: "127.0.0.1:9464", token: short, store: filepath.Join(dir, "a.db"), wantErr: "at least 16 characters"},
		{name: "non-loopback listen", listen: "0.0.0.0:9464", token: good, store: filepath.Join(dir, "a.db"), wantWarn: "not a loopback address"},
		{name: "store directory missing", listen: "[::1]:9464", token: good, store: filepath.Join(dir, "no", "such", "a.db"), wantErr: "store.path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.API.Listen, c.API.TokenFile, c.Store.Path = tc.listen, tc.token, tc.store
			warns, err := c.Check()
			joined := strings.Join(warns, "\n")
			if tc.wantWarn == "" && len(warns) > 0 {
				t.Errorf("unexpected warnings: %s", joined)
			}
			if tc.wantWarn != "" && !strings.Contains(joined, tc.wantWarn) {
				t.Errorf("warnings %q lack %q", joined, tc.wantWarn)
			}
			if tc.wantErr == "" && err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestEnsureToken: a missing token file is created with a random token and
// mode 0600; an existing one is read, not replaced.
func TestEnsureToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lbtune.token")
	tok, created, err := EnsureToken(path)
	if err != nil || !created || len(tok) < 16 {
		t.Fatalf("EnsureToken = %q, %v, %v; want a new token", tok, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 600", fi.Mode().Perm())
	}
	again, created, err := EnsureToken(path)
	if err != nil || created || again != tok {
		t.Errorf("second EnsureToken = %q, %v, %v; want the same token, not created", again, created, err)
	}
}

// TestCheckTrace: config check reads a simulated pool's trace and refuses
// one whose peak rate x scale exceeds MaxSimRPS, as run does.
func TestCheckTrace(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(trace, []byte("t,rps\n0,10\n60,500\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		trace   string
		scale   float64
		wantErr string
	}{
		{"within the cap", trace, 200, ""},
		{"over the cap", trace, 201, "pools[0].sim.trace: peak rate 500 req/s x scale 201 = 100500 req/s"},
		{"missing trace", filepath.Join(dir, "none.csv"), 1, "pools[0].sim.trace"},
		{"from past the end", trace, 1, "from 2h0m0s skips the whole trace (2m0s long)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Store.Path, c.API.Listen = filepath.Join(dir, "a.db"), "127.0.0.1:0"
			c.Pools = []Pool{{Name: "web", Sim: &Sim{Trace: tc.trace, Scale: tc.scale}}}
			if strings.HasPrefix(tc.wantErr, "from") {
				c.Pools[0].Sim.From = 2 * time.Hour
			}
			_, err := c.Check()
			if tc.wantErr == "" && err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
