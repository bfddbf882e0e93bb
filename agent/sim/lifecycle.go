package sim

import (
	"context"
	"fmt"
	"slices"
)

// Scale brings pool to n serving servers (it satisfies agent.Applier). More
// servers: draining ones are put back in service first, then new ones boot
// and serve after the pool's BootDelay. Fewer: booting servers are cancelled
// first (newest first), then the least loaded up servers drain: they take no
// new requests, finish what they hold and are then removed. Every call that
// changes the ordered count is one action; an action against the previous
// one's direction within 5 minutes is a reversal.
func (s *Sim) Scale(ctx context.Context, poolName string, n int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sim: scale %s: %w", poolName, err)
	}
	p, err := s.pool(poolName)
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("sim: scale %s to %d servers: negative count", poolName, n)
	}
	cur := len(p.up) + len(p.booting)
	if n == cur {
		return nil
	}
	s.countAction(p, n-cur)
	p.target = n
	for cur < n {
		s.grow(p)
		cur++
	}
	for cur > n {
		s.shrink(p)
		cur--
	}
	return nil
}

func (s *Sim) countAction(p *pool, delta int) {
	dir := 1
	if delta < 0 {
		dir = -1
	}
	p.truth.Actions++
	if p.lastDir != 0 && dir != p.lastDir && s.now-p.lastActT <= 300 {
		p.truth.Reversals++
	}
	p.lastDir, p.lastActT = dir, s.now
}

// grow adds one serving server: a draining one back, else a new boot.
func (s *Sim) grow(p *pool) {
	for _, id := range slices.Backward(p.all) {
		if s.servers[id].state == stDrain {
			s.servers[id].state = stUp
			s.insertUp(p, id)
			return
		}
	}
	id := s.addServer(p)
	p.booting = append(p.booting, id)
	if p.cfg.BootDelay <= 0 {
		s.bootDone(p, id)
		return
	}
	s.pushTimer(timer{t: s.now + p.cfg.BootDelay.Seconds(), kind: timerBoot, pool: p.idx, srv: id, gen: s.servers[id].gen})
}

// shrink removes one serving server: cancels the newest boot, else drains
// the least loaded up server (the newest among equals).
func (s *Sim) shrink(p *pool) {
	if k := len(p.booting); k > 0 {
		id := p.booting[k-1]
		p.booting = p.booting[:k-1]
		sv := &s.servers[id]
		sv.state = stGone
		sv.gen++
		s.setPowered(p, p.powered-1)
		return
	}
	if len(p.up) == 0 {
		return
	}
	best := p.up[len(p.up)-1]
	for _, id := range slices.Backward(p.up) {
		a, b := &s.servers[id], &s.servers[best]
		if a.busy+a.q.n < b.busy+b.q.n {
			best = id
		}
	}
	s.removeUp(p, best)
	sv := &s.servers[best]
	sv.state = stDrain
	if sv.busy == 0 && sv.q.n == 0 {
		s.remove(p, best)
	}
}

// remove takes a drained or failed server out of the pool for good.
func (s *Sim) remove(p *pool, id int32) {
	sv := &s.servers[id]
	if sv.state != stDown {
		sv.state = stGone
	}
	if sv.state == stGone {
		if i := slices.Index(p.all, id); i >= 0 {
			p.all = slices.Delete(p.all, i, i+1)
		}
	}
	s.setPowered(p, p.powered-1)
}

func (s *Sim) insertUp(p *pool, id int32) {
	i, _ := slices.BinarySearch(p.up, id)
	p.up = slices.Insert(p.up, i, id)
	s.reindex(p)
}

func (s *Sim) removeUp(p *pool, id int32) {
	if i := slices.Index(p.up, id); i >= 0 {
		p.up = slices.Delete(p.up, i, i+1)
	}
	s.servers[id].upPos = -1
	s.reindex(p)
}

// reindex rebuilds the pool's dense balancing arrays after a change of its
// up servers or weights.
func (s *Sim) reindex(p *pool) {
	p.load, p.wt, p.cur = p.load[:0], p.wt[:0], p.cur[:0]
	p.sameW = len(p.up) > 0
	for i, id := range p.up {
		sv := &s.servers[id]
		sv.upPos = int32(i)
		p.load = append(p.load, int32(sv.busy+sv.q.n))
		p.wt = append(p.wt, int32(sv.weight))
		p.cur = append(p.cur, 0)
		if sv.weight <= 0 || sv.weight != s.servers[p.up[0]].weight {
			p.sameW = false
		}
	}
	p.dirty = true
	p.rr = 0
}

