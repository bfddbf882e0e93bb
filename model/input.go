package model

import (
	"fmt"
	"strings"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

// Input is what training reads: the snapshots of every data file, in file
// order, and the feature samples derived from them.
type Input struct {
	// Snapshots holds each data file's snapshots.
	Snapshots [][]collector.Snapshot
	// Samples are the feature samples of every file.
	Samples []Features
	// Stats counts the intervals dropped while deriving Samples.
	Stats SampleStats
}

// LoadInput reads every data file (dataset file or store, datasets.Load)
// and derives the feature samples, file by file so that no interval spans
// two recordings. loaded, when not nil, is called after each file with its
// snapshots and samples. It wraps ErrNoSamples when no file gave a sample.
func LoadInput(paths []string, loaded func(path string, snaps []collector.Snapshot, samples []Features, st SampleStats)) (*Input, error) {
	in := &Input{}
	for _, p := range paths {
		snaps, err := datasets.Load(p)
		if err != nil {
			return nil, err
		}
		fs, st := Samples(snaps)
		if loaded != nil {
			loaded(p, snaps, fs, st)
		}
		in.Snapshots = append(in.Snapshots, snaps)
		in.Samples = append(in.Samples, fs...)
		in.Stats.Add(st)
	}
	if len(in.Samples) == 0 {
		return nil, fmt.Errorf("no pool-intervals in %s: %w", strings.Join(paths, ", "), ErrNoSamples)
	}
	return in, nil
}

// Report is the summary of a trained and saved model (`lbtune train
// --json`).
type Report struct {
	K             int             `json:"k"`
	BIC           map[int]float64 `json:"bic"`
	AIC           map[int]float64 `json:"aic"`
	LogLikelihood float64         `json:"log_likelihood"`
	OODThreshold  float64         `json:"ood_threshold"`
	Clusters      []Cluster       `json:"clusters"`
	Samples       int             `json:"samples"`
	SampleStats   SampleStats     `json:"sample_stats"`
	Pools         []string        `json:"pools"`
	Out           string          `json:"out"`
	Key           string          `json:"key"`
	LatestKey     string          `json:"latest_key"`
	Seconds       float64         `json:"seconds"`
	// Steps holds the reports of extra training stages run after the model
	// was saved (the agent's policy), by name.
	Steps    map[string]any     `json:"steps,omitempty"`
	Features []string           `json:"features"`
	Imputed  map[string]float64 `json:"imputed_share"`
	Data     []string           `json:"data"`
	Cov      CovarianceType     `json:"covariance_type"`
	Seed     uint64             `json:"seed"`
}

// NewReport summarises m, trained on samples with cfg and saved in the
// store at out under key.
func NewReport(m *Model, samples []Features, cfg TrainConfig, out, key string) Report {
	return Report{
		K: m.Meta.K, BIC: m.Meta.BIC, AIC: m.Meta.AIC, LogLikelihood: m.Meta.LogLikelihood,
		OODThreshold: m.GMM.OODThreshold, Clusters: m.Clusters(), Samples: m.Meta.Samples,
		SampleStats: m.Meta.Stats, Pools: m.Meta.Pools, Out: out, Key: key, LatestKey: LatestKey(m.Meta.Pool), Seconds: m.Meta.Seconds,
		Features: m.FeatureNames, Imputed: ImputedShares(samples, cfg.Pool), Data: cfg.Data, Cov: cfg.Fit.Cov, Seed: cfg.Seed,
	}
}
