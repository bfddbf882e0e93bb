package model

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

// trainedModel trains on three load regimes (light, medium, heavy) of a
// synthetic pool and returns the model and its training samples.
func trainedModel(t *testing.T) (*Model, []Features) {
	t.Helper()
	snaps := synthSnapshots(3, 150,
		regime{rate: 50, latencyMs: 5, servers: 2},
		regime{rate: 400, latencyMs: 20, servers: 3},
		regime{rate: 1500, latencyMs: 120, errRatio: 0.02, servers: 4},
	)
	fs, st := Samples(snaps)
	now := time.Date(2026, 2, 3, 4, 5, 6, 7, time.UTC)
	m, err := Train(context.Background(), fs, TrainConfig{
		KMin: 1, KMax: 5, Seed: 42, Data: []string{"synthetic"}, Stats: st,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, fs
}

func TestTrainFindsRegimes(t *testing.T) {
	m, fs := trainedModel(t)
	if m.Meta.K < 3 {
		t.Fatalf("chose k=%d for three regimes (BIC %v)", m.Meta.K, m.Meta.BIC)
	}
	if len(m.Meta.BIC) != 5 || len(m.Meta.AIC) != 5 || m.Meta.Pools[0] != "web" || m.Meta.Samples != len(fs) {
		t.Errorf("metadata %+v", m.Meta)
	}
	// Every regime has a cluster whose centroid rate is near it, in real units.
	for _, rate := range []float64{50, 400, 1500} {
		best := math.Inf(1)
		for _, c := range m.Clusters() {
			best = math.Min(best, math.Abs(c.Centroid["rate_rps"]-rate)/rate)
		}
		if best > 0.15 {
			t.Errorf("no cluster within 15%% of rate %v: %+v", rate, m.Clusters())
		}
	}
	// States of one regime share a cluster; different regimes do not.
	light, heavy := m.Assess(&fs[10]), m.Assess(&fs[len(fs)-10])
	if light.Cluster == heavy.Cluster || light.OOD || heavy.OOD {
		t.Errorf("light %+v heavy %+v", light, heavy)
	}
}

func TestAssessOOD(t *testing.T) {
	m, fs := trainedModel(t)
	tests := []struct {
		name string
		edit func(f *Features)
		want bool
	}{
		{name: "training state", edit: func(*Features) {}, want: false},
		{name: "ten times the heaviest rate", edit: func(f *Features) { f.Values[FeatRate] = 15000; f.Values[FeatRatePerServer] = 3750 }, want: true},
		{name: "all requests failing", edit: func(f *Features) { f.Values[FeatErrorRatio] = 1 }, want: true},
		{name: "latency of seconds at light load", edit: func(f *Features) {
			f.Values[FeatMeanLatency], f.Values[FeatMaxLatency], f.Values[FeatP95Latency] = 5000, 9000, 20000
		}, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fs[20]
			tc.edit(&f)
			a := m.Assess(&f)
			if a.OOD != tc.want {
				t.Errorf("OOD = %v (ll %.2f, threshold %.2f), want %v", a.OOD, a.LogLikelihood, m.GMM.OODThreshold, tc.want)
			}
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m, fs := trainedModel(t)
	st, err := datasets.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := Save(st, m)
	if err != nil {
		t.Fatal(err)
	}
	if key != "gmm/20260203T040506.000000007Z" {
		t.Errorf("key %q", key)
	}
	for _, k := range []string{key, "", StoreKeyLatest} {
		got, err := Load(st, k)
		if err != nil {
			t.Fatalf("load %q: %v", k, err)
		}
		for i := range fs[:50] {
			a, b := m.Assess(&fs[i]), got.Assess(&fs[i])
			if a.Cluster != b.Cluster || a.OOD != b.OOD || math.Abs(a.LogLikelihood-b.LogLikelihood) > 1e-9 {
				t.Fatalf("sample %d: before save %+v, after load %+v", i, a, b)
			}
		}
		if !got.Meta.Trained.Equal(m.Meta.Trained) || got.Meta.K != m.Meta.K || got.Meta.BIC[m.Meta.K] != m.Meta.BIC[m.Meta.K] {
			t.Errorf("metadata changed: %+v vs %+v", got.Meta, m.Meta)
		}
	}
	if _, err := Load(st, "gmm/nope"); !errors.Is(err, datasets.ErrNotFound) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	m, _ := trainedModel(t)
	good, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	tests := []struct {
		name    string
		data    string
		want    error
		mention string // the error names the problem
	}{
		{name: "truncated", data: s[:len(s)/2], want: ErrCorrupt, mention: "unexpected end"},
		{name: "not json", data: "\x00\x01garbage", want: ErrCorrupt, mention: "invalid character"},
		{name: "empty object", data: "{}", want: ErrCorrupt, mention: "no version"},
		{name: "future version", data: strings.Replace(s, `"version": 1`, `"version": 9`, 1), want: ErrVersion, mention: "version 9"},
		{name: "renamed feature", data: strings.Replace(s, `"rate_rps"`, `"rate"`, 1), want: ErrCorrupt, mention: "feature 0"},
		{name: "wrong gmm dimension", data: strings.Replace(s, `"d": 13`, `"d": 12`, 1), want: ErrCorrupt, mention: "dimension"},
		{name: "no gmm", data: strings.Replace(s, `"gmm": {`, `"gmm": null, "x": {`, 1), want: ErrCorrupt, mention: "no gmm"},
		{name: "weights do not sum to one", data: strings.Replace(s, `"weights": [`, `"weights": [0.5,`, 1), want: ErrCorrupt, mention: "weights"},
		{name: "negative std", data: strings.Replace(s, `"std": [`, `"std": [-1, `, 1), want: ErrCorrupt, mention: "scaler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == s {
				t.Fatal("edit did not apply; the test is stale")
			}
			_, err := Unmarshal([]byte(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q should be one line mentioning %q", err, tc.mention)
			}
		})
	}
	// A non-positive-definite covariance is caught by Prepare.
	bad := *m
	g := *m.GMM
	g.Covariances = append([]float64(nil), g.Covariances...)
	g.Covariances[0] = -1
	bad.GMM = &g
	b, _ := bad.Marshal()
	if _, err := Unmarshal(b); !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrSingular) {
		t.Errorf("negative variance: %v, want ErrCorrupt and ErrSingular", err)
	}
}

func TestTrainNoSamples(t *testing.T) {
	if _, err := Train(context.Background(), nil, TrainConfig{}); !errors.Is(err, ErrNoSamples) {
		t.Fatalf("err = %v", err)
	}
	// Snapshots of one instant give no interval.
	fs, _ := Samples([]collector.Snapshot{{Time: time.Unix(1, 0), Source: "s"}})
	if len(fs) != 0 {
		t.Fatalf("%d samples from one snapshot", len(fs))
	}
}

// FuzzUnmarshal: a model file is outside input. No panic, and either an
// error wrapping ErrCorrupt/ErrVersion or a model that can assess a state.
func FuzzUnmarshal(f *testing.F) {
	snaps := synthSnapshots(5, 40, regime{rate: 50, latencyMs: 5, servers: 2}, regime{rate: 500, latencyMs: 40, servers: 4})
	fs, _ := Samples(snaps)
	m, err := Train(context.Background(), fs, TrainConfig{KMax: 2, Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	good, err := m.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	// A real vts document: JSON, but not a model.
	if vts, err := os.ReadFile("../../shared/captures/vts/0001.json"); err == nil {
		f.Add(vts)
	} else {
		f.Fatalf("seed: %v", err)
	}
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Unmarshal(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrVersion", err)
			}
			return
		}
		a := got.Assess(&fs[0])
		if len(a.Posteriors) != got.K() {
			t.Fatalf("%d posteriors for k=%d", len(a.Posteriors), got.K())
		}
	})
}
