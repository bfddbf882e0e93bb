package eval

import (
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
)

func TestSpecs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"static,threshold", []string{"static", "threshold"}},
		{" hpa@0.5 , ,oracle ", []string{"hpa@0.5", "oracle"}},
		{"", nil},
	}
	for _, tc := range tests {
		if got := Specs(tc.in); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Specs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets("light=20ms, heavy=320ms,")
	if err != nil || len(got) != 2 || got["light"] != 20*time.Millisecond || got["heavy"] != 320*time.Millisecond {
		t.Fatalf("ParseTargets = %v, %v", got, err)
	}
	for _, bad := range []string{"light", "=1s", "a=0s", "a=x"} {
		if _, err := ParseTargets(bad); err == nil {
			t.Errorf("ParseTargets(%q) accepted", bad)
		}
	}
}

// TestPolicy builds every spec the CLI accepts and refuses the bad ones
// with the reason.
func TestPolicy(t *testing.T) {
	sc, err := DefaultScenario(testTrace(), 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	trained := func(*Scenario, int) (agent.Policy, error) { return agent.NewStatic(3), nil }
	tests := []struct {
		spec     string
		wantName string
		wantErr  string
	}{
		{spec: "static", wantName: "static"},
		{spec: "threshold", wantName: "threshold"},
		{spec: "hpa@0.5", wantName: "hpa@0.5"},
		{spec: "oracle@0.7", wantName: "oracle"},
		{spec: "agent", wantName: "static"},
		{spec: "static@2", wantErr: "takes no parameter"},
		{spec: "hpa@1.5", wantErr: "target utilisation"},
		{spec: "oracle@0", wantErr: "headroom"},
		{spec: "hpa@x", wantErr: "bad parameter"},
		{spec: "magic", wantErr: "unknown policy"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			p, err := sc.Policy(tc.spec, 0, trained)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(p.Name(), tc.wantName) {
				t.Errorf("policy %q, want %q", p.Name(), tc.wantName)
			}
		})
	}
	if _, err := sc.Policy("agent", 0, nil); err == nil {
		t.Error("agent without a trained one accepted")
	}
}
