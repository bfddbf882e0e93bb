package tuner

import (
	"maps"
	"os"
	"testing"

	"github.com/lbtune/lbtune/actuator/nginx"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/tuner/config"
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

// TestFillMembers: the NGINX access log lists every server it has ever
// seen a request for; what serves is what the NGINX actuator has in the
// upstream, not marked down. A server that left counts as in maintenance
// (its requests still count), one that joined without a request yet is
// added, and so is the pool before the log's first line; a source that
// sees weights (vts) is left alone.
func TestFillMembers(t *testing.T) {
	const a, b, c = "127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"
	up := func(addr string, req uint64) collector.Server {
		return collector.Server{Name: addr, Address: addr, State: collector.StateUp, Counters: collector.Counters{Requests: req}}
	}
	tests := []struct {
		name    string
		applied map[string]int // nil: not a pool of this NGINX
		pool    *collector.Pool
		want    map[string]collector.State
		serving int
	}{
		{"a server left the upstream", map[string]int{a: 5},
			&collector.Pool{Name: "web", Servers: []collector.Server{up(a, 10), up(b, 7)}},
			map[string]collector.State{a: collector.StateUp, b: collector.StateMaint}, 1},
		{"a server joined, no request yet", map[string]int{a: 5, c: 5},
			&collector.Pool{Name: "web", Servers: []collector.Server{up(a, 10)}},
			map[string]collector.State{a: collector.StateUp, c: collector.StateUp}, 2},
		{"no log line yet", map[string]int{a: 5, b: 5}, nil,
			map[string]collector.State{a: collector.StateUp, b: collector.StateUp}, 2},
		{"parked upstream", map[string]int{},
			&collector.Pool{Name: "web", Servers: []collector.Server{up(a, 10)}},
			map[string]collector.State{a: collector.StateMaint}, 0},
		{"not this NGINX's pool", nil,
			&collector.Pool{Name: "web", Servers: []collector.Server{up(a, 10), up(b, 7)}},
			map[string]collector.State{a: collector.StateUp, b: collector.StateUp}, 2},
		{"vts sees weights: left alone", map[string]int{a: 5},
			&collector.Pool{Name: "web", Servers: []collector.Server{up(a, 10), {Name: b, Address: b, Weight: 3, State: collector.StateUp}}},
			map[string]collector.State{a: collector.StateUp, b: collector.StateUp}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := collector.Snapshot{Pools: []collector.Pool{{Name: "other", Servers: []collector.Server{up(b, 1)}}}}
			if tc.pool != nil {
				snap.Pools = append(snap.Pools, *tc.pool)
			}
			r := &recentSnapshots{pool: "web", applied: func(string) map[string]int { return tc.applied }}
			snaps := []collector.Snapshot{snap}
			r.fillMembers(snaps)
			pl := snaps[0].Pool("web")
			if pl == nil {
				if len(tc.want) > 0 {
					t.Fatalf("pool web missing, want %v", tc.want)
				}
				return
			}
			got := map[string]collector.State{}
			serving := 0
			for _, s := range pl.Servers {
				got[s.Address] = s.State
				if s.State == collector.StateUp {
					serving++
				}
			}
			if !maps.Equal(got, tc.want) || serving != tc.serving {
				t.Errorf("servers %v (%d serving), want %v (%d)", got, serving, tc.want, tc.serving)
			}
			if o := snaps[0].Pool("other"); o.Servers[0].State != collector.StateUp {
				t.Errorf("another pool's server changed: %+v", o.Servers[0])
			}
		})
	}
}

// TestNGINXMethodsRender: every method lbtune.yaml accepts for an NGINX
// upstream (config.NGINXMethods) is one the NGINX actuator renders, and
// auto is lbtune's to switch, rendering round robin first.
func TestNGINXMethodsRender(t *testing.T) {
	for _, m := range config.NGINXMethods {
		up := nginx.NewUpstream("web", m)
		up.Servers = []nginx.UpstreamServer{{Address: "127.0.0.1:8081", Weight: 1}}
		if err := nginx.ValidateUpstreams([]nginx.Upstream{up}); err != nil {
			t.Errorf("method %q: %v", m, err)
		}
		if auto := m == nginx.MethodAuto; up.Auto != auto || (auto && up.Method != "") {
			t.Errorf("method %q: upstream %+v, want auto %v rendering round robin", m, up, auto)
		}
	}
}
