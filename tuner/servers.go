package tuner

import (
	"context"
	"fmt"

	"github.com/lbtune/lbtune/actuator"
)

// counter is what Servers needs of an applier that runs servers.
type counter interface {
	Count(ctx context.Context, pool string) (actuator.Count, error)
}

// Servers counts a pool's servers by state (static, own, booting, failed)
// as its actuator sees them. Pools whose actuator does not run servers
// (weights only, simulated) return an error.
func (d *Daemon) Servers(ctx context.Context, pool string) (actuator.Count, error) {
	p, err := d.findPool(pool)
	if err != nil {
		return actuator.Count{}, err
	}
	c, ok := p.applier.(counter)
	if !ok {
		return actuator.Count{}, fmt.Errorf("pool %s: its actuator does not count servers", pool)
	}
	return c.Count(ctx, pool)
}
