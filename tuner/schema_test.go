package tuner

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbtune/lbtune/datasets"
)

// TestSchema pins the keys and JSON formats the tuner stores: stores
// written by earlier versions (the daemon in cmd/lbtune) must still load,
// and what is written now must be byte-identical.
func TestSchema(t *testing.T) {
	if got := poolStateKey("web"); got != "daemon/pool/web" {
		t.Errorf("pool state key %q, want daemon/pool/web", got)
	}
	if got := LearnedPolicyName("web"); got != "agent@web" {
		t.Errorf("learned policy name %q, want agent@web", got)
	}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"pool state", PoolState{Mode: "manual", Paused: true, Seq: 42, Servers: 3, Weights: map[string]int{"s1": 10},
			SimElapsed: 90 * time.Second, SimStart: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Template: "name: x\n"},
			`{"mode":"manual","paused":true,"seq":42,"servers":3,"weights":{"s1":10},"sim_elapsed":90000000000,"sim_start":"2026-01-01T00:00:00Z","template":"name: x\n"}`},
		{"pool state of a real pool", PoolState{Mode: "auto", Seq: 1},
			`{"mode":"auto","paused":false,"seq":1,"servers":0}`},
		{"reward", RewardRecord{Pool: "web", Seq: 7, Reward: -0.5}, `{"pool":"web","seq":7,"reward":-0.5}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("encoded\n%s\nwant\n%s", b, tc.want)
			}
		})
	}

	// A pool state and a decision record as the old daemon wrote them load.
	st, err := datasets.Open(filepath.Join(t.TempDir(), "lbtune.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(datasets.BucketMeta, "daemon/pool/web", []byte(tests[0].want)); err != nil {
		t.Fatal(err)
	}
	ps, ok, err := loadPoolState(st, "web")
	if err != nil || !ok || ps.Seq != 42 || ps.SimElapsed != 90*time.Second || ps.Weights["s1"] != 10 {
		t.Errorf("loadPoolState = %+v, %v, %v; want the stored state", ps, ok, err)
	}
	at := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	rec := `{"seq":9,"time":"2026-01-01T00:01:00Z","pool":"web","policy":"manual","servers":3,"outcome":"applied","reason":"operator asked +1: 2 -> 3 servers"}`
	if err := st.AppendRecord(datasets.BucketDecisions, at, []byte(rec)); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadDecisions(st, "web", time.Time{}, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ReadDecisions = %v, %v; want the one record", recs, err)
	}
	if r := recs[0]; r.Seq != 9 || r.Pool != "web" || r.Servers != 3 || !r.Time.Equal(at) {
		t.Errorf("decoded %+v, want seq 9 of pool web, 3 servers at %v", r, at)
	}
}
