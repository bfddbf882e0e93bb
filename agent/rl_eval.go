package agent

import "github.com/lbtune/lbtune/model"

// ModelStates adapts a trained model.Model to the agent's LoadStates.
type ModelStates struct{ Model *model.Model }

// K is the model's number of load states.
func (m ModelStates) K() int { return m.Model.K() }

// Posterior is the model's posterior of the observation's latest interval.
func (m ModelStates) Posterior(obs Observation, dst []float64) ([]float64, bool, error) {
	pr := obs.Latest
	post, ood := m.Model.Posterior(&pr, dst)
	return post, ood, nil
}

var _ LoadStates = ModelStates{}
