package agent

import (
	"encoding/json"
	"testing"
)

// FuzzDecodePolicy: a stored policy is outside input (a store or file
// from anywhere). Decoding must never panic, and whatever it accepts must
// be a table the agent can run on.
func FuzzDecodePolicy(f *testing.F) {
	tb := NewPolicyTable(2, RLConfig{})
	tb.Steps = 3
	good, err := json.Marshal(tb)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1,"k":1,"levels":[{"z":0,"tail":0.05}],"q":[[0]],"n":[[0]],"weight_q":[[0,0,0],[0,0,0]]}`))
	f.Add([]byte(`{"version":1,"k":1,"levels":[],"q":[],"n":[],"weight_q":[]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePolicy(b)
		if err != nil {
			return
		}
		post := make([]float64, p.K)
		post[0] = 1
		v := p.levelValues(post)
		if len(v) != len(p.Levels) {
			t.Fatalf("%d values for %d levels", len(v), len(p.Levels))
		}
		for k := range p.K {
			_ = p.Preferred(k)
			_ = p.WeightQ[2*k+1][rlArgmax(p.WeightQ[2*k+1])]
		}
	})
}
