package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestAdviseBalance: the rule over the algorithms a balancer reports, the
// capacity spreads around its two thresholds and missing estimates.
func TestAdviseBalance(t *testing.T) {
	speeds124 := map[string]float64{"s1": 0.43, "s2": 0.86, "s4": 1.71} // spread 3.98
	equal := map[string]float64{"a": 0.95, "b": 1.05}                   // 1.11
	at2 := map[string]float64{"a": 0.5, "b": 1}                         // 2 exactly
	below2 := map[string]float64{"a": 0.68, "b": 1.32}                  // 1.94
	demoMax := map[string]float64{"a": 0.814, "b": 1.186}               // 1.46: make demo's identical servers at most
	between := map[string]float64{"a": 0.85, "b": 1.15}                 // 1.35: between the thresholds
	for _, tc := range []struct {
		name   string
		b      Balancing
		caps   map[string]float64
		advice string
		why    string // a part of the reason ("" = no reason)
	}{
		{"haproxy roundrobin, 1:2:4", Balancing{Algorithm: "roundrobin"}, speeds124, BalanceLeastConn, "balance: roundrobin on unequal servers (capacity max/min 3.98 >= 2.00): leastconn"},
		{"haproxy static-rr, 1:2:4", Balancing{Algorithm: "static-rr"}, speeds124, BalanceLeastConn, "static-rr on unequal"},
		{"nginx default, 1:2:4", Balancing{Algorithm: ""}, speeds124, BalanceLeastConn, "round robin (nginx default) on unequal"},
		{"nginx auto rendering round robin, 1:2:4", Balancing{Algorithm: "", Auto: true}, speeds124, BalanceLeastConn, "unequal"},
		{"spread exactly 2", Balancing{Algorithm: "roundrobin"}, at2, BalanceLeastConn, "max/min 2.00 >= 2.00"},
		{"spread just below 2", Balancing{Algorithm: "roundrobin"}, below2, "", ""},
		{"identical servers' noisiest estimates", Balancing{Algorithm: "roundrobin"}, demoMax, "", ""},
		{"equal servers", Balancing{Algorithm: "roundrobin"}, equal, "", ""},
		{"haproxy leastconn, 1:2:4", Balancing{Algorithm: "leastconn"}, speeds124, "", ""},
		{"nginx least_conn, 1:2:4", Balancing{Algorithm: "least_conn"}, speeds124, "", ""},
		{"operator's leastconn on equal servers is kept", Balancing{Algorithm: "leastconn"}, equal, "", ""},
		{"source hashing is the operator's", Balancing{Algorithm: "source"}, speeds124, "", ""},
		{"nginx random is the operator's", Balancing{Algorithm: "random two"}, speeds124, "", ""},
		{"auto on least_conn, servers equal: back", Balancing{Algorithm: "least_conn", Auto: true}, equal, BalanceRoundRobin, "balance: least_conn on equal servers (capacity max/min 1.11 < 1.25): roundrobin"},
		{"auto on least_conn, between the thresholds: stays", Balancing{Algorithm: "least_conn", Auto: true}, between, "", ""},
		{"auto on round robin, between the thresholds: stays", Balancing{Algorithm: "", Auto: true}, between, "", ""},
		{"auto on least_conn, unequal: stays", Balancing{Algorithm: "least_conn", Auto: true}, speeds124, "", ""},
		{"no estimates", Balancing{Algorithm: "roundrobin"}, nil, "", ""},
		{"one server estimated", Balancing{Algorithm: "roundrobin"}, map[string]float64{"a": 1}, "", ""},
		{"zero estimates do not count", Balancing{Algorithm: "roundrobin"}, map[string]float64{"a": 0, "b": 2}, "", ""},
		{"auto, no estimates", Balancing{Algorithm: "least_conn", Auto: true}, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			advice, why := AdviseBalance(tc.b, tc.caps)
			if advice != tc.advice {
				t.Errorf("advice %q, want %q (reason %q)", advice, tc.advice, why)
			}
			if (why == "") != (tc.why == "") || !strings.Contains(why, tc.why) {
				t.Errorf("reason %q, want it to contain %q", why, tc.why)
			}
		})
	}
}

// ctlBalApplier reports an algorithm and records the algorithms set.
type ctlBalApplier struct {
	ctlApplier
	bal  Balancing
	err  error
	sets []string
}

func (a *ctlBalApplier) Balancing(context.Context, string) (Balancing, error) { return a.bal, a.err }

func (a *ctlBalApplier) SetBalance(_ context.Context, _ string, algorithm string) error {
	a.sets = append(a.sets, algorithm)
	if algorithm == BalanceLeastConn {
		a.bal.Algorithm = "least_conn"
	} else {
		a.bal.Algorithm = ""
	}
	return nil
}

