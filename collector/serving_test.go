package collector

import (
	"strings"
	"testing"
	"time"
)

// TestSetServing: the balancer's account of which servers serve sets the
// pool's states; servers it does not name are no longer its own; states
// the source saw otherwise stay; names that never meet change nothing.
func TestSetServing(t *testing.T) {
	pool := func() Pool {
		return Pool{Name: "web", Servers: []Server{
			{Name: "a", State: StateUp}, {Name: "b", State: StateUp}, {Name: "c", State: StateUp}, {Name: "d", State: StateDown},
		}}
	}
	tests := []struct {
		name    string
		serving map[string]bool
		want    string
		wantErr string
	}{
		{"standby servers", map[string]bool{"a": true, "b": true, "c": false, "d": false}, "up,up,maint,down", ""},
		{"removed from the balancer", map[string]bool{"a": true}, "up,maint,maint,down", ""},
		{"a down server serving again", map[string]bool{"a": true, "b": true, "c": true, "d": true}, "up,up,up,up", ""},
		{"names never meet", map[string]bool{"10.0.0.1:80": true}, "up,up,up,down", "names none of the source's 4 servers"},
		{"empty answer", map[string]bool{}, "up,up,up,down", "names none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := pool()
			err := p.SetServing(tc.serving)
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("SetServing = %v, want error %q", err, tc.wantErr)
			}
			var got []string
			for _, s := range p.Servers {
				got = append(got, string(s.State))
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("states %v, want %s", got, tc.want)
			}
		})
	}
	empty := Pool{Name: "idle"}
	if err := empty.SetServing(map[string]bool{"a": true}); err != nil {
		t.Errorf("a pool without servers: %v", err)
	}
}

// TestKnowsServerStates: request logs (also on a scaled clock) cannot see
// servers' states; the balancers' statistics can.
func TestKnowsServerStates(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"haproxylog+udp://127.0.0.1:0", false},
		{"nginxlog+udp://127.0.0.1:0", false},
		{"haproxy+http://127.0.0.1:1/stats;csv", true},
		{"vts+http://127.0.0.1:1/status/format/json", true},
	} {
		src, err := Open(tc.uri)
		if err != nil {
			t.Fatalf("%s: %v", tc.uri, err)
		}
		if got := KnowsServerStates(src); got != tc.want {
			t.Errorf("%s: KnowsServerStates %v, want %v", tc.uri, got, tc.want)
		}
		scaled := &TimeScaled{Source: src, Clock: &ScaledClock{Base: time.Now(), Scale: 2, Wall: time.Now}}
		if got := KnowsServerStates(scaled); got != tc.want {
			t.Errorf("%s on a scaled clock: KnowsServerStates %v, want %v", tc.uri, got, tc.want)
		}
		if c, ok := src.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	}
}
