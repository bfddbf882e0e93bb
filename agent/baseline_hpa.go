package agent

import (
	"context"
	"fmt"
	"math"
	"time"
)

// HPAConfig configures the Kubernetes-HPA-style target tracking baseline.
type HPAConfig struct {
	// Target is the target utilisation (0 < Target <= 1).
	Target float64
	// Tolerance is the dead band: no change while |util/Target - 1| <= it.
	Tolerance float64
	// DownStabilisation is the scale-down stabilisation window: the pool
	// shrinks only to the largest recommendation made within it.
	DownStabilisation time.Duration
}

// DefaultHPAConfig returns the HPA defaults: target utilisation 0.6, 10%
// tolerance, 300 s scale-down stabilisation.
func DefaultHPAConfig() HPAConfig {
	return HPAConfig{Target: 0.6, Tolerance: 0.1, DownStabilisation: 5 * time.Minute}
}

// HPA is target tracking as the Kubernetes Horizontal Pod Autoscaler does
// it: desired = ceil(serving x utilisation / target), no change within the
// tolerance, immediate scale-up, and scale-down to the maximum
// recommendation of the stabilisation window. One HPA serves one pool.
type HPA struct {
	cfg  HPAConfig
	name string
	recs []hpaRec
}

type hpaRec struct {
	at time.Time
	n  int
}

// NewHPA returns an HPA policy named name (e.g. "hpa@0.5"); it panics on a
// target outside (0, 1] (programmer error).
func NewHPA(name string, cfg HPAConfig) *HPA {
	if !(cfg.Target > 0 && cfg.Target <= 1) {
		panic(fmt.Sprintf("agent: hpa target %v outside (0, 1]", cfg.Target))
	}
	return &HPA{cfg: cfg, name: name}
}

// Name is the name given to NewHPA.
func (h *HPA) Name() string { return h.name }

// Decide computes the recommendation and stabilises it.
func (h *HPA) Decide(_ context.Context, obs Observation) (Decision, error) {
	util := blUtilisation(&obs)
	cur := obs.Servers + obs.Booting
	ratio := util / h.cfg.Target
	rec := cur
	inBand := math.Abs(ratio-1) <= h.cfg.Tolerance
	if !inBand {
		rec = int(math.Ceil(float64(max(obs.Servers, 1)) * ratio))
		if math.IsInf(ratio, 1) || rec > 1<<20 {
			rec = cur + 1
		}
	}
	rec = obs.Template.Clamp(rec)
	// Stabilise: keep recommendations of the window, shrink to their max.
	h.recs = append(h.recs, hpaRec{obs.Time, rec})
	keep := h.recs[:0]
	for _, r := range h.recs {
		if obs.Time.Sub(r.at) <= h.cfg.DownStabilisation {
			keep = append(keep, r)
		}
	}
	h.recs = keep
	down := rec
	for _, r := range h.recs {
		down = max(down, r.n)
	}
	want := cur
	var reason string
	switch {
	case rec > cur:
		want = rec
		reason = fmt.Sprintf("utilisation %.2f / target %.2f = %.2f: scale up to ceil(%d x %.2f) = %d", util, h.cfg.Target, ratio, obs.Servers, ratio, rec)
	case down < cur:
		want = down
		reason = fmt.Sprintf("utilisation %.2f / target %.2f = %.2f: scale down to %d (max recommendation over %v)", util, h.cfg.Target, ratio, down, h.cfg.DownStabilisation)
	case inBand:
		reason = fmt.Sprintf("utilisation %.2f within %.0f%% of target %.2f: hold %d", util, 100*h.cfg.Tolerance, h.cfg.Target, cur)
	default:
		reason = fmt.Sprintf("utilisation %.2f / target %.2f: recommendation %d, stabilised at %d: hold %d", util, h.cfg.Target, rec, down, cur)
	}
	return Decision{Policy: h.name, Servers: want, Reason: reason, Metrics: map[string]float64{
		"util": util, "target": h.cfg.Target, "ratio": ratio, "recommendation": float64(rec), "stabilised": float64(down),
	}}, nil
}
