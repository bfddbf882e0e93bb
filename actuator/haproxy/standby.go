package haproxy

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/lbtune/lbtune/agent"
)

// Standby scales an HAProxy backend whose servers are all configured and
// running by moving them between service and standby: reserve servers
// powered up (state ready) and down (drain until no session is left, then
// maint), so no request fails on scale-in. It sets weights through the
// runtime API too. With Runtime it is an agent.Applier (`haproxy: standby:
// true` in lbtune.yaml).
type Standby struct {
	// Runtime is the backend's HAProxy runtime API.
	Runtime *Runtime
	// Drain bounds the wait for a draining server's sessions.
	Drain time.Duration
	// Poll is how often a drain checks the sessions left.
	Poll time.Duration
}

// NewStandby returns a Standby over rt that waits up to 30 s for a
// draining server's sessions, checking every 100 ms.
func NewStandby(rt *Runtime) *Standby {
	return &Standby{Runtime: rt, Drain: 30 * time.Second, Poll: 100 * time.Millisecond}
}

// SetWeights sets weights over the runtime API.
func (s *Standby) SetWeights(ctx context.Context, pool string, w map[string]int) error {
	return s.Runtime.SetWeights(ctx, pool, w)
}

// Balancing reports backend pool's algorithm (Runtime.Balancing).
func (s *Standby) Balancing(ctx context.Context, pool string) (agent.Balancing, error) {
	return s.Runtime.Balancing(ctx, pool)
}

// ServingServers reports which servers of backend pool serve
// (Runtime.ServingServers): those in standby do not.
func (s *Standby) ServingServers(ctx context.Context, pool string) (map[string]bool, error) {
	return s.Runtime.ServingServers(ctx, pool)
}

// Scale brings backend pool to n serving servers: standby servers (maint)
// are put back in service in name order; surplus servers, last name first,
// are drained and then put in maint. A returning server first takes the
// serving servers' median weight, so it rejoins with the share the pool's
// current weights give a server, not whatever weight it left with (the
// weights may have moved a long way while it stood by).
func (s *Standby) Scale(ctx context.Context, pool string, n int) error {
	rows, err := s.Runtime.Servers(ctx, pool)
	if err != nil {
		return fmt.Errorf("scale %s: %w", pool, err)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Server < rows[j].Server })
	var serving, standby []string
	var weights []int
	for _, r := range rows {
		switch {
		case r.Serving():
			serving = append(serving, r.Server)
			weights = append(weights, r.Weight)
		case r.Status == "MAINT" || r.Status == "DRAIN":
			standby = append(standby, r.Server)
		}
	}
	switch {
	case n > len(serving):
		need := n - len(serving)
		if need > len(standby) {
			return fmt.Errorf("scale %s to %d: only %d serving and %d standby servers configured", pool, n, len(serving), len(standby))
		}
		w := medianWeight(weights)
		for _, name := range standby[:need] {
			if w > 0 {
				if err := s.Runtime.SetWeight(ctx, pool, name, w); err != nil {
					return fmt.Errorf("scale %s up: %w", pool, err)
				}
			}
			if err := s.Runtime.SetState(ctx, pool, name, StateReady); err != nil {
				return fmt.Errorf("scale %s up: %w", pool, err)
			}
		}
	case n < len(serving):
		for i := len(serving) - 1; i >= n; i-- {
			if err := s.standby(ctx, pool, serving[i]); err != nil {
				return fmt.Errorf("scale %s down: %w", pool, err)
			}
		}
	}
	return nil
}

// medianWeight is the median of the serving servers' weights (the lower
// middle one for an even count), or 0 when none serves or it is 0 (then the
// returning server keeps its own).
func medianWeight(w []int) int {
	if len(w) == 0 {
		return 0
	}
	w = append([]int(nil), w...)
	sort.Ints(w)
	return w[(len(w)-1)/2]
}

// standby drains one server until idle (or the drain timeout), then puts
// it in maintenance.
func (s *Standby) standby(ctx context.Context, pool, server string) error {
	if err := s.Runtime.SetState(ctx, pool, server, StateDrain); err != nil {
		return err
	}
	deadline := time.Now().Add(s.Drain)
	for {
		st, err := s.Runtime.ServerStat(ctx, pool, server)
		if err != nil {
			return err
		}
		if st.Scur == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s/%s: %w", pool, server, ctx.Err())
		case <-time.After(s.Poll):
		}
	}
	return s.Runtime.SetState(ctx, pool, server, StateMaint)
}
