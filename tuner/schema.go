package tuner

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/datasets"
)

// What the tuner keeps in its store (datasets.Store), beside the snapshots
// the collector loops append. The JSON formats and keys below are what
// stores written by earlier versions hold: change them only with a
// migration.
//
//	bucket     key                          value
//	meta       "daemon/pool/" + POOL        PoolState (JSON)
//	decisions  decision time (AppendRecord) Record (JSON)
//	rewards    decision time (AppendRecord) RewardRecord (JSON)
//	events     phase start (AppendEvent)    datasets.Event of kind "load"
//	policies   "agent@" + POOL + "/v..."    learned policy (agent.EncodePolicy, datasets.Store.PutPolicy)
//
// The model store named by model.path is read, never written: the GMM
// (model.Load) and the latest version of trainedPolicyName.

// poolStatePrefix starts the datasets.BucketMeta key of every pool's state.
const poolStatePrefix = "daemon/pool/"

// poolStateKey is the datasets.BucketMeta key of a pool's PoolState.
func poolStateKey(pool string) string { return poolStatePrefix + pool }

// trainedPolicyName is the store name of the policy `lbtune train` writes
// and the tuner's agent runs with.
const trainedPolicyName = "agent"

// LearnedPolicyName is the store name of the policy a pool learns online:
// versions "agent@POOL/v000001", ... beside the trained "agent/v...".
func LearnedPolicyName(pool string) string { return trainedPolicyName + "@" + pool }

// loadEventKind is the datasets.Event kind recorded when a simulated
// pool's offered rate changes (Value = the new rate in requests/s); charts
// draw these as load phases.
const loadEventKind = "load"

// Record is one decision as stored in datasets.BucketDecisions: the
// decision with the pool's sequence number, which increases by one per
// decision across restarts (the decision id).
type Record struct {
	Seq uint64 `json:"seq"`
	agent.Decision
}

// RewardRecord is one reward as stored in datasets.BucketRewards, keyed by
// the time of the decision it follows.
type RewardRecord struct {
	Pool   string  `json:"pool"`
	Seq    uint64  `json:"seq"`
	Reward float64 `json:"reward"`
}

// PoolState is what a pool persists in datasets.BucketMeta so a restarted
// tuner resumes where it stopped.
type PoolState struct {
	Mode   string `json:"mode"`
	Paused bool   `json:"paused"`
	// Seq is the last decision id recorded.
	Seq uint64 `json:"seq"`
	// Servers is the last server count applied (0 = none yet).
	Servers int `json:"servers"`
	// Weights are the last weights applied.
	Weights map[string]int `json:"weights,omitempty"`
	// SimElapsed is a simulated pool's clock (time since its start).
	SimElapsed time.Duration `json:"sim_elapsed,omitempty"`
	// SimStart is a simulated pool's t = 0.
	SimStart time.Time `json:"sim_start,omitzero"`
	// Template is the YAML spec of a pool started by `template up`.
	Template string `json:"template,omitempty"`
}

// loadPoolState reads a pool's persisted state; ok is false when there is none.
func loadPoolState(store *datasets.Store, pool string) (st PoolState, ok bool, err error) {
	b, err := store.Get(datasets.BucketMeta, poolStateKey(pool))
	if errors.Is(err, datasets.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read state of pool %s: %w", pool, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, false, fmt.Errorf("decode state of pool %s: %w", pool, err)
	}
	return st, true, nil
}

// ReadDecisions returns the newest limit (0 = all) decision records of
// pool ("" = every pool) at or after since, oldest first.
func ReadDecisions(store *datasets.Store, pool string, since time.Time, limit int) ([]Record, error) {
	if limit > 0 {
		return latestDecisions(store, pool, since, limit)
	}
	var out []Record
	err := store.RangeRecords(datasets.BucketDecisions, since, time.Time{}, func(_ time.Time, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode decision: %w", err)
		}
		if pool == "" || r.Pool == pool {
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	return out, nil
}

// latestDecisions is ReadDecisions with a limit: it walks the decisions
// bucket back from its newest record (datasets.Store.LatestRecords), so
// the API's ?limit= costs O(limit) records, not the whole history.
func latestDecisions(store *datasets.Store, pool string, since time.Time, limit int) ([]Record, error) {
	var keep func(time.Time, []byte) (bool, error)
	if pool != "" {
		keep = func(_ time.Time, v []byte) (bool, error) {
			var p struct {
				Pool string `json:"pool"`
			}
			if err := json.Unmarshal(v, &p); err != nil {
				return false, fmt.Errorf("decode decision: %w", err)
			}
			return p.Pool == pool, nil
		}
	}
	recs, err := store.LatestRecords(datasets.BucketDecisions, since, limit, keep)
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	out := make([]Record, len(recs))
	for i, tr := range recs {
		if err := json.Unmarshal(tr.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("read decisions: decode decision at %s: %w", tr.Time.Format(time.RFC3339Nano), err)
		}
	}
	return out, nil
}

// LoadPolicy reads the latest version of the named policy from st, for
// tests and tools that inspect a daemon's store.
func LoadPolicy(st *datasets.Store, name string) (*agent.PolicyTable, error) {
	b, _, err := st.LatestPolicy(name)
	if err != nil {
		return nil, err
	}
	return agent.DecodePolicy(b)
}
