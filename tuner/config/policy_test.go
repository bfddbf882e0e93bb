package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicySetting checks the policy setting: valid values globally and
// per pool, the per-pool override, and one problem per invalid value with
// its line.
func TestPolicySetting(t *testing.T) {
	const base = `policy: %GLOBAL%
pools:
  - name: web
    policy: %POOL%
    sim: {phases: [{duration: 1m, rps: 10}]}
    template: {min: 1, max: 4, target_seconds: 0.5}
`
	tests := []struct {
		name, global, pool string
		want               string // the one problem; "" = valid
		effective          string
	}{
		{name: "defaults to agent", global: `""`, pool: `""`, effective: "agent"},
		{name: "global threshold", global: "threshold", pool: `""`, effective: "threshold"},
		{name: "pool overrides", global: "threshold", pool: "hpa@0.5", effective: "hpa@0.5"},
		{name: "static", global: "agent", pool: "static", effective: "static"},
		{name: "unknown", global: "oracle", pool: `""`, want: `c.yaml:1: policy: unknown policy "oracle" (want agent, threshold, hpa@U or static)`},
		{name: "hpa without target", global: "agent", pool: "hpa", want: `c.yaml:4: pools[0].policy: policy "hpa": want hpa@U with a target utilisation 0 < U < 1`},
		{name: "hpa target 1", global: "agent", pool: "hpa@1", want: `pools[0].policy: policy "hpa@1": want hpa@U`},
		{name: "hpa target not a number", global: "agent", pool: "hpa@half", want: `pools[0].policy: policy "hpa@half": want hpa@U`},
		{name: "hpa target negative", global: "hpa@-0.2", pool: `""`, want: `c.yaml:1: policy: policy "hpa@-0.2": want hpa@U`},
		{name: "parameter on static", global: "agent", pool: "static@3", want: `pools[0].policy: policy "static@3" takes no parameter`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			y := strings.NewReplacer("%GLOBAL%", tc.global, "%POOL%", tc.pool).Replace(base)
			if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got := c.PoolPolicy(&c.Pools[0]); got != tc.effective {
					t.Errorf("PoolPolicy = %q, want %q", got, tc.effective)
				}
				return
			}
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", msg, tc.want)
			}
			if n := strings.Count(strings.TrimPrefix(msg, ErrInvalid.Error()+": "), "\n") + 1; n != 1 {
				t.Errorf("got %d problems, want 1:\n%s", n, msg)
			}
		})
	}
}

// FuzzParsePolicy: any setting gives a known policy name (with a target
// in (0, 1) for hpa) or an error, never a panic.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"agent", "threshold", "static", "hpa@0.5", "hpa@1", "hpa@", "hpa@NaN", "static@3", "", "@", "oracle@0.8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, u, err := ParsePolicy(s)
		if err != nil {
			return
		}
		switch name {
		case PolicyAgent, PolicyThreshold, PolicyStatic:
		case PolicyHPA:
			if !(u > 0 && u < 1) {
				t.Fatalf("ParsePolicy(%q): hpa target %v", s, u)
			}
		default:
			t.Fatalf("ParsePolicy(%q) = %q", s, name)
		}
	})
}
