package loadgen

import (
	"math/rand/v2"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/lbtune/lbtune/testbed/dist"
)

// Pacer is a vegeta.Pacer that spaces hits by random inter-arrival times
// drawn from each phase's distribution at the phase's rate. Arrival times
// are absolute (each is the previous plus a gap), so a late wake-up is
// caught up rather than lost: the load stays open loop.
type Pacer struct {
	sched    Schedule
	samplers map[dist.Kind]*dist.Sampler
	next     time.Duration // elapsed time of the next arrival
	hits     uint64        // hits counted when next was drawn
	started  bool
}

var _ vegeta.Pacer = (*Pacer)(nil)

// NewPacer returns a Pacer for sched drawing gaps from src.
func NewPacer(sched Schedule, src rand.Source) *Pacer {
	p := &Pacer{sched: sched, samplers: map[dist.Kind]*dist.Sampler{}}
	r := rand.New(src)
	for _, ph := range sched.Phases {
		if _, ok := p.samplers[ph.Dist]; !ok {
			p.samplers[ph.Dist] = dist.New(ph.Dist, rand.NewPCG(r.Uint64(), r.Uint64()))
		}
	}
	return p
}

// Pace implements vegeta.Pacer: it returns how long to wait before the next
// hit, or stop once the schedule is over. vegeta calls it once per hit from
// one goroutine.
func (p *Pacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if !p.started || hits > p.hits {
		if !p.advance() {
			return 0, true
		}
		p.started, p.hits = true, hits
	}
	if w := p.next - elapsed; w > 0 {
		return w, false
	}
	return 0, false
}

// advance moves next to the following arrival; false when none is left.
func (p *Pacer) advance() bool {
	t := p.next
	if !p.started {
		t = 0
	}
	for {
		ph, end, ok := p.sched.At(t)
		if !ok {
			return false
		}
		if ph.Rate <= 0 {
			t = end // idle phase: skip to its end
			continue
		}
		gap := time.Duration(p.samplers[ph.Dist].Draw(float64(time.Second) / ph.Rate))
		if !p.started && ph.Dist == dist.Fixed {
			gap = 0 // a fixed schedule fires its first hit at once
		}
		if t+gap > end {
			// The gap crosses into the next phase: restart the draw there
			// (memoryless for exponential; a fair approximation otherwise).
			t = end
			if _, _, ok := p.sched.At(t); !ok {
				return false
			}
			continue
		}
		p.next = t + gap
		return true
	}
}

// Rate implements vegeta.Pacer: the scheduled mean rate at elapsed.
func (p *Pacer) Rate(elapsed time.Duration) float64 {
	ph, _, ok := p.sched.At(elapsed)
	if !ok {
		return 0
	}
	return ph.Rate
}
