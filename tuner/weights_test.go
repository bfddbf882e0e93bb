package tuner

import (
	"os"
	"testing"

	"github.com/lbtune/lbtune/collector"
)

// TestFillWeights: the NGINX access log reports every weight as 0; the
// window the agent reads carries the weights the NGINX actuator applied, so
// the weight action is planned from the real weights (it is dropped when
// every observed weight is <= 1). Weights a source does report are kept.
func TestFillWeights(t *testing.T) {
	applied := map[string]int{"127.0.0.1:8081": 700, "127.0.0.1:8082": 300}
	tests := []struct {
		name    string
		applied func(string) map[string]int
		in      []collector.Server
		want    []int
	}{
		{"log source: weights from the actuator", func(string) map[string]int { return applied },
			[]collector.Server{{Name: "127.0.0.1:8081", Address: "127.0.0.1:8081"}, {Name: "127.0.0.1:8082", Address: "127.0.0.1:8082"}}, []int{700, 300}},
		{"source weights kept", func(string) map[string]int { return applied },
			[]collector.Server{{Name: "a", Address: "127.0.0.1:8081", Weight: 5}, {Name: "b", Address: "127.0.0.1:8082"}}, []int{5, 300}},
		{"unknown server stays 0", func(string) map[string]int { return applied },
			[]collector.Server{{Name: "x", Address: "127.0.0.1:9999"}}, []int{0}},
		{"no actuator weights (HAProxy)", nil,
			[]collector.Server{{Name: "127.0.0.1:8081", Address: "127.0.0.1:8081"}}, []int{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snaps := []collector.Snapshot{{Pools: []collector.Pool{{Name: "web", Servers: tc.in}}}}
			r := &recentSnapshots{pool: "web", applied: tc.applied}
			r.fillWeights(snaps)
			for i, s := range snaps[0].Pools[0].Servers {
				if s.Weight != tc.want[i] {
					t.Errorf("server %s weight %d, want %d", s.Name, s.Weight, tc.want[i])
				}
			}
		})
	}
}

// TestSelfCommand: the example config's fleet command "lbtune backend ..."
// runs this executable when no lbtune is on PATH (the README's tour from a
// build tree failed with `exec: "lbtune": executable file not found`).
func TestSelfCommand(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	got := selfCommand([]string{"lbtune", "backend", "--listen", "127.0.0.1:{port}"})
	if got[0] != self || got[1] != "backend" || len(got) != 4 {
		t.Errorf("selfCommand = %q, want %s backend ...", got, self)
	}
	if other := selfCommand([]string{"python3", "-m", "http.server"}); other[0] != "python3" {
		t.Errorf("another command was rewritten: %q", other)
	}
}
