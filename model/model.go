package model

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/lbtune/lbtune/collector"
)

// Model is a trained load-state model: the feature scaler, the GMM over
// standardised features and how it was trained. It is read-only after
// Train or Unmarshal and safe for concurrent use.
type Model struct {
	// Version is the persisted format version (FormatVersion).
	Version int `json:"version"`
	// FeatureNames are the names of the features, in vector order.
	FeatureNames []string `json:"feature_names"`
	// LogFeatures marks the features Transform maps through log1p.
	LogFeatures []bool `json:"log_features"`
	// Scaler standardises transformed features.
	Scaler Scaler `json:"scaler"`
	// GMM clusters standardised features.
	GMM *GMM `json:"gmm"`
	// Meta records how the model was trained.
	Meta Metadata `json:"meta"`
}

// Metadata records how a Model was trained.
type Metadata struct {
	// Data are the dataset files or stores the samples came from.
	Data []string `json:"data"`
	// Pools are the pool names seen in training.
	Pools []string `json:"pools"`
	// Pool is set when training used only that pool's samples (a
	// per-pool model); empty for a model of all pools.
	Pool string `json:"pool,omitempty"`
	// Samples is the number of pool-intervals trained on.
	Samples int `json:"samples"`
	// Stats says how many intervals were dropped and why.
	Stats SampleStats `json:"sample_stats"`
	// K is the chosen number of clusters, from [KMin, KMax] by BIC.
	K    int `json:"k"`
	KMin int `json:"kmin"`
	KMax int `json:"kmax"`
	// BIC and AIC are the criteria for every k fitted.
	BIC map[int]float64 `json:"bic"`
	AIC map[int]float64 `json:"aic"`
	// LogLikelihood is the chosen fit's mean log-likelihood per sample
	// (in standardised space).
	LogLikelihood float64 `json:"log_likelihood"`
	// Cov, RegCovar, Restarts and Seed are the fit settings.
	Cov      CovarianceType `json:"covariance_type"`
	RegCovar float64        `json:"reg_covar"`
	Restarts int            `json:"restarts"`
	Seed     uint64         `json:"seed"`
	// Trained is when training finished, UTC.
	Trained time.Time `json:"trained"`
	// Seconds is how long the fit took.
	Seconds float64 `json:"seconds"`
}

// FormatVersion is the version of the persisted Model format.
const FormatVersion = 1

// TrainConfig holds the settings of Train.
type TrainConfig struct {
	// KMin and KMax bound the number of clusters; default 1 and 8.
	KMin, KMax int
	// Fit holds the EM settings (Fit.K is ignored). Fit.RegCovar defaults
	// to TrainRegCovar here, not to FitConfig's 1e-6.
	Fit FitConfig
	// Seed seeds every k-means++ initialisation.
	Seed uint64
	// Data names the inputs, recorded in the metadata.
	Data []string
	// Pool, when set, keeps only that pool's samples: a per-pool model,
	// whose scaler normalises with that pool's own statistics.
	Pool string
	// Stats are the sample statistics, recorded in the metadata.
	Stats SampleStats
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Progress, when non-nil, is called after each k is fitted.
	Progress func(k int)
}

// TrainRegCovar is the covariance regularisation Train uses by default. The
// features are standardised (unit variance), and some are constant within a
// load state (the server count, a zero queue): with sklearn's 1e-6 such a
// cluster gets a density spike that makes any small change look out of
// distribution. 1e-2 is a floor of 0.1 standard deviations per feature.
const TrainRegCovar = 1e-2

// ErrNoSamples is returned by Train when there is nothing to train on.
var ErrNoSamples = errors.New("no training samples")

