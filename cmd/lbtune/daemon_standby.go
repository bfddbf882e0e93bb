package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/lbtune/lbtune/actuator/haproxy"
	"github.com/lbtune/lbtune/agent"
)

// daemonStandby scales an HAProxy backend whose servers are all
// configured and running by moving them between service and standby:
// reserve servers powered up (state ready) and down (drain until no
// session is left, then maint), so no request fails on scale-in. It sets
// weights through the runtime API too.
type daemonStandby struct {
	rt *haproxy.Runtime
	// drain bounds the wait for a draining server's sessions.
	drain time.Duration
	// poll is how often a drain checks the sessions left.
	poll time.Duration
}

var _ agent.Applier = (*daemonStandby)(nil)

// SetWeights sets weights over the runtime API.
func (s *daemonStandby) SetWeights(ctx context.Context, pool string, w map[string]int) error {
	return s.rt.SetWeights(ctx, pool, w)
}

// Scale brings backend pool to n serving servers: standby servers (maint)
// are put back in service in name order; surplus servers, last name first,
// are drained and then put in maint.
func (s *daemonStandby) Scale(ctx context.Context, pool string, n int) error {
	rows, err := s.rt.Servers(ctx, pool)
	if err != nil {
		return fmt.Errorf("scale %s: %w", pool, err)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Server < rows[j].Server })
	var serving, standby []string
	for _, r := range rows {
		switch {
		case r.Serving():
			serving = append(serving, r.Server)
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
		for _, name := range standby[:need] {
			if err := s.rt.SetState(ctx, pool, name, haproxy.StateReady); err != nil {
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

// standby drains one server until idle (or the drain timeout), then puts
// it in maintenance.
func (s *daemonStandby) standby(ctx context.Context, pool, server string) error {
	if err := s.rt.SetState(ctx, pool, server, haproxy.StateDrain); err != nil {
		return err
	}
	deadline := time.Now().Add(s.drain)
	for {
		st, err := s.rt.ServerStat(ctx, pool, server)
		if err != nil {
			return err
		}
		if st.Scur == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s/%s: %w", pool, server, ctx.Err())
		case <-time.After(s.poll):
		}
	}
	return s.rt.SetState(ctx, pool, server, haproxy.StateMaint)
}
