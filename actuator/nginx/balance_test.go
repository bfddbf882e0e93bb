package nginx

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
)

// balApplier is *NGINX as the daemon hands it to the controller (tuner's
// weightsOnly): weights, the algorithm, no scaling.
type balApplier struct{ *NGINX }

func (balApplier) Scale(context.Context, string, int) error {
	return fmt.Errorf("nginx only sets weights")
}

// keep is a policy that asks for no change: the advice is the controller's.
type keep struct{}

func (keep) Name() string { return "keep" }
func (keep) Decide(context.Context, agent.Observation) (agent.Decision, error) {
	return agent.Decision{Reason: "keep"}, nil
}

// TestControllerSwitchesAutoUpstream runs the agent's controller on a real
// NGINX whose upstream "app" has two servers of unequal capacity (rates a
// slow and a fast server would give; the controller estimates 0.4 and 1.6
// from them). With method auto, the first decision that advises leastconn
// renders least_conn through the validated reload: nginx -t passes, new
// workers serve, requests succeed. In shadow mode, and for an upstream
// whose method is the operator's, the decisions carry the advice and
// nothing changes: the include keeps its bytes, the workers theirs.
func TestControllerSwitchesAutoUpstream(t *testing.T) {
	for _, tc := range []struct {
		name       string
		auto       bool
		shadow     bool
		wantMethod string        // the upstream's method at the end
		outcome    agent.Outcome // of the decision that first advised leastconn
	}{
		{name: "auto", auto: true, wantMethod: "least_conn", outcome: agent.OutcomeApplied},
		{name: "auto in shadow mode", auto: true, shadow: true, wantMethod: "", outcome: agent.OutcomeDryRun},
		{name: "operator's round robin", wantMethod: "", outcome: agent.OutcomeNoop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slow, fast := newBackend(t), newBackend(t)
			ups := appUpstream(slow.addr(), fast.addr())
			ups[0].Auto = tc.auto
			n := startNginx(t, ups)
			before, err := os.ReadFile(n.files.Include)
			if err != nil {
				t.Fatal(err)
			}
			master, err := n.MasterPID()
			if err != nil {
				t.Fatal(err)
			}
			workers, err := children(master)
			if err != nil {
				t.Fatal(err)
			}
			// The servers' rates over 5 s intervals: the slow one at 5 req/s
			// and 200 ms, the fast one at 20 req/s and 50 ms.
			snap := func(i int) collector.Snapshot {
				srv := func(name string, lambda, latMs float64) collector.Server {
					c := uint64(lambda * 5 * float64(i))
					return collector.Server{Name: name, Weight: 1, State: collector.StateUp,
						Counters: collector.Counters{Requests: c, Responses: [5]uint64{1: c}},
						Gauges:   collector.Gauges{AvgResponseMs: latMs}}
				}
				return collector.Snapshot{Time: time.Unix(1e9, 0).Add(time.Duration(i) * 5 * time.Second), Source: "test",
					Pools: []collector.Pool{{Name: "app", Servers: []collector.Server{srv(slow.addr(), 5, 200), srv(fast.addr(), 20, 50)}}}}
			}
			ring := agent.NewSnapshotRing(16)
			c, err := agent.NewController(agent.ControllerConfig{Interval: 5 * time.Second, StaleAfter: time.Hour,
				Pools: []agent.PoolControl{{Name: "app", Policy: keep{}}}, Source: ring,
				Applier: balApplier{n.NGINX}, Shadow: tc.shadow, Guard: agent.NewGuard(agent.DefaultGuardConfig(), nil)})
			if err != nil {
				t.Fatal(err)
			}
			var first *agent.Decision
			for i := range 8 {
				ring.Add(snap(i))
				if i == 0 {
					continue
				}
				d := c.Tick(context.Background(), snap(i).Time)[0]
				if d.Outcome == agent.OutcomeFailed {
					t.Fatalf("decision failed: %s", d.Error)
				}
				if first == nil && d.Balance != "" {
					first = &d
				}
			}
			if first == nil {
				t.Fatal("no decision advised an algorithm")
			}
			if first.Balance != agent.BalanceLeastConn || first.Outcome != tc.outcome ||
				!strings.Contains(first.Reason, "balance: round robin (nginx default) on unequal servers (capacity max/min 4.00 >= 2.00): leastconn") {
				t.Errorf("first advice: balance %q outcome %q reason %q, want leastconn, %s, the spread in the reason", first.Balance, first.Outcome, first.Reason, tc.outcome)
			}
			if !strings.HasPrefix(first.BalanceReason, "balance: ") || !strings.Contains(first.Reason, "; "+first.BalanceReason) {
				t.Errorf("balance reason %q, want the rule's words, also in the reason %q", first.BalanceReason, first.Reason)
			}
			b, err := n.Balancing(context.Background(), "app")
			if err != nil || b.Algorithm != tc.wantMethod || b.Auto != tc.auto {
				t.Errorf("balancing %+v (%v), want method %q auto %v", b, err, tc.wantMethod, tc.auto)
			}
			after, err := os.ReadFile(n.files.Include)
			if err != nil {
				t.Fatal(err)
			}
			now, err := children(master)
			if err != nil {
				t.Fatal(err)
			}
			reloaded := !slices.Equal(now, workers) // the old workers exit, new ones serve
			if tc.wantMethod == "least_conn" {
				if !strings.Contains(string(after), "    least_conn;\n") || !strings.Contains(string(after), "# "+AutoComment) {
					t.Errorf("include after the switch:\n%s\nwant least_conn and the auto comment", after)
				}
				if out, err := nginxTest(n.files.Bin, n.files.Prefix, n.files.MainConf); err != nil {
					t.Errorf("nginx -t on the switched config: %v\n%s", err, out)
				}
				if !reloaded {
					t.Errorf("workers %v before and after the switch: not reloaded", now)
				}
			} else {
				if string(after) != string(before) {
					t.Errorf("include changed:\n%s\nwas\n%s", after, before)
				}
				if reloaded {
					t.Errorf("workers %v, were %v: reloaded without a change", now, workers)
				}
			}
			// Requests still served, by both servers.
			for range 20 {
				if _, err := get(n.front + "/x"); err != nil {
					t.Fatal(err)
				}
			}
			if slow.hits.Load() == 0 || fast.hits.Load() == 0 {
				t.Errorf("hits slow %d fast %d: want both serving", slow.hits.Load(), fast.hits.Load())
			}
		})
	}
}

