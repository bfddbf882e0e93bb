// Package model turns collector rates into load-state feature vectors and
// clusters them with a Gaussian Mixture Model. It sits between the datasets
// store (which feeds it recorded snapshots) and the agent (which reads the
// posteriors, the most likely cluster and the out-of-distribution flag of the
// current state).
//
// The flow is: collector.Rates -> Extract (Features, real units) ->
// Features.Transform (log1p of heavy-tailed values) -> Scaler (standardise
// with training statistics) -> GMM (EM, BIC over k, OOD threshold). A Model
// bundles the scaler, the GMM and the training metadata and is persisted as
// versioned JSON.
package model
