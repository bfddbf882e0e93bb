package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/lbtune/lbtune/datasets"
)

// ErrCorrupt is returned by Unmarshal for data that is not a well-formed
// model: bad JSON, wrong shapes, non-finite or invalid parameters.
var ErrCorrupt = errors.New("corrupt model")

// ErrVersion is returned by Unmarshal for a model of another format version.
var ErrVersion = errors.New("unsupported model version")

// StoreKeyLatest is the key in datasets.BucketModels under which Save also
// writes the most recent model trained on all pools; each model is also kept
// under its own versioned key (see Key). A model trained on one pool only
// (Metadata.Pool) goes under LatestKey(pool) instead.
const StoreKeyLatest = "gmm/latest"

// LatestKey is the key of the most recent model for pool: StoreKeyLatest
// for "" (all pools), "gmm/<pool>/latest" otherwise.
func LatestKey(pool string) string {
	if pool == "" {
		return StoreKeyLatest
	}
	return "gmm/" + pool + "/latest"
}

// Key is the versioned store key of m: "gmm/" (+ pool + "/" for a one-pool
// model) + its training time.
func (m *Model) Key() string {
	prefix := "gmm/"
	if m.Meta.Pool != "" {
		prefix += m.Meta.Pool + "/"
	}
	return prefix + m.Meta.Trained.UTC().Format("20060102T150405.000000000Z")
}

// Marshal encodes m as indented JSON, the exported form of a model.
func (m *Model) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal model: %w", err)
	}
	return b, nil
}

// Unmarshal decodes a model written by Marshal and validates it: format
// version, feature names and transforms matching this build, scaler and GMM
// shapes, finite parameters and positive-definite covariances. Errors wrap
// ErrVersion or ErrCorrupt.
func Unmarshal(data []byte) (*Model, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("load model: %w: %w", err, ErrCorrupt)
	}
	if probe.Version == nil {
		return nil, fmt.Errorf("load model: no version field: %w", ErrCorrupt)
	}
	if *probe.Version != FormatVersion {
		return nil, fmt.Errorf("load model: version %d, this build reads %d: %w", *probe.Version, FormatVersion, ErrVersion)
	}
	var m Model
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("load model: %w: %w", err, ErrCorrupt)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("load model: %w: %w", err, ErrCorrupt)
	}
	return &m, nil
}

func (m *Model) validate() error {
	if len(m.FeatureNames) != NumFeatures || len(m.LogFeatures) != NumFeatures {
		return fmt.Errorf("%d feature names and %d transforms, want %d", len(m.FeatureNames), len(m.LogFeatures), NumFeatures)
	}
	for j := range m.FeatureNames {
		if m.FeatureNames[j] != FeatureNames[j] || m.LogFeatures[j] != logFeature[j] {
			return fmt.Errorf("feature %d is %q (log %v), this build has %q (log %v)", j, m.FeatureNames[j], m.LogFeatures[j], FeatureNames[j], logFeature[j])
		}
	}
	if len(m.Scaler.Mean) != NumFeatures || len(m.Scaler.Std) != NumFeatures {
		return fmt.Errorf("scaler has %d means and %d deviations, want %d", len(m.Scaler.Mean), len(m.Scaler.Std), NumFeatures)
	}
	for j := range m.Scaler.Mean {
		mu, sd := m.Scaler.Mean[j], m.Scaler.Std[j]
		if math.IsNaN(mu) || math.IsInf(mu, 0) || !(sd > 0) || math.IsInf(sd, 0) {
			return fmt.Errorf("scaler feature %d: mean %v, std %v", j, mu, sd)
		}
	}
	if m.GMM == nil {
		return errors.New("no gmm")
	}
	if m.GMM.D != NumFeatures {
		return fmt.Errorf("gmm dimension %d, want %d", m.GMM.D, NumFeatures)
	}
	if math.IsNaN(m.GMM.OODThreshold) {
		return errors.New("gmm OOD threshold is NaN")
	}
	return m.GMM.Prepare()
}

// Save writes m into the store's models bucket under its versioned Key and
// under LatestKey(m.Meta.Pool), and returns the versioned key.
func Save(st *datasets.Store, m *Model) (string, error) {
	b, err := m.Marshal()
	if err != nil {
		return "", err
	}
	key := m.Key()
	for _, k := range []string{key, LatestKey(m.Meta.Pool)} {
		if err := st.Put(datasets.BucketModels, k, b); err != nil {
			return "", fmt.Errorf("save model %s: %w", k, err)
		}
	}
	return key, nil
}

// Load reads and validates the model under key (StoreKeyLatest when empty)
// from the store. A missing model wraps datasets.ErrNotFound.
func Load(st *datasets.Store, key string) (*Model, error) {
	if key == "" {
		key = StoreKeyLatest
	}
	b, err := st.Get(datasets.BucketModels, key)
	if err != nil {
		return nil, fmt.Errorf("load model %s from %s: %w", key, st.Path(), err)
	}
	m, err := Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", key, st.Path(), err)
	}
	return m, nil
}