// TestControllerBalance: the Applier's algorithm and the pool's capacities
// (estimated from the rates, as on HAProxy) make the decision's advice,
// named in its reason; only an auto Applier is asked to switch, never in
// shadow mode, and an Applier that cannot tell gets no advice.
func TestControllerBalance(t *testing.T) {
	// Two servers estimated at 0.4 and 1.6: a spread of 4.
	snap := unequalPairSnap
	for _, tc := range []struct {
		name    string
		applier *ctlBalApplier
		shadow  bool
		advice  string   // of the last decision
		outcome Outcome  // of the last decision
		sets    []string // the algorithms SetBalance was asked for
		warns   string   // the balance warnings logged, once each
	}{
		{name: "haproxy roundrobin: advice only", applier: &ctlBalApplier{bal: Balancing{Algorithm: "roundrobin"}}, advice: BalanceLeastConn, outcome: OutcomeNoop, warns: "balance advice: change the pool's algorithm"},
		{name: "haproxy leastconn: none", applier: &ctlBalApplier{bal: Balancing{Algorithm: "leastconn"}}, outcome: OutcomeNoop},
		{name: "not known: none", applier: &ctlBalApplier{err: ErrNoBalancing}, outcome: OutcomeNoop},
		{name: "read error: none", applier: &ctlBalApplier{err: errors.New("dial: refused")}, outcome: OutcomeNoop},
		// The first advice switches; the next ticks see least_conn and keep it.
		{name: "nginx auto: switched once", applier: &ctlBalApplier{bal: Balancing{Auto: true}}, outcome: OutcomeNoop, sets: []string{BalanceLeastConn}, warns: "balance advice: lbtune switches the algorithm"},
		{name: "nginx auto in shadow mode: dry-run", applier: &ctlBalApplier{bal: Balancing{Auto: true}}, shadow: true, advice: BalanceLeastConn, outcome: OutcomeDryRun, warns: "balance advice: lbtune switches the algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ring := NewSnapshotRing(16)
			var logs bytes.Buffer
			c, err := NewController(ControllerConfig{Interval: 5 * time.Second, StaleAfter: time.Hour,
				Pools:  []PoolControl{{Name: "web", Policy: policyFunc(func(Observation) {})}},
				Source: ring, Applier: tc.applier, Shadow: tc.shadow,
				Guard:  NewGuard(DefaultGuardConfig(), nil),
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
			if err != nil {
				t.Fatal(err)
			}
			var decs []Decision
			for i := range 9 {
				ring.Add(snap(i))
				if i > 0 {
					decs = append(decs, c.Tick(context.Background(), snap(i).Time)[0])
				}
			}
			// No advice before the capacities are estimated (3 samples).
			if decs[0].Balance != "" {
				t.Errorf("first decision advises %q before any capacity estimate", decs[0].Balance)
			}
			last := decs[len(decs)-1]
			if last.Balance != tc.advice || last.Outcome != tc.outcome {
				t.Errorf("last decision: balance %q outcome %q, want %q %q (reason %q, error %q)", last.Balance, last.Outcome, tc.advice, tc.outcome, last.Reason, last.Error)
			}
			if named := strings.Contains(last.Reason, "balance: "); named != (tc.advice != "") {
				t.Errorf("reason %q names the advice: %v, want %v", last.Reason, named, tc.advice != "")
			}
			if tc.advice == BalanceLeastConn && !strings.Contains(last.Reason, "unequal servers (capacity max/min 4.00 >= 2.00): leastconn") {
				t.Errorf("reason %q, want the spread 4.00 and leastconn", last.Reason)
			}
			var warns []string
			for _, line := range strings.Split(logs.String(), "\n") {
				if _, msg, ok := strings.Cut(line, "msg=\""); ok && strings.HasPrefix(msg, "balance advice") {
					warns = append(warns, msg[:strings.IndexByte(msg, '"')])
				}
			}
			if strings.Join(warns, "|") != tc.warns {
				t.Errorf("balance warnings %q, want %q once", warns, tc.warns)
			}
			if strings.Join(tc.applier.sets, ",") != strings.Join(tc.sets, ",") {
				t.Errorf("SetBalance calls %v, want %v", tc.applier.sets, tc.sets)
			}
			if len(tc.sets) > 0 {
				switched := 0
				for _, d := range decs {
					if d.Balance != "" {
						switched++
						if d.Outcome != OutcomeApplied {
							t.Errorf("the switch's decision outcome %q, want applied", d.Outcome)
						}
					}
				}
				if switched != 1 {
					t.Errorf("%d decisions advised a switch, want 1", switched)
				}
			}
		})
	}
}

// TestGuardStaleBalance: stale data refuses a balance change like any other.
func TestGuardStaleBalance(t *testing.T) {
	g := NewGuard(GuardConfig{StaleAfter: time.Minute}, nil)
	d := g.Check(Observation{Pool: "web", Time: t0, DataAge: 2 * time.Minute}, Decision{Balance: BalanceLeastConn})
	if d.Balance != "" || d.Outcome != OutcomeRefused {
		t.Errorf("stale: balance %q outcome %q, want none, refused", d.Balance, d.Outcome)
	}
}
