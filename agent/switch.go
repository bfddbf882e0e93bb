package agent

import (
	"context"
	"fmt"
	"time"
)

// Switch reasons: why the fallback decided instead of the agent.
const (
	SwitchAgent     = "agent"     // the agent decided
	SwitchUntrained = "untrained" // the policy holds no experience
	SwitchStale     = "stale"     // the data is older than StaleAfter
	SwitchOOD       = "ood"       // the load state is unlike any seen in training
	SwitchUnsure    = "unsure"    // the most likely load state is below MinConfidence
	SwitchError     = "error"     // the agent failed
)

// SwitchConfig sets when the Switch hands a decision to the fallback.
type SwitchConfig struct {
	// MinConfidence is the least posterior of the most likely load state
	// for the agent to decide.
	MinConfidence float64 `json:"min_confidence"`
	// StaleAfter is the data age beyond which the fallback decides.
	StaleAfter time.Duration `json:"stale_after"`
}

// DefaultSwitchConfig returns confidence 0.6 and 3 min staleness.
func DefaultSwitchConfig() SwitchConfig {
	return SwitchConfig{MinConfidence: 0.6, StaleAfter: 3 * time.Minute}
}

// Switch is the Policy that composes the agent with its threshold
// fallback: the fallback decides whenever the agent's policy is untrained,
// the data is stale, the load state is out of distribution or the
// posterior is unsure, or the agent fails; otherwise the agent decides.
// Out of distribution or unsure, the agent's weight change (if any) rides
// along with the fallback's count: the fallback has no weight rule.
// Both see every observation, so their windows and forecasts stay warm.
// Every decision says which policy made it and why, in Reason and in the
// Metrics "switch_fallback" (0 or 1) and "confidence".
type Switch struct {
	agent    *Agent
	fallback Policy
	cfg      SwitchConfig
	counts   map[string]int
}

// NewSwitch returns a Switch between agent and fallback.
func NewSwitch(agent *Agent, fallback Policy, cfg SwitchConfig) *Switch {
	if agent == nil || fallback == nil {
		panic("agent: switch needs an agent and a fallback")
	}
	return &Switch{agent: agent, fallback: fallback, cfg: cfg, counts: map[string]int{}}
}

// Name is "agent": the switch is how the agent runs.
func (s *Switch) Name() string { return "agent" }

// Agent returns the switch's agent.
func (s *Switch) Agent() *Agent { return s.agent }

// Counts returns how many decisions each switch reason (SwitchAgent and
// the fallback reasons) has made so far.
func (s *Switch) Counts() map[string]int {
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Decide asks both policies and returns the agent's decision unless a
// switch reason holds.
func (s *Switch) Decide(ctx context.Context, obs Observation) (Decision, error) {
	fb, ferr := s.fallback.Decide(ctx, obs)
	ad, aerr := s.agent.Decide(ctx, obs)
	post, ood := s.agent.LastState()
	conf := 0.0
	if len(post) > 0 {
		conf = post[rlArgmax(post)]
	}

	reason, why := SwitchAgent, ""
	switch {
	case s.cfg.StaleAfter > 0 && obs.DataAge > s.cfg.StaleAfter:
		reason, why = SwitchStale, fmt.Sprintf("data is %v old (> %v)", obs.DataAge.Round(time.Second), s.cfg.StaleAfter)
	case aerr != nil:
		reason, why = SwitchError, aerr.Error()
	case !s.agent.Table().Trained():
		reason, why = SwitchUntrained, "the policy has no training"
	case ood:
		reason, why = SwitchOOD, "the load state is out of the training distribution"
	case conf < s.cfg.MinConfidence:
		reason, why = SwitchUnsure, fmt.Sprintf("most likely load state has posterior %.2f < %.2f", conf, s.cfg.MinConfidence)
	}
	s.counts[reason]++
	if reason == SwitchAgent {
		ad.Metrics["switch_fallback"] = 0
		ad.Reason = "agent: " + ad.Reason
		return ad, nil
	}
	s.agent.Overruled()
	if ferr != nil {
		return Decision{}, fmt.Errorf("fallback %s (%s): %w", s.fallback.Name(), reason, ferr)
	}
	if fb.Metrics == nil {
		fb.Metrics = map[string]float64{}
	}
	fb.Metrics["switch_fallback"] = 1
	fb.Metrics["confidence"] = conf
	if fb.Policy == "" {
		fb.Policy = s.fallback.Name()
	}
	fb.Reason = fmt.Sprintf("fallback %s (%s: %s): %s", s.fallback.Name(), reason, why, fb.Reason)
	if (reason == SwitchOOD || reason == SwitchUnsure) && fb.Weights == nil && ad.Weights != nil {
		// The fallback sizes the pool but never sets weights. An unfamiliar
		// load state says nothing against the agent's weight rule (shift from
		// the slowest server to the fastest, dwell between changes), and
		// unbalanced weights are often why the state is unfamiliar: a slow
		// server queueing under equal weights drives the pool's p95 out of
		// the training range, and with weights frozen it stays there.
		fb.Weights = ad.Weights
		fb.Metrics["agent_weights"] = 1
		fb.Reason += "; weights by the agent: " + s.agent.wreason
	}
	return fb, nil
}
