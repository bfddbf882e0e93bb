package agent

import (
	"math"
	"testing"
	"time"

	"github.com/lbtune/lbtune/datasets"
)

// TestTransitionsFromRealRecording turns a shipped recording of a real
// HAProxy testbed (1 s snapshots, a scripted weight change every 20 s)
// into transitions, in real and in pool units, and fits the weight values
// on them.
func TestTransitionsFromRealRecording(t *testing.T) {
	snaps, err := datasets.Load("../datasets/haproxy-phases.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cfg    RLConfig
		states LoadStates
	}{
		{"real units, one state", RLConfig{}, nil},
		{"pool units, service rate from latency", RLConfig{PoolUnits: true}, &fakeStates{post: []float64{0.8, 0.2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := TransitionsFromRecording(snaps, "medium", tc.states, Template{TargetP95: 80 * time.Millisecond}, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(tr) < len(snaps)/2 {
				t.Fatalf("%d transitions from %d snapshots", len(tr), len(snaps))
			}
			var acts [numWeightActions]int
			for _, x := range tr {
				acts[x.WeightAction]++
				if math.IsNaN(x.Reward) || x.Reward > 0 {
					t.Fatalf("reward %v", x.Reward)
				}
			}
			// About one change per 20 s of the ~1250 s recording moves a
			// medium weight (changes hit one of 8 servers at random).
			if moved := acts[WeightShift] + acts[WeightReset]; moved < 3 || moved > 60 {
				t.Errorf("weight actions keep/shift/reset = %v: want a few recorded changes", acts)
			}
			k := 1
			if tc.states != nil {
				k = tc.states.K()
			}
			tb := NewPolicyTable(k, tc.cfg)
			before := append([]float64(nil), tb.WeightQ[0]...)
			if err := tb.FitOffline(tr, 0.5, 20); err != nil {
				t.Fatal(err)
			}
			if tb.WeightQ[0][WeightKeep] == before[WeightKeep] || tb.WeightQ[0][WeightKeep] >= 0 {
				t.Errorf("keep value %v after fitting (was %v): want the logged (negative) return", tb.WeightQ[0][WeightKeep], before[WeightKeep])
			}
		})
	}
	if tr, err := TransitionsFromRecording(snaps, "nosuchpool", nil, Template{TargetP95: time.Second}, RLConfig{}); err != nil || len(tr) != 0 {
		t.Fatalf("unknown pool: %d transitions, %v", len(tr), err)
	}
}
