package nginx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lbtune/lbtune/actuator"
	"github.com/lbtune/lbtune/agent"
)

// ErrUnknown marks a pool (upstream) or server this NGINX does not manage.
var ErrUnknown = errors.New("not managed")

// DefaultServer is the template for servers added by AddServer: its
// MaxFails and FailTimeout are copied; Address, Name and Weight are set.
var DefaultServer = UpstreamServer{MaxFails: 1, FailTimeout: 2 * time.Second}

// Parked is the one server line of an upstream that has no server of its
// own: a fleet's or an Auto Scaling group's pool before its first launch,
// or after its last server left. NGINX refuses an empty upstream block,
// so the block holds this line, marked down: NGINX never sends it a
// request (a request then gets 502 at once, as with no upstream) and
// Applied leaves it out. AddServer drops it when a server joins, and
// RemoveServer puts it back when the last one leaves, so an upstream is
// never rendered empty and no stopped server's address is kept.
var Parked = UpstreamServer{Address: "127.0.0.1:9", Name: "lbtune-parked", Weight: 1, Down: true}

// Park returns u, holding only Parked when it has no server.
func Park(u Upstream) Upstream {
	if len(u.Servers) == 0 {
		u.Servers = []UpstreamServer{Parked}
	}
	return u
}

// isParked tells the Parked line (read back from a file or not).
func isParked(s UpstreamServer) bool {
	return s.Down && s.Name == Parked.Name && s.Address == Parked.Address
}

// find returns the index of pool in ups and of the server named name (its
// Name or its Address) in that pool; -1 when absent.
func find(ups []Upstream, pool, name string) (int, int) {
	for i, u := range ups {
		if u.Name != pool {
			continue
		}
		for j, s := range u.Servers {
			if s.Name == name || s.Address == name {
				return i, j
			}
		}
		return i, -1
	}
	return -1, -1
}

var _ actuator.Lister = (*NGINX)(nil)

// PoolServers lists the servers of upstream pool as the include file and
// the running NGINX have them, for actuator.Pools to count what serves
// (a fleet's server that has not joined yet then counts as booting, not
// serving, as with HAProxy): a server serves unless it is marked down
// (State "MAINT"; NGINX's passive failure state, max_fails, is not
// visible here). The Parked line is left out. A server is named by its
// Name, or its address when it has none. An unknown pool is ErrUnknown.
func (n *NGINX) PoolServers(_ context.Context, pool string) ([]actuator.ServerState, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range n.ups {
		if u.Name != pool {
			continue
		}
		out := make([]actuator.ServerState, 0, len(u.Servers))
		for _, s := range u.Servers {
			if isParked(s) {
				continue
			}
			st := actuator.ServerState{Name: s.Name, Addr: s.Address, Serving: !s.Down, State: "UP"}
			if st.Name == "" {
				st.Name = s.Address
			}
			if s.Down {
				st.State = "MAINT"
			}
			out = append(out, st)
		}
		return out, nil
	}
	return nil, fmt.Errorf("nginx servers of upstream %q: %w", pool, ErrUnknown)
}

// SetWeights sets the weights (1..MaxWeight) of servers of upstream pool,
// named by Name or address, in one validated reload; servers not named keep
// theirs. An unknown pool or server is an error and nothing changes.
func (n *NGINX) SetWeights(ctx context.Context, pool string, weights map[string]int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ups := cloneUpstreams(n.ups)
	for name, w := range weights {
		i, j := find(ups, pool, name)
		if i < 0 || j < 0 {
			return fmt.Errorf("nginx set weights: server %q of upstream %q: %w", name, pool, ErrUnknown)
		}
		ups[i].Servers[j].Weight = w
	}
	if _, err := n.applyLocked(ctx, ups); err != nil {
		return fmt.Errorf("nginx set weights of %s: %w", pool, err)
	}
	n.log().Info("nginx weights set", "upstream", pool, "weights", weights)
	return nil
}

// AddServer adds the server name at addr with weight w to upstream pool and
// reloads; it takes requests as soon as the new workers run. An existing
// server with the same address that is marked down (being removed) is
// brought back instead. The Parked line, if the upstream held it, goes in
// the same reload.
func (n *NGINX) AddServer(ctx context.Context, pool, name, addr string, w int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ups := cloneUpstreams(n.ups)
	i, j := find(ups, pool, addr)
	if i < 0 {
		return fmt.Errorf("nginx add server %s: upstream %q: %w", addr, pool, ErrUnknown)
	}
	if j >= 0 && !ups[i].Servers[j].Down {
		return fmt.Errorf("nginx add server %s: already in upstream %q", addr, pool)
	}
	s := DefaultServer
	s.Name, s.Address, s.Weight = name, addr, w
	if j >= 0 {
		ups[i].Servers[j] = s
	} else {
		ups[i].Servers = append(ups[i].Servers, s)
	}
	ups[i].Servers = slices.DeleteFunc(ups[i].Servers, isParked)
	if _, err := n.applyLocked(ctx, ups); err != nil {
		return fmt.Errorf("nginx add server %s to %s: %w", addr, pool, err)
	}
	n.log().Info("nginx server added", "upstream", pool, "server", name, "addr", addr, "weight", w)
	return nil
}

