package tuner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner/config"
)

// Template starts (up) or stops (down) the pool described by spec, a YAML
// pool entry as in lbtune.yaml. Up validates it against the configured
// sources and actuators, orders the template's minimum servers and starts
// deciding for it; the spec is persisted so a restart brings the pool
// back. Down pauses the pool, drains it to zero servers (the actuator
// drains each server before it stops, so no request fails) and forgets it.
func (d *Daemon) Template(ctx context.Context, op string, spec []byte) (string, error) {
	pc, err := d.cfg.ParsePool(spec)
	if err != nil {
		return "", fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	switch op {
	case "up":
		if _, err := d.findPool(pc.Name); err == nil {
			return "", fmt.Errorf("template up: pool %s already runs: %w", pc.Name, api.ErrConflict)
		}
		_, hadState, _ := loadPoolState(d.store, pc.Name)
		p, err := d.newPool(pc, d.wall)
		if err != nil {
			return "", fmt.Errorf("template up %s: %w", pc.Name, err)
		}
		// A pool that does not come up leaves nothing behind: no state
		// (newPool saved one), no collector loop.
		forget := func() {
			if !hadState {
				_ = d.store.Delete(datasets.BucketMeta, poolStateKey(p.name))
			}
			if p.sim != nil {
				d.mu.Lock()
				delete(d.loops, p.source)
				d.mu.Unlock()
			}
		}
		if pa, ok := p.applier.(poolAdder); ok {
			pa.AddPool(pc)
		}
		if p.sim == nil && p.mode != config.ModeShadow {
			if err := p.applier.Scale(ctx, p.name, max(p.template.Min, 1)); err != nil {
				forget()
				return "", fmt.Errorf("template up %s: start %d servers: %w", pc.Name, p.template.Min, err)
			}
		}
		p.templateSpec = string(spec)
		if err := p.persist(); err != nil {
			forget()
			return "", err
		}
		d.mu.Lock()
		d.pools = append(d.pools, p)
		d.mu.Unlock()
		if d.spawn != nil {
			d.startPool(d.runCtx, p)
		}
		if p.sim == nil && p.mode == config.ModeShadow {
			return fmt.Sprintf("pool %s up in shadow mode: no server started (decisions are recorded, nothing is changed)", pc.Name), nil
		}
		return fmt.Sprintf("pool %s up with %d servers", pc.Name, max(p.template.Min, 1)), nil
	case "down":
		p, err := d.findPool(pc.Name)
		if err != nil {
			// A template pool skipped at start (restoreTemplates) does not
			// run, but its stored state does: drop it.
			if st, ok, _ := loadPoolState(d.store, pc.Name); ok && st.Template != "" {
				if derr := d.store.Delete(datasets.BucketMeta, poolStateKey(pc.Name)); derr != nil {
					return "", fmt.Errorf("template down %s: %w", pc.Name, derr)
				}
				return fmt.Sprintf("pool %s was not running (its stored spec was skipped at start): its stored state is dropped", pc.Name), nil
			}
			return "", err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := p.shadowRefusal(); err != nil {
			return "", fmt.Errorf("template down: %w", err)
		}
		p.recMu.Lock()
		p.paused = true
		p.recMu.Unlock()
		left := 0
		if dn, ok := p.applier.(downer); ok {
			// Below Min: the pool's own servers all go.
			n, err := dn.Down(ctx, p.name)
			if err != nil {
				_ = p.persist()
				return "", fmt.Errorf("template down %s: drain: %w (the pool stays paused, %d servers still serve)", pc.Name, err, n)
			}
			left = n
		} else if err := p.applier.Scale(ctx, p.name, 0); err != nil {
			_ = p.persist()
			return "", fmt.Errorf("template down %s: drain: %w (the pool stays paused)", pc.Name, err)
		}
		if p.stop != nil {
			p.stop()
		}
		d.mu.Lock()
		for i, q := range d.pools {
			if q == p {
				d.pools = append(d.pools[:i], d.pools[i+1:]...)
				break
			}
		}
		if p.sim != nil { // a real source may serve other pools
			delete(d.loops, p.source)
		}
		d.mu.Unlock()
		if err := d.store.Delete(datasets.BucketMeta, poolStateKey(p.name)); err != nil {
			return "", fmt.Errorf("template down %s: %w", pc.Name, err)
		}
		if left > 0 {
			return fmt.Sprintf("pool %s: its own servers drained and stopped; %d servers it did not start (configured in the balancer or added with node add) still serve", pc.Name, left), nil
		}
		return fmt.Sprintf("pool %s drained and stopped", pc.Name), nil
	}
	return "", fmt.Errorf("template op %q: %w", op, api.ErrBadRequest)
}

// poolAdder learns about a pool added at runtime (a fleet).
type poolAdder interface {
	AddPool(p config.Pool)
}

// downer takes a pool to zero servers, below its Min, and returns how
// many still serve (servers it did not start).
type downer interface {
	Down(ctx context.Context, pool string) (int, error)
}

// restoreTemplates re-creates the pools `template up` started before a
// restart (their spec is in their persisted state). A stored spec that no
// longer validates (an older version accepted it), names another pool or
// does not build is logged with the pool's name and the reason and
// skipped: the other pools run, and the state stays in the store for
// `template down` or a fixed `template up`.
func (d *Daemon) restoreTemplates(wall func() time.Time) error {
	keys, err := d.store.Keys(datasets.BucketMeta)
	if err != nil {
		return fmt.Errorf("list pool states: %w", err)
	}
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, poolStatePrefix)
		if !ok {
			continue
		}
		if _, err := d.findPool(name); err == nil {
			continue // a configured pool
		}
		if err := d.restoreTemplate(name, wall); err != nil {
			d.log.Error("stored template pool skipped: lbtune template up a fixed spec, or template down the pool to drop it", "pool", name, "err", err)
		}
	}
	return nil
}

