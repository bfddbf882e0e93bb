package tuner

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
)

// fakeBalancer sets weights and, when it has an algorithm, reports and
// switches it (as *nginx.NGINX does for an auto upstream).
type fakeBalancer struct{ alg string }

func (*fakeBalancer) SetWeights(context.Context, string, map[string]int) error { return nil }

func (f *fakeBalancer) Balancing(context.Context, string) (agent.Balancing, error) {
	return agent.Balancing{Algorithm: f.alg, Auto: true}, nil
}

func (f *fakeBalancer) SetBalance(_ context.Context, _, algorithm string) error {
	if algorithm == "bad" {
		return errors.New("nginx -t refused")
	}
	f.alg = algorithm
	return nil
}

// weightsOnlyBalancer has no algorithm to report (a balancer that cannot tell).
type weightsOnlyBalancer struct{}

func (weightsOnlyBalancer) SetWeights(context.Context, string, map[string]int) error { return nil }

// TestBalanceThroughWrappers: the daemon's wrappers (weightsOnly, then
// the timing wrapper the controller gets) pass the balancer's algorithm
// and its switch through, time the switch as action "balance" and count
// its errors; over a balancer that cannot tell, Balancing is
// agent.ErrNoBalancing (the controller then gives no advice).
func TestBalanceThroughWrappers(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := api.NewMetrics(reg)
	ctx := context.Background()
	fb := &fakeBalancer{}
	a := timed(&weightsOnly{kind: "nginx", name: "edge", weights: fb}, m, "web", "edge")
	br, ok := a.(interface {
		Balancing(context.Context, string) (agent.Balancing, error)
		SetBalance(context.Context, string, string) error
	})
	if !ok {
		t.Fatalf("%T hides Balancing or SetBalance from the controller", a)
	}
	if err := br.SetBalance(ctx, "web", agent.BalanceLeastConn); err != nil {
		t.Fatal(err)
	}
	if b, err := br.Balancing(ctx, "web"); err != nil || b.Algorithm != agent.BalanceLeastConn || !b.Auto {
		t.Errorf("after the switch: %+v %v, want leastconn, auto", b, err)
	}
	if err := br.SetBalance(ctx, "web", "bad"); err == nil {
		t.Error("a refused switch returned no error")
	}
	// Two switches timed, one of them an error, both under action balance.
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "action" && l.GetValue() == "balance" {
					switch f.GetName() {
					case "lbtune_actuation_duration_seconds":
						got["timed"] = float64(mt.GetHistogram().GetSampleCount())
					case "lbtune_actuation_errors_total":
						got["errors"] = mt.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if got["timed"] != 2 || got["errors"] != 1 {
		t.Errorf("action balance: %v, want 2 timed and 1 error", got)
	}
	plain := timed(&weightsOnly{kind: "haproxy", name: "lb", weights: weightsOnlyBalancer{}}, m, "api", "lb").(interface {
		Balancing(context.Context, string) (agent.Balancing, error)
		SetBalance(context.Context, string, string) error
	})
	if _, err := plain.Balancing(ctx, "api"); !errors.Is(err, agent.ErrNoBalancing) {
		t.Errorf("balancer without an algorithm: %v, want ErrNoBalancing", err)
	}
	if err := plain.SetBalance(ctx, "api", agent.BalanceLeastConn); err == nil {
		t.Error("a balancer that cannot switch accepted a switch")
	}
}

// servingBalancer reports which servers serve (as *haproxy.Runtime does).
type servingBalancer struct {
	weightsOnlyBalancer
	serving map[string]bool
}

func (s servingBalancer) ServingServers(context.Context, string) (map[string]bool, error) {
	return s.serving, nil
}

// TestServingThroughWrappers: the wrappers the controller gets pass the
// balancer's serving states through (HAProxy's runtime API: the pool's
// size when the source is a request log), and say nothing (nil, nil) over
// a balancer that cannot tell, so the controller keeps the source's view
// without an error on every decision.
func TestServingThroughWrappers(t *testing.T) {
	ctx := context.Background()
	m := api.NewMetrics(prometheus.NewRegistry())
	type servingReporter interface {
		ServingServers(context.Context, string) (map[string]bool, error)
	}
	want := map[string]bool{"s1": true, "s2": false}
	for _, tc := range []struct {
		name string
		a    agent.Applier
		want map[string]bool
	}{
		{"weights only over haproxy", timed(&weightsOnly{kind: "haproxy", name: "lb", weights: servingBalancer{serving: want}}, m, "web", "lb"), want},
		{"weights only over a balancer that cannot tell", timed(&weightsOnly{kind: "nginx", name: "edge", weights: weightsOnlyBalancer{}}, m, "api", "edge"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sr, ok := tc.a.(servingReporter)
			if !ok {
				t.Fatalf("%T hides ServingServers from the controller", tc.a)
			}
			got, err := sr.ServingServers(ctx, "web")
			if err != nil || len(got) != len(tc.want) || got["s1"] != tc.want["s1"] || got["s2"] != tc.want["s2"] {
				t.Errorf("ServingServers = %v, %v; want %v, nil", got, err, tc.want)
			}
		})
	}
}

// TestPolicyBalance: /v1/policy's balance block takes the advice and its
// words from the last decision's Balance and BalanceReason fields, and the
// algorithm from the balancer; a balancer that cannot tell gives no block.
func TestPolicyBalance(t *testing.T) {
	ctx := context.Background()
	why := "balance: round robin (nginx default) on unequal servers (capacity max/min 4.00 >= 2.00): leastconn"
	tests := []struct {
		name       string
		applier    agent.Applier
		last       agent.Decision
		want       *api.PoolBalance
		wantAbsent bool
	}{
		{name: "advice", applier: &weightsOnly{kind: "nginx", name: "edge", weights: &fakeBalancer{alg: ""}},
			last: agent.Decision{Balance: agent.BalanceLeastConn, BalanceReason: why, Reason: "agent: keep; " + why},
			want: &api.PoolBalance{Algorithm: "", Auto: true, Advice: agent.BalanceLeastConn, Reason: why}},
		// Words in the reason text that the rule did not set are not advice.
		{name: "no advice", applier: &weightsOnly{kind: "nginx", name: "edge", weights: &fakeBalancer{alg: "least_conn"}},
			last: agent.Decision{Reason: "agent: keep; balance: an operator's note"},
			want: &api.PoolBalance{Algorithm: "least_conn", Auto: true}},
		{name: "balancer cannot tell", applier: &weightsOnly{kind: "haproxy", name: "lb", weights: weightsOnlyBalancer{}},
			last: agent.Decision{Balance: agent.BalanceLeastConn, BalanceReason: why}, wantAbsent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pool{name: "web", applier: tc.applier}
			got := p.balance(ctx, tc.last)
			if tc.wantAbsent {
				if got != nil {
					t.Errorf("balance %+v, want none", got)
				}
				return
			}
			if got == nil || *got != *tc.want {
				t.Errorf("balance %+v, want %+v", got, tc.want)
			}
		})
	}
}
