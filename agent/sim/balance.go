package sim

import "math"

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
			if p.wt[0] <= 0 {
				return -1
			}
			return p.up[0]
		}
		i := p.route.IntN(n)
		j := p.route.IntN(n - 1)
		if j >= i {
			j++
		}
		if p.lessLoaded(j, i) {
			i = j
		}
		if p.wt[i] <= 0 {
			return s.pickLeast(p)
		}
		return p.up[i]
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

// lessLoaded reports whether up[a] has fewer active requests per unit of
// weight than up[b] (cross-multiplied: no division). Zero weights lose.
func (p *pool) lessLoaded(a, b int) bool {
	wa, wb := p.wt[a], p.wt[b]
	if wb <= 0 {
		return wa > 0
	}
	if wa <= 0 {
		return false
	}
	return p.load[a]*wb < p.load[b]*wa
}

// pickLeast is NGINX least_conn: the fewest active requests per weight,
// scanning from a rotating start so that ties take turns. With equal
// weights it is a plain argmin over the dense load array.
func (s *Sim) pickLeast(p *pool) int32 {
	n := len(p.up)
	best := -1
	i := p.rr
	if i >= n {
		i = 0
	}
	if p.sameW {
		// Argmin from the rotation point to the end, then from the start.
		bl := int32(math.MaxInt32)
		load := p.load
		for j := i; j < n; j++ {
			if load[j] < bl {
				bl, best = load[j], j
			}
		}
		for j := 0; j < i; j++ {
			if load[j] < bl {
				bl, best = load[j], j
			}
		}
	} else {
		for k := 0; k < n; k++ {
			if p.wt[i] > 0 && (best < 0 || p.lessLoaded(i, best)) {
				best = i
			}
			if i++; i == n {
				i = 0
			}
		}
		if best < 0 {
			return -1
		}
	}
	p.rr = best + 1
	return p.up[best]
}

// pickSmooth is NGINX's smooth weighted round robin: every server's current
// weight grows by its weight, the largest wins and loses the total.
func (s *Sim) pickSmooth(p *pool) int32 {
	best := -1
	var total int32
	cur, wt := p.cur, p.wt
	for i := range cur {
		w := wt[i]
		if w <= 0 {
			continue
		}
		cur[i] += w
		total += w
		if best < 0 || cur[i] > cur[best] {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	cur[best] -= total
	return p.up[best]
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