// restoreTemplate re-creates one pool from its stored spec, if it has one.
func (d *Daemon) restoreTemplate(name string, wall func() time.Time) error {
	st, _, err := loadPoolState(d.store, name)
	if err != nil {
		return err
	}
	if st.Template == "" {
		return nil
	}
	pc, err := d.cfg.ParsePool([]byte(st.Template))
	if err != nil {
		return fmt.Errorf("stored spec no longer validates: %w", err)
	}
	if pc.Name != name {
		return fmt.Errorf("stored spec names pool %q", pc.Name)
	}
	p, err := d.newPool(pc, wall)
	if err != nil {
		return err
	}
	if pa, ok := p.applier.(poolAdder); ok {
		pa.AddPool(pc)
	}
	p.templateSpec = st.Template
	d.mu.Lock()
	d.pools = append(d.pools, p)
	d.mu.Unlock()
	return nil
}

// maxSimElapsed bounds a stored simulated clock: fast-forwarding to it
// replays the simulation, so a corrupt one could stall the start.
const maxSimElapsed = 10 * 365 * 24 * time.Hour

// maxServers is the largest template.max config.Validate accepts.
var maxServers = func() int {
	for _, s := range config.Ranges() {
		if s.Key == "pools[].template.max" {
			return int(s.Max)
		}
	}
	return 1000
}()

// check reports what in a stored state newPool cannot trust: an unknown
// mode, a server count no template allows, a simulated clock out of range.
// A count above this pool's max (the template was changed since) is kept:
// the guard brings the pool back within its limits.
func (st PoolState) check() error {
	var errs []error
	if !config.ValidMode(st.Mode) {
		errs = append(errs, fmt.Errorf("mode %q is unknown", st.Mode))
	}
	if st.Servers < 0 || st.Servers > maxServers {
		errs = append(errs, fmt.Errorf("servers %d is outside 0..%d", st.Servers, maxServers))
	}
	if st.SimElapsed < 0 || st.SimElapsed > maxSimElapsed {
		errs = append(errs, fmt.Errorf("simulated clock %s is outside 0..%s", st.SimElapsed, maxSimElapsed))
	}
	return errors.Join(errs...)
}
