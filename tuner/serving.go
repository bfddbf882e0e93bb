package tuner

import (
	"context"
	"sync"

	"github.com/lbtune/lbtune/collector"
)

// servingSource is a source that cannot see servers' states (a request
// log: it lists every server it has seen as up) with each pool's states
// taken from the pool's actuator where it knows them (HAProxy's runtime
// API, NGINX's upstream: ServingServers), before the snapshot is stored.
// Without it a standby scale-in left the pool as large as before for
// everything that reads the store: the agent asked for the same scale-in
// again and again (and the guard once turned a repeat into a scale-out),
// and /metrics, the charts and `lbtune summary` counted the removed
// servers (docs/RESULTS.md "Daemon").
type servingSource struct {
	collector.Source
	d   *Daemon
	uri string // the source's URI, as its pools name it

	mu      sync.Mutex
	lastErr map[string]string // pool -> last error logged ("" none)
}

// Scrape scrapes the source and sets the server states of every pool of
// the daemon read from it whose actuator reports them. A pool whose
// actuator fails or names none of its servers keeps the source's states
// (logged once per change of the error).
func (s *servingSource) Scrape(ctx context.Context) (collector.Snapshot, error) {
	snap, err := s.Source.Scrape(ctx)
	if err != nil {
		return snap, err
	}
	for i := range snap.Pools {
		sp := &snap.Pools[i]
		p, err := s.d.findPool(sp.Name)
		if err != nil || p.source != s.uri || p.applier == nil {
			continue
		}
		serving, err := servingOf(ctx, p.applier, sp.Name)
		if err == nil && serving != nil {
			err = sp.SetServing(serving)
		}
		s.note(sp.Name, err)
	}
	return snap, nil
}

// note logs err for pool when it differs from the last one logged.
func (s *servingSource) note(pool string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == nil {
		s.lastErr = map[string]string{}
	}
	if s.lastErr[pool] == msg {
		return
	}
	s.lastErr[pool] = msg
	if err != nil {
		s.d.log.Warn("server states: the source's kept (it cannot see them; the actuator did not tell)", "source", s.uri, "pool", pool, "err", err)
	} else {
		s.d.log.Info("server states from the actuator (the source cannot see them)", "source", s.uri, "pool", pool)
	}
}
