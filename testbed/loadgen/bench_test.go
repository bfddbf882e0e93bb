package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lbtune/lbtune/testbed/dist"
)

// BenchmarkPacerPace is the cost of deciding one arrival: it bounds the
// rate one pacing goroutine can drive.
func BenchmarkPacerPace(b *testing.B) {
	for _, k := range []dist.Kind{dist.Exponential, dist.Zipf} {
		b.Run(string(k), func(b *testing.B) {
			p := NewPacer(Constant(1e6, k, time.Hour), rand.NewPCG(1, 1))
			var elapsed time.Duration
			for i := range b.N {
				w, _ := p.Pace(elapsed, uint64(i))
				elapsed += w
			}
		})
	}
}

// BenchmarkSummary folds 100k records (about 20 s at 5000 req/s) into a Summary.
func BenchmarkSummary(b *testing.B) {
	start := time.Now()
	recs := make([]Record, 100000)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range recs {
		recs[i] = Record{Time: start.Add(time.Duration(i) * 200 * time.Microsecond), Status: 200, LatencyMs: r.ExpFloat64()}
	}
	sched := Constant(5000, dist.Exponential, 20*time.Second)
	b.ResetTimer()
	for range b.N {
		a := newAccumulator(start)
		for _, rec := range recs {
			a.add(rec)
		}
		_ = a.summary(sched, 20*time.Second, 20*time.Second, false)
	}
}
