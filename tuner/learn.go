package tuner

import (
	"errors"
	"fmt"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/tuner/config"
)

// learner is a pool's online learning (model.learning): the pool's
// agent, which explores and updates its own copy of the policy table in
// auto mode, and when that copy was last saved. Only the pool's tick and
// mode changes touch it, holding the pool's mu.
type learner struct {
	agent *agent.Agent
	cfg   config.Learning
	// saved is when (pool time) the table was last saved; learned is set
	// when the agent was learning at some point since.
	saved   time.Time
	learned bool
}

// learnedTable returns the table a learning pool starts from: the
// latest version it saved in the daemon's store (so a restart, even after
// kill -9, resumes with what was learned up to the last save), or else a
// copy of the trained table. The epsilon it resumes at is the one saved
// with the table.
func learnedTable(st *datasets.Store, pool string, trained *agent.PolicyTable) (tb *agent.PolicyTable, resumed bool, err error) {
	tb, err = LoadPolicy(st, LearnedPolicyName(pool))
	switch {
	case errors.Is(err, datasets.ErrNotFound):
		tb = trained.Clone()
		tb.Name = LearnedPolicyName(pool)
		return tb, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("learned policy of pool %s: %w", pool, err)
	case tb.K != trained.K || len(tb.Levels) != len(trained.Levels):
		return nil, false, fmt.Errorf("learned policy of pool %s has %d load states and %d levels, the model %d and %d: "+
			"delete its versions (%s/v...) to start again from the trained policy",
			pool, tb.K, len(tb.Levels), trained.K, len(trained.Levels), LearnedPolicyName(pool))
	}
	return tb, true, nil
}

// setMode turns the agent's learning on in auto mode only: in shadow
// mode its decisions are not carried out, so their rewards would teach it
// nothing true, and in the other modes it does not decide.
func (l *learner) setMode(mode string) {
	if l != nil {
		l.learned = l.learned || l.agent.Learning()
		l.agent.SetLearning(mode == config.ModeAuto)
	}
}

// learnAfterTick exports epsilon and saves the table as a new version when
// SaveEvery (pool time) has passed since the last save. The caller holds
// the pool's mu.
func (p *Pool) learnAfterTick(now time.Time) {
	l := p.learner
	if l == nil {
		return
	}
	p.d.learnEpsilon.WithLabelValues(p.name).Set(l.agent.Exploration())
	if now.Sub(l.saved) >= l.cfg.SaveEvery {
		if err := p.saveLearned(now); err != nil {
			p.log.Warn("save learned policy", "err", err)
		}
	}
}

// saveLearned stores the pool's learned table as its next version when
// the agent has been learning (auto mode) since the last save. The caller
// holds the pool's mu.
func (p *Pool) saveLearned(now time.Time) error {
	l := p.learner
	if l == nil {
		return nil
	}
	l.saved = now
	if !l.learned && !l.agent.Learning() {
		return nil
	}
	l.learned = l.agent.Learning()
	tb := l.agent.Table()
	tb.Config.Epsilon = l.agent.Exploration()
	b, err := agent.EncodePolicy(tb)
	if err != nil {
		return err
	}
	key, err := p.d.store.PutPolicy(tb.Name, b)
	if err != nil {
		return err
	}
	p.log.Info("saved learned policy", "key", key, "updates", tb.Steps, "epsilon", tb.Config.Epsilon)
	return nil
}
