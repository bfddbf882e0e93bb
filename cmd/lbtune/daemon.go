package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbtune/lbtune/actuator/nginx"
	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/api"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner/config"
)

// daemon is the running tuner (`lbtune run`): one collector loop per
// source, one decision loop per pool, the store they meet in, and the
// state the HTTP API shows and operators change. It implements api.Reader
// and api.Operator.
type daemon struct {
	cfg     *config.Config
	store   *datasets.Store
	reg     *prometheus.Registry
	metrics *api.Metrics
	log     *slog.Logger
	started time.Time
	token   string
	// model describes the loaded model for /v1/model; nil when none.
	model json.RawMessage
	// trained is the loaded model and policy; nil when none.
	trained *daemonModel
	// policies builds each pool's policies (daemon_policy.go).
	policies daemonPolicyFactory
	// actuators are the configured actuators, by name.
	actuators map[string]agent.Applier
	// nginx are the NGINX managers, by actuator name.
	nginx map[string]*nginx.NGINX
	// runners are actuator loops (fleet supervision) run with the daemon;
	// closers stop what actuators started, after every loop has stopped.
	runners []func(context.Context) error
	closers []func() error
	// wall is the wall clock.
	wall func() time.Time
	// learnEpsilon is each learning pool's exploration rate (/metrics).
	learnEpsilon *prometheus.GaugeVec

	mu sync.Mutex // guards loops and pools (template up/down change them)
	// loops are the collector loops, by source name.
	loops map[string]*daemonLoop
	pools []*daemonPool
	// spawn starts a goroutine under the daemon's errgroup (set by run).
	spawn func(func() error)
	// runCtx is the daemon's context, for pools started later.
	runCtx context.Context
}

// daemonLoop is one collector loop and its reported error count.
type daemonLoop struct {
	loop *collector.Loop
	// ofPool marks a simulated pool's loop, started and stopped with it.
	ofPool   bool
	reported uint64 // scrape errors already added to the metric
}

// daemonRecord is one decision as stored in datasets.BucketDecisions: the
// decision with the pool's sequence number, which increases by one per
// decision across restarts (the decision id).
type daemonRecord struct {
	Seq uint64 `json:"seq"`
	agent.Decision
}

// daemonReward is one reward as stored in datasets.BucketRewards.
type daemonReward struct {
	Pool   string  `json:"pool"`
	Seq    uint64  `json:"seq"`
	Reward float64 `json:"reward"`
}

// daemonPoolState is what a pool persists in datasets.BucketMeta so a
// restarted daemon resumes where it stopped.
type daemonPoolState struct {
	Mode   string `json:"mode"`
	Paused bool   `json:"paused"`
	// Seq is the last decision id recorded.
	Seq uint64 `json:"seq"`
	// Servers is the last server count applied (0 = none yet).
	Servers int `json:"servers"`
	// Weights are the last weights applied.
	Weights map[string]int `json:"weights,omitempty"`
	// SimElapsed is a simulated pool's clock (time since its start).
	SimElapsed time.Duration `json:"sim_elapsed,omitempty"`
	// SimStart is a simulated pool's t = 0.
	SimStart time.Time `json:"sim_start,omitzero"`
	// Template is the YAML spec of a pool started by `template up`.
	Template string `json:"template,omitempty"`
}

func daemonStateKey(pool string) string { return "daemon/pool/" + pool }

// loadPoolState reads a pool's persisted state; ok is false when there is none.
func (d *daemon) loadPoolState(pool string) (st daemonPoolState, ok bool, err error) {
	b, err := d.store.Get(datasets.BucketMeta, daemonStateKey(pool))
	if errors.Is(err, datasets.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read state of pool %s: %w", pool, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, false, fmt.Errorf("decode state of pool %s: %w", pool, err)
	}
	return st, true, nil
}

func (d *daemon) savePoolState(pool string, st daemonPoolState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state of pool %s: %w", pool, err)
	}
	if err := d.store.Put(datasets.BucketMeta, daemonStateKey(pool), b); err != nil {
		return fmt.Errorf("save state of pool %s: %w", pool, err)
	}
	return nil
}

// readToken reads the bearer token; an empty path means mutations are refused.
func daemonReadToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("token file %s: token must be at least 16 characters", path)
	}
	return tok, nil
}

// pool returns the named pool or an error wrapping api.ErrUnknownPool.
func (d *daemon) pool(name string) (*daemonPool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.pools {
		if p.name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("pool %q: %w", name, api.ErrUnknownPool)
}

// poolList returns a copy of the pool list.
func (d *daemon) poolList() []*daemonPool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*daemonPool(nil), d.pools...)
}

// syncScrapeErrors adds new collector errors to the scrape error metric.
func (d *daemon) syncScrapeErrors() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, l := range d.loops {
		st := l.loop.Stats()
		if st.Errors > l.reported {
			d.metrics.ScrapeErrors.WithLabelValues(name).Add(float64(st.Errors - l.reported))
			l.reported = st.Errors
		}
	}
}
