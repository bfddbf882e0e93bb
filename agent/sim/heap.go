package sim

// pushEvent and popEvent keep s.events a 4-ary min-heap on t (shallower
// than a binary heap: fewer cache lines touched per pop); written out by
// hand, no container/heap interface calls, because they run twice per
// simulated request.
func (s *Sim) pushEvent(e event) {
	h := append(s.events, e)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 4
		if h[parent].t <= e.t {
			break
		}
		h[i] = h[parent]
		i = parent
	}
	h[i] = e
	s.events = h
}

func (s *Sim) popEvent() event {
	h := s.events
	top := h[0]
	n := len(h) - 1
	last := h[n]
	h = h[:n]
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		// The smallest of up to four children.
		m := c
		end := min(c+4, n)
		for j := c + 1; j < end; j++ {
			if h[j].t < h[m].t {
				m = j
			}
		}
		if last.t <= h[m].t {
			break
		}
		h[i] = h[m]
		i = m
	}
	if n > 0 {
		h[i] = last
	}
	s.events = h
	return top
}

// pushTimer and popTimer keep s.timers (boots, failures) a min-heap on t.
func (s *Sim) pushTimer(tm timer) {
	s.timers = append(s.timers, tm)
	i := len(s.timers) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if s.timers[parent].t <= s.timers[i].t {
			break
		}
		s.timers[i], s.timers[parent] = s.timers[parent], s.timers[i]
		i = parent
	}
}

func (s *Sim) popTimer() timer {
	h := s.timers
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		if r := l + 1; r < n && h[r].t < h[l].t {
			l = r
		}
		if h[i].t <= h[l].t {
			break
		}
		h[i], h[l] = h[l], h[i]
		i = l
	}
	s.timers = h
	return top
}
