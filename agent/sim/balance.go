package sim

// pick chooses the up server for the next request of p with the pool's
// balancer, or returns -1 when no up server has a positive weight.
func (s *Sim) pick(p *pool) int32 {
	n := len(p.up)
	if n == 0 {
		return -1
	}
	switch p.cfg.Balancer {
	case SmoothWRR:
		return s.pickSmooth(p)
	case TwoChoices:
		if n == 1 {
			if s.servers[p.up[0]].weight <= 0 {
				return -1
			}
			return p.up[0]
		}
		i := p.route.IntN(n)
		j := p.route.IntN(n - 1)
		if j >= i {
			j++
		}
		a, b := p.up[i], p.up[j]
		if s.lessLoaded(b, a) {
			a = b
		}
		if s.servers[a].weight <= 0 {
			return s.pickLeast(p)
		}
		return a
	case HAProxyRR:
		if p.dirty {
			s.buildSchedule(p)
		}
		if len(p.sched) == 0 {
			return -1
		}
		id := p.up[p.sched[p.schedAt]]
		p.schedAt++
		if p.schedAt == len(p.sched) {
			p.schedAt = 0
		}
		return id
	default:
		return s.pickLeast(p)
	}
}

// lessLoaded reports whether server a has fewer active requests per unit of
// weight than b (cross-multiplied: no division). Zero weights lose.
func (s *Sim) lessLoaded(a, b int32) bool {
	sa, sb := &s.servers[a], &s.servers[b]
	if sb.weight <= 0 {
		return sa.weight > 0
	}
	if sa.weight <= 0 {
		return false
	}
	return (sa.busy+sa.q.n)*sb.weight < (sb.busy+sb.q.n)*sa.weight
}

// pickLeast is NGINX least_conn: the fewest active requests per weight,
// scanning from a rotating start so that ties take turns.
func (s *Sim) pickLeast(p *pool) int32 {
	n := len(p.up)
	best := int32(-1)
	at := p.rr
	for k := 0; k < n; k++ {
		i := at + k
		if i >= n {
			i -= n
		}
		id := p.up[i]
		if s.servers[id].weight <= 0 {
			continue
		}
		if best < 0 || s.lessLoaded(id, best) {
			best = id
			p.rr = i + 1
		}
	}
	if p.rr >= n {
		p.rr = 0
	}
	return best
}

// pickSmooth is NGINX's smooth weighted round robin: every server's current
// weight grows by its weight, the largest wins and loses the total.
func (s *Sim) pickSmooth(p *pool) int32 {
	best := int32(-1)
	total := 0
	for _, id := range p.up {
		sv := &s.servers[id]
		if sv.weight <= 0 {
			continue
		}
		sv.cur += sv.weight
		total += sv.weight
		if best < 0 || sv.cur > s.servers[best].cur {
			best = id
		}
	}
	if best >= 0 {
		s.servers[best].cur -= total
	}
	return best
}

// maxSchedule bounds the precomputed HAProxy cycle; beyond it weights are
// scaled down proportionally.
const maxSchedule = 1 << 14

// buildSchedule precomputes one HAProxy roundrobin cycle over the up
// servers: a smooth interleaving in which each server appears weight/gcd
// times, the order HAProxy's weighted round robin tree produces.
func (s *Sim) buildSchedule(p *pool) {
	p.dirty = false
	p.sched = p.sched[:0]
	p.schedAt = 0
	w := make([]int, len(p.up))
	g, total := 0, 0
	for i, id := range p.up {
		w[i] = s.servers[id].weight
		if w[i] > 0 {
			g = gcd(g, w[i])
		}
	}
	if g == 0 {
		return
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxSchedule {
		f := float64(maxSchedule) / float64(total)
		total = 0
		for i := range w {
			if w[i] > 0 {
				w[i] = max(1, int(float64(w[i])*f))
			}
			total += w[i]
		}
	}
	cur := make([]int, len(w))
	for range total {
		best := -1
		for i := range w {
			if w[i] == 0 {
				continue
			}
			cur[i] += w[i]
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		p.sched = append(p.sched, int32(best))
	}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
