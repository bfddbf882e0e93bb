package testbed

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// recordingSetter is a WeightSetter that remembers calls and fails on demand.
type recordingSetter struct {
	mu    sync.Mutex
	calls []map[string]int
	fail  bool
}

func (r *recordingSetter) SetWeights(_ context.Context, pool string, w map[string]int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("refused")
	}
	r.calls = append(r.calls, w)
	return nil
}

func TestExplorer(t *testing.T) {
	st := &State{Backends: []BackendState{
		{Pool: "light", Name: "light-1", Weight: 10}, {Pool: "light", Name: "light-2", Weight: 10},
		{Pool: "heavy", Name: "heavy-1", Weight: 10},
	}}
	tests := []struct {
		name      string
		fail      bool
		wantEmits bool
	}{
		{name: "changes are applied and emitted", wantEmits: true},
		{name: "refused changes are not emitted", fail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := &recordingSetter{fail: tc.fail}
			e := NewExplorer(st, set, 5*time.Millisecond, 30, rand.NewPCG(1, 2))
			e.ResetEvery = 4
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			var got []Change
			if err := e.Run(ctx, func(c Change) error { got = append(got, c); return nil }); err != nil {
				t.Fatal(err)
			}
			if !tc.wantEmits {
				if len(got) != 0 {
					t.Fatalf("emitted %d changes although every SetWeights failed", len(got))
				}
				return
			}
			if len(got) < 5 {
				t.Fatalf("only %d changes in 200ms at 5ms steps", len(got))
			}
			resets := 0
			for _, c := range got {
				if c.New < 1 || c.New > 30 || c.New == c.Old || c.Time.IsZero() {
					t.Fatalf("bad change %+v", c)
				}
				if c.Reason == "reset" {
					resets++
					if c.New != 10 {
						t.Fatalf("reset to %d, want the initial 10", c.New)
					}
				}
			}
			if resets == 0 {
				t.Error("no reset step in the run")
			}
		})
	}
}