// RemoveServer drains the server (by Name or address) out of upstream pool:
// it is marked down and NGINX reloaded, so new workers send it nothing; the
// old workers finish the requests in flight and exit (waited for up to
// DrainTimeout; on timeout the removal goes on and a warning is logged);
// then the server is dropped from the file and NGINX reloaded again. The
// last server of an upstream is replaced by the Parked line, because NGINX
// refuses an empty upstream.
func (n *NGINX) RemoveServer(ctx context.Context, pool, name string) error {
	start := time.Now()
	// Step 1: mark down, reload.
	n.mu.Lock()
	ups := cloneUpstreams(n.ups)
	i, j := find(ups, pool, name)
	if i < 0 || j < 0 {
		n.mu.Unlock()
		return fmt.Errorf("nginx remove server %q from %q: %w", name, pool, ErrUnknown)
	}
	addr := ups[i].Servers[j].Address
	ups[i].Servers[j].Down = true
	old, err := n.applyLocked(ctx, ups)
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("nginx mark %s down in %s: %w", addr, pool, err)
	}
	// Step 2: wait for the workers that may still have requests on it.
	timeout := n.DrainTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if alive := WaitExited(ctx, old, timeout); len(alive) > 0 {
		n.log().Warn("nginx drain timed out; removing anyway", "upstream", pool, "server", addr,
			"old_workers_alive", alive, "timeout", timeout)
	}
	// Step 3: drop it (unless it is the last one), reload.
	n.mu.Lock()
	defer n.mu.Unlock()
	ups = cloneUpstreams(n.ups)
	i, j = find(ups, pool, addr)
	if i < 0 || j < 0 || !ups[i].Servers[j].Down {
		// Re-added meanwhile: the newer intent wins.
		n.log().Info("nginx server re-added while draining; kept", "upstream", pool, "server", addr)
		return nil
	}
	ups[i].Servers = slices.Delete(ups[i].Servers, j, j+1)
	if len(ups[i].Servers) == 0 {
		n.log().Warn("nginx last server of upstream removed: the upstream is parked (no server, requests get 502)", "upstream", pool, "server", addr)
		ups[i] = Park(ups[i])
	}
	if _, err := n.applyLocked(ctx, ups); err != nil {
		return fmt.Errorf("nginx drop %s from %s: %w", addr, pool, err)
	}
	n.log().Info("nginx server removed", "upstream", pool, "server", addr, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Balancing returns upstream pool's method ("" is weighted round robin,
// NGINX's default) and whether it is lbtune's to switch (Upstream.Auto).
func (n *NGINX) Balancing(_ context.Context, pool string) (agent.Balancing, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range n.ups {
		if u.Name == pool {
			return agent.Balancing{Algorithm: u.Method, Auto: u.Auto}, nil
		}
	}
	return agent.Balancing{}, fmt.Errorf("nginx balancing of upstream %q: %w", pool, ErrUnknown)
}

// ServingServers reports every server of upstream pool by address (the
// name NGINX's logs and vts give it) and whether NGINX sends it new
// requests: not down, not a backup. A server removed from the upstream is
// not in the map: the agent controller then no longer counts it, though a
// request log still lists it.
func (n *NGINX) ServingServers(_ context.Context, pool string) (map[string]bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range n.ups {
		if u.Name == pool {
			out := make(map[string]bool, len(u.Servers))
			for _, s := range u.Servers {
				if !isParked(s) {
					out[s.Address] = !s.Down && !s.Backup
				}
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("nginx serving servers of upstream %q: %w", pool, ErrUnknown)
}

// SetBalance renders upstream pool with algorithm, the agent's advice:
// agent.BalanceLeastConn renders least_conn, agent.BalanceRoundRobin
// weighted round robin, in one validated reload (rolled back when it does
// not take). Only an Auto upstream is switched: the method of any other is
// the operator's, and asking to change it is an error. The algorithm in
// force already is no change and no reload.
func (n *NGINX) SetBalance(ctx context.Context, pool, algorithm string) error {
	method, ok := map[string]string{agent.BalanceLeastConn: "least_conn", agent.BalanceRoundRobin: ""}[algorithm]
	if !ok {
		return fmt.Errorf("nginx set balance of %s: algorithm %q is not %s or %s", pool, algorithm, agent.BalanceLeastConn, agent.BalanceRoundRobin)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ups := cloneUpstreams(n.ups)
	i := slices.IndexFunc(ups, func(u Upstream) bool { return u.Name == pool })
	switch {
	case i < 0:
		return fmt.Errorf("nginx set balance of upstream %q: %w", pool, ErrUnknown)
	case !ups[i].Auto:
		return fmt.Errorf("nginx set balance of upstream %q to %s: its method %q is the operator's (method auto lets lbtune switch it)", pool, algorithm, ups[i].Method)
	case ups[i].Method == method:
		return nil
	}
	from := ups[i].Method
	ups[i].Method = method
	if _, err := n.applyLocked(ctx, ups); err != nil {
		return fmt.Errorf("nginx set balance of %s to %s: %w", pool, algorithm, err)
	}
	n.log().Info("nginx balancing method set", "upstream", pool, "from", methodName(from), "to", methodName(method))
	return nil
}

// methodName names a method for logs ("" is round robin).
func methodName(m string) string {
	if m == "" {
		return "round robin"
	}
	return m
}