// Train learns a Model from feature samples: transform, fit the scaler,
// standardise, then fit a GMM for every k in [KMin, KMax] and keep the
// lowest BIC.
func Train(ctx context.Context, samples []Features, cfg TrainConfig) (*Model, error) {
	if cfg.Pool != "" {
		var kept []Features
		for i := range samples {
			if samples[i].Pool == cfg.Pool {
				kept = append(kept, samples[i])
			}
		}
		if len(kept) == 0 {
			return nil, fmt.Errorf("train: pool %q: %w", cfg.Pool, ErrNoSamples)
		}
		samples = kept
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("train: %w", ErrNoSamples)
	}
	if cfg.KMin <= 0 {
		cfg.KMin = 1
	}
	if cfg.KMax <= 0 {
		cfg.KMax = 8
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Fit.RegCovar <= 0 {
		cfg.Fit.RegCovar = TrainRegCovar
	}
	fc := cfg.Fit.withDefaults()
	rows := make([][]float64, len(samples))
	pools := map[string]bool{}
	for i := range samples {
		rows[i] = samples[i].Transform(nil)
		pools[samples[i].Pool] = true
	}
	sc := FitScaler(rows)
	x := mat.NewDense(len(rows), NumFeatures, nil)
	for i, r := range rows {
		sc.Transform(x.RawRowView(i), r)
	}
	start := cfg.Now()
	sel, err := SelectK(ctx, x, cfg.KMin, cfg.KMax, fc, rand.NewPCG(cfg.Seed, cfg.Seed), cfg.Progress)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	end := cfg.Now()
	m := &Model{
		Version:      FormatVersion,
		FeatureNames: append([]string(nil), FeatureNames[:]...),
		LogFeatures:  append([]bool(nil), logFeature[:]...),
		Scaler:       sc,
		GMM:          sel.Best.GMM,
		Meta: Metadata{
			Data: cfg.Data, Pool: cfg.Pool, Samples: len(samples), Stats: cfg.Stats,
			K: sel.K, KMin: cfg.KMin, KMax: cfg.KMax, BIC: sel.BICs(), AIC: sel.AICs(),
			LogLikelihood: sel.Best.LogLikelihood, Cov: fc.Cov, RegCovar: fc.RegCovar, Restarts: fc.Restarts, Seed: cfg.Seed,
			Trained: end.UTC(), Seconds: end.Sub(start).Seconds(),
		},
	}
	for p := range pools {
		m.Meta.Pools = append(m.Meta.Pools, p)
	}
	sort.Strings(m.Meta.Pools)
	return m, nil
}

// Vector writes the standardised model-space vector of f into dst (reused
// when it has capacity NumFeatures) and returns it.
func (m *Model) Vector(f *Features, dst []float64) []float64 {
	dst = f.Transform(dst)
	return m.Scaler.Transform(dst, dst)
}

// Assessment is what the model says about one state.
type Assessment struct {
	// Cluster is the most likely cluster.
	Cluster int `json:"cluster"`
	// Posteriors are p(cluster | state), summing to 1.
	Posteriors []float64 `json:"posteriors"`
	// LogLikelihood is log p(state) in standardised space.
	LogLikelihood float64 `json:"log_likelihood"`
	// OOD is true when LogLikelihood is below the training threshold: a
	// state the model has not seen, on which policies should not be trusted.
	OOD bool `json:"ood"`
}

// Assess returns the cluster posteriors, likelihood and OOD flag of f.
func (m *Model) Assess(f *Features) Assessment {
	var buf [NumFeatures]float64
	x := m.Vector(f, buf[:0])
	a := Assessment{Posteriors: m.GMM.Posteriors(x, nil), LogLikelihood: m.GMM.LogLikelihood(x)}
	a.OOD = a.LogLikelihood < m.GMM.OODThreshold
	for k, p := range a.Posteriors {
		if p > a.Posteriors[a.Cluster] {
			a.Cluster = k
		}
	}
	return a
}

// Cluster describes one mixture component in real units.
type Cluster struct {
	// Index is the component number.
	Index int `json:"index"`
	// Share is the mixture weight: the expected share of samples.
	Share float64 `json:"share"`
	// Centroid is the component mean mapped back to real units, by feature
	// name (log features read as geometric-style means).
	Centroid map[string]float64 `json:"centroid"`
	// Values is Centroid in feature order.
	Values []float64 `json:"-"`
}

// Clusters returns every component with its share and its centroid in
// real units, largest share first.
func (m *Model) Clusters() []Cluster {
	g := m.GMM
	out := make([]Cluster, g.K)
	for k := 0; k < g.K; k++ {
		t := m.Scaler.Inverse(nil, g.Means[k*g.D:(k+1)*g.D])
		v := InverseTransform(nil, t)
		c := Cluster{Index: k, Share: g.Weights[k], Centroid: map[string]float64{}, Values: v}
		for j, name := range m.FeatureNames {
			c.Centroid[name] = v[j]
		}
		out[k] = c
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Share > out[j].Share })
	return out
}

// K is the number of load states (clusters).
func (m *Model) K() int { return m.GMM.K }

// Posterior extracts the features of one pool-interval and writes
// p(cluster | state) into dst (reused when it has capacity K), reporting
// whether the state is out of distribution. It does not allocate when dst
// has the capacity.
func (m *Model) Posterior(pr *collector.PoolRates, dst []float64) (post []float64, ood bool) {
	f := Extract(pr)
	var buf [NumFeatures]float64
	x := m.Vector(&f, buf[:0])
	post = m.GMM.Posteriors(x, dst)
	return post, m.GMM.LogLikelihood(x) < m.GMM.OODThreshold
}
