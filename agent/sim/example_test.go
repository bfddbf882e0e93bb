package sim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/lbtune/lbtune/agent/sim"
)

// A pool of two servers takes a ramp; scaling to four boots two more, which
// join the balancer after the boot delay; scaling back drains two.
func Example() {
	ctx := context.Background()
	tr := sim.Synthetic("ramp", []sim.Phase{{Duration: 10 * time.Minute, RPS: 20}, {Duration: 10 * time.Minute, RPS: 60}}, nil)
	s, err := sim.New(sim.Config{Seed: 1, Trace: tr, Pools: []sim.PoolConfig{{
		Name: "web", Servers: 2, BootDelay: time.Minute,
		Classes: []sim.Class{{Name: "medium", Share: 1, Service: sim.Dist{Kind: "exp", Mean: 0.05}}},
	}}})
	if err != nil {
		panic(err)
	}
	s.Advance(10 * time.Minute)
	_ = s.Scale(ctx, "web", 4)
	snap, _ := s.Scrape(ctx)
	fmt.Println("serving:", len(snap.Pools[0].Servers), "booting:", s.Booting("web"))
	s.Advance(12 * time.Minute)
	snap, _ = s.Scrape(ctx)
	fmt.Println("serving:", len(snap.Pools[0].Servers), "booting:", s.Booting("web"))
	_ = s.Scale(ctx, "web", 2)
	s.Advance(20 * time.Minute)
	snap, _ = s.Scrape(ctx)
	t := s.Truth()[0]
	fmt.Println("serving:", len(snap.Pools[0].Servers), "failed:", t.Failed+t.Dropped, "actions:", t.Actions, "minutes:", len(t.Minutes))
	// Output:
	// serving: 2 booting: 2
	// serving: 4 booting: 0
	// serving: 2 failed: 0 actions: 2 minutes: 20
}