// TestSetBalance: switching and back on an auto upstream (the same
// algorithm again is no reload), refused on the operator's method, an
// unknown upstream or algorithm.
func TestSetBalance(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	ups := append(appUpstream(b1.addr()), Upstream{Name: "ops", Method: "least_conn", Servers: []UpstreamServer{{Address: b2.addr(), Weight: 1}}})
	ups[0].Auto = true
	n := startNginx(t, ups)
	ctx := context.Background()
	master, err := n.MasterPID()
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		pool, algorithm string
		wantErr         string // "" = no error
		method          string // of app after the step
		reload          bool
	}{
		{"app", agent.BalanceLeastConn, "", "least_conn", true},
		{"app", agent.BalanceLeastConn, "", "least_conn", false},
		{"app", agent.BalanceRoundRobin, "", "", true},
		{"app", "ip_hash", `algorithm "ip_hash"`, "", false},
		{"ops", agent.BalanceRoundRobin, "is the operator's", "", false},
		{"nope", agent.BalanceLeastConn, "not managed", "", false},
	} {
		workers, _ := children(master)
		err := n.SetBalance(ctx, step.pool, step.algorithm)
		if (err == nil) != (step.wantErr == "") || (err != nil && !strings.Contains(err.Error(), step.wantErr)) {
			t.Errorf("SetBalance(%s, %s) = %v, want %q", step.pool, step.algorithm, err, step.wantErr)
		}
		if b, _ := n.Balancing(ctx, "app"); b.Algorithm != step.method {
			t.Errorf("after SetBalance(%s, %s): app method %q, want %q", step.pool, step.algorithm, b.Algorithm, step.method)
		}
		now, _ := children(master)
		if reloaded := !slices.Equal(now, workers); reloaded != step.reload {
			t.Errorf("SetBalance(%s, %s): reloaded %v, want %v", step.pool, step.algorithm, reloaded, step.reload)
		}
		if _, err := get(n.front + "/x"); err != nil {
			t.Errorf("after SetBalance(%s, %s): %v", step.pool, step.algorithm, err)
		}
	}
}

// TestServingServers: what the agent controller counts an upstream by on a
// real NGINX: every server by address, serving unless down; a removed
// server is gone from the map (a request log would still list it), an
// added one is in it; an unknown upstream is an error.
func TestServingServers(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	n := startNginx(t, appUpstream(b1.addr(), b2.addr()))
	ctx := context.Background()
	check := func(step string, want map[string]bool) {
		t.Helper()
		got, err := n.ServingServers(ctx, "app")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: ServingServers = %v, want %v", step, got, want)
		}
	}
	check("start", map[string]bool{b1.addr(): true, b2.addr(): true})
	if err := n.RemoveServer(ctx, "app", b2.addr()); err != nil {
		t.Fatal(err)
	}
	check("after removing b2", map[string]bool{b1.addr(): true})
	if err := n.AddServer(ctx, "app", "b2", b2.addr(), 1); err != nil {
		t.Fatal(err)
	}
	check("after adding b2 back", map[string]bool{b1.addr(): true, b2.addr(): true})
	if err := n.RemoveServer(ctx, "app", b1.addr()); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveServer(ctx, "app", b2.addr()); err != nil {
		t.Fatal(err)
	}
	check("after removing both (parked)", map[string]bool{})
	if _, err := n.ServingServers(ctx, "nope"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown upstream: %v, want ErrUnknown", err)
	}
}