// bootDone brings a booted server into service.
func (s *Sim) bootDone(p *pool, id int32) {
	i := slices.Index(p.booting, id)
	if i < 0 {
		return
	}
	p.booting = slices.Delete(p.booting, i, i+1)
	s.servers[id].state = stUp
	s.insertUp(p, id)
	j, _ := slices.BinarySearch(p.all, id)
	p.all = slices.Insert(p.all, j, id)
}

// fireTimer handles the earliest boot or failure timer.
func (s *Sim) fireTimer() {
	tm := s.popTimer()
	p := s.pools[tm.pool]
	switch tm.kind {
	case timerBoot:
		if s.servers[tm.srv].gen == tm.gen && s.servers[tm.srv].state == stBooting {
			s.bootDone(p, tm.srv)
		}
	case timerFailAt:
		if len(p.up) > 0 {
			s.fail(p, p.up[p.fail.IntN(len(p.up))])
		}
	case timerFailRandom:
		if len(p.up) > 0 {
			s.fail(p, p.up[p.fail.IntN(len(p.up))])
		}
		s.scheduleRandomFailure(p, s.now)
	}
}

// scheduleRandomFailure draws the pool's next random failure: the pool
// fails at rate PerServerHour x (servers up now), re-drawn after each one.
func (s *Sim) scheduleRandomFailure(p *pool, from float64) {
	rate := p.cfg.Failures.PerServerHour / 3600 * float64(max(len(p.up), 1))
	s.pushTimer(timer{t: from + p.fail.ExpFloat64()/rate, kind: timerFailRandom, pool: p.idx})
}

// Fail makes the named server fail now: its in-service and queued requests
// fail, it shows as down in the next snapshot and is then gone; with
// Failures.Replace a replacement boots.
func (s *Sim) Fail(poolName, server string) error {
	p, err := s.pool(poolName)
	if err != nil {
		return err
	}
	for _, id := range p.up {
		if s.servers[id].name == server {
			s.fail(p, id)
			return nil
		}
	}
	return fmt.Errorf("sim: fail %s/%s: %w", poolName, server, ErrUnknownServer)
}

func (s *Sim) fail(p *pool, id int32) {
	sv := &s.servers[id]
	lost := sv.busy + sv.q.n
	p.truth.Failed += uint64(lost)
	p.minuteFailed += lost
	sv.counters.errors += uint64(lost)
	for sv.q.n > 0 {
		r := sv.q.pop()
		p.truth.SojournSeconds += s.now - r.arrival
	}
	sv.busy = 0
	sv.gen++
	s.removeUp(p, id)
	sv.state = stDown
	s.remove(p, id)
	p.truth.Failures++
	if p.cfg.Failures.Replace {
		s.grow(p)
	} else {
		p.target--
	}
}

// SetWeights sets the named servers' weights (it satisfies agent.Applier).
// Servers not named keep theirs; an unknown name or a negative weight is an
// error and changes nothing.
func (s *Sim) SetWeights(ctx context.Context, poolName string, weights map[string]int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sim: set weights %s: %w", poolName, err)
	}
	p, err := s.pool(poolName)
	if err != nil {
		return err
	}
	ids := make(map[string]int32, len(p.all))
	for _, id := range p.all {
		ids[s.servers[id].name] = id
	}
	for name, w := range weights {
		if _, ok := ids[name]; !ok {
			return fmt.Errorf("sim: set weights %s: server %q: %w", poolName, name, ErrUnknownServer)
		}
		if w < 0 {
			return fmt.Errorf("sim: set weights %s: server %q: negative weight %d", poolName, name, w)
		}
	}
	for name, w := range weights {
		s.servers[ids[name]].weight = w
	}
	s.reindex(p)
	return nil
}

// Booting is the number of servers of pool ordered but not yet serving.
func (s *Sim) Booting(poolName string) int {
	p, err := s.pool(poolName)
	if err != nil {
		return 0
	}
	return len(p.booting)
}

// Capacities maps each server the pool's balancer knows to its relative
// capacity (Speed x Slots of a reference Speed 1, Slots 1 server).
func (s *Sim) Capacities(poolName string) map[string]float64 {
	p, err := s.pool(poolName)
	if err != nil {
		return nil
	}
	m := make(map[string]float64, len(p.all))
	for _, id := range p.all {
		sv := &s.servers[id]
		m[sv.name] = sv.speed * float64(sv.slots)
	}
	return m
}
