package model

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

func ptr(v float64) *float64 { return &v }

func TestExtract(t *testing.T) {
	up := collector.StateUp
	tests := []struct {
		name        string
		pool        collector.PoolRates
		want        map[int]float64
		wantImputed []int
	}{
		{
			name: "two servers, uneven, vts-like (no percentiles)",
			pool: collector.PoolRates{Name: "web", Queue: 2, Servers: []collector.ServerRates{
				{Name: "a", State: up, Requests: 30, BytesIn: 3000, BytesOut: 9000, MeanLatencyMs: 10, Responses: [5]float64{0, 27, 0, 0, 3}, Gauges: collector.Gauges{Active: 4}},
				{Name: "b", State: up, Requests: 10, BytesIn: 1000, BytesOut: 1000, MeanLatencyMs: 50, Errors: 1, Gauges: collector.Gauges{Active: 1, Queue: 1}},
			}},
			want: map[int]float64{
				FeatRate: 40, FeatRatePerServer: 20,
				FeatMaxShare: 0.75, FeatShareCV: 0.5, // rates 30 and 10: mean 20, sd 10
				FeatMeanLatency: 20, FeatMaxLatency: 50, // (30*10 + 10*50) / 40
				// the one pool estimate: ln(20) x the request-weighted mean
				FeatP95Latency: 20 * math.Log(20),
				FeatErrorRatio: 0.1, // (3 5xx + 1 error) / 40
				FeatBytesIn:    4000, FeatBytesOut: 10000,
				FeatActive: 5, FeatQueue: 3, FeatServers: 2,
			},
			wantImputed: []int{FeatP95Latency},
		},
		{
			name: "percentiles present, draining server still counted in rate",
			pool: collector.PoolRates{Name: "api", Servers: []collector.ServerRates{
				{Name: "a", State: up, Requests: 5, MeanLatencyMs: 8, Gauges: collector.Gauges{P95Ms: ptr(30)}},
				{Name: "b", State: collector.StateDrain, Requests: 5, MeanLatencyMs: 12, Gauges: collector.Gauges{P95Ms: ptr(40)}},
			}},
			want: map[int]float64{
				FeatRate: 10, FeatRatePerServer: 10, FeatMaxShare: 0.5, FeatShareCV: 0,
				FeatMeanLatency: 10, FeatMaxLatency: 12, FeatServers: 1,
				FeatP95Latency: (5*30 + 5*40) / 10.0, // request-weighted server percentiles
			},
		},
		{
			name: "idle pool: even shares, latency from gauges",
			pool: collector.PoolRates{Name: "idle", Servers: []collector.ServerRates{
				{Name: "a", State: up, MeanLatencyMs: 4},
				{Name: "b", State: up},
				{Name: "c", State: collector.StateDown},
			}},
			want: map[int]float64{
				FeatRate: 0, FeatMaxShare: 0.5, FeatShareCV: 0, FeatMeanLatency: 4, FeatMaxLatency: 4,
				FeatErrorRatio: 0, FeatServers: 2,
			},
			wantImputed: []int{FeatP95Latency},
		},
		{
			name: "no latency anywhere: zero and imputed",
			pool: collector.PoolRates{Name: "x", Servers: []collector.ServerRates{{Name: "a", State: up, Requests: 3}}},
			want: map[int]float64{
				FeatRate: 3, FeatMaxShare: 1, FeatMeanLatency: 0, FeatMaxLatency: 0, FeatP95Latency: 0,
			},
			wantImputed: []int{FeatMeanLatency, FeatMaxLatency, FeatP95Latency},
		},
		{
			name:        "no servers at all",
			pool:        collector.PoolRates{Name: "empty"},
			want:        map[int]float64{FeatRate: 0, FeatMaxShare: 0, FeatServers: 0, FeatRatePerServer: 0},
			wantImputed: []int{FeatMeanLatency, FeatMaxLatency, FeatP95Latency},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Extract(&tc.pool)
			for j, want := range tc.want {
				if got := f.Values[j]; math.Abs(got-want) > 1e-9 {
					t.Errorf("%s = %v, want %v", FeatureNames[j], got, want)
				}
			}
			imputed := map[int]bool{}
			for _, j := range tc.wantImputed {
				imputed[j] = true
			}
			for j := 0; j < NumFeatures; j++ {
				if f.Imputed[j] != imputed[j] {
					t.Errorf("%s imputed = %v, want %v", FeatureNames[j], f.Imputed[j], imputed[j])
				}
			}
			// Transform then InverseTransform is the identity on real values.
			back := InverseTransform(nil, f.Transform(nil))
			for j, v := range f.Values {
				if math.Abs(back[j]-v) > 1e-9*math.Max(1, v) {
					t.Errorf("round trip of %s: %v -> %v", FeatureNames[j], v, back[j])
				}
			}
		})
	}
}

func TestScaler(t *testing.T) {
	rows := [][]float64{{1, 5, 10}, {3, 5, 20}, {5, 5, 30}}
	s := FitScaler(rows)
	wantMean := []float64{3, 5, 20}
	wantStd := []float64{math.Sqrt(8.0 / 3), 1, math.Sqrt(200.0 / 3)} // constant column divides by 1
	for j := range wantMean {
		if math.Abs(s.Mean[j]-wantMean[j]) > 1e-12 || math.Abs(s.Std[j]-wantStd[j]) > 1e-12 {
			t.Errorf("column %d: mean %v std %v, want %v %v", j, s.Mean[j], s.Std[j], wantMean[j], wantStd[j])
		}
	}
	z := s.Transform(nil, rows[2])
	back := s.Inverse(nil, z)
	for j := range back {
		if math.Abs(back[j]-rows[2][j]) > 1e-12 {
			t.Errorf("inverse column %d: %v, want %v", j, back[j], rows[2][j])
		}
	}
}

// regime is one kind of load for synthSnapshots.
type regime struct {
	rate, latencyMs, errRatio float64
	servers                   int
}

// synthSnapshots records a pool of up to 4 servers through the given regimes,
// steps snapshots per regime, one snapshot a second, with noisy counters;
// the last regime's balancer restarts (counters back to zero) at its start.
func synthSnapshots(seed uint64, steps int, regimes ...regime) []collector.Snapshot {
	rng := rand.New(rand.NewPCG(seed, 1))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var cum [4]collector.Counters
	var out []collector.Snapshot
	i := 0
	for ri, r := range regimes {
		if ri == len(regimes)-1 && ri > 0 {
			cum = [4]collector.Counters{}
		}
		for s := 0; s < steps; s++ {
			p := collector.Pool{Name: "web"}
			for sv := 0; sv < 4; sv++ {
				st := collector.StateUp
				var req uint64
				if sv >= r.servers {
					st = collector.StateMaint
				} else {
					req = uint64(math.Max(0, r.rate/float64(r.servers)*(1+0.1*rng.NormFloat64())))
				}
				c := &cum[sv]
				c.Requests += req
				errs := uint64(float64(req) * r.errRatio)
				c.Responses[1] += req - errs
				c.Responses[4] += errs
				c.BytesIn += req * 300
				c.BytesOut += req * 2000
				c.LatencySumMs += uint64(float64(req) * r.latencyMs * (1 + 0.1*rng.NormFloat64()))
				p.Servers = append(p.Servers, collector.Server{
					Name: string(rune('a' + sv)), Address: "127.0.0.1:1", Weight: 1, State: st,
					Counters: *c, Gauges: collector.Gauges{Active: r.rate * r.latencyMs / 1000 / float64(r.servers)},
				})
			}
			out = append(out, collector.Snapshot{Time: t0.Add(time.Duration(i) * time.Second), Source: "synthetic", Pools: []collector.Pool{p}})
			i++
		}
	}
	return out
}

func TestSamples(t *testing.T) {
	snaps := synthSnapshots(1, 20, regime{100, 10, 0, 2}, regime{800, 80, 0.05, 4})
	// Shuffle: Samples must order by time itself.
	rand.New(rand.NewPCG(2, 2)).Shuffle(len(snaps), func(i, j int) { snaps[i], snaps[j] = snaps[j], snaps[i] })
	fs, st := Samples(snaps)
	// 40 snapshots, 39 intervals; the first interval of regime 2 sees the
	// restart (counters went back) and is dropped.
	if st.Intervals != 39 || st.Reset != 1 || len(fs) != 38 {
		t.Fatalf("intervals %d reset %d samples %d, want 39 1 38", st.Intervals, st.Reset, len(fs))
	}
	for _, f := range fs[:19] {
		if math.Abs(f.Values[FeatRate]-100) > 40 || f.Values[FeatServers] != 2 || math.Abs(f.Values[FeatMeanLatency]-10) > 3 {
			t.Fatalf("low regime sample %+v", f.Values)
		}
	}
	last := fs[len(fs)-1]
	if math.Abs(last.Values[FeatRate]-800) > 200 || last.Values[FeatServers] != 4 || math.Abs(last.Values[FeatErrorRatio]-0.05) > 0.02 {
		t.Fatalf("high regime sample %+v", last.Values)
	}
}

// TestImputedShares counts imputed values per feature, over one pool or
// all, and leaves out features never imputed.
func TestImputedShares(t *testing.T) {
	var a, b, c Features
	a.Pool, b.Pool, c.Pool = "web", "web", "api"
	a.Imputed[FeatP95Latency] = true
	c.Imputed[FeatP95Latency], c.Imputed[FeatMeanLatency] = true, true
	samples := []Features{a, b, c}
	tests := []struct {
		pool string
		want map[string]float64
	}{
		{"", map[string]float64{"p95_latency_ms": 2.0 / 3, "mean_latency_ms": 1.0 / 3}},
		{"web", map[string]float64{"p95_latency_ms": 0.5}},
		{"none", map[string]float64{}},
	}
	for _, tc := range tests {
		got := ImputedShares(samples, tc.pool)
		if len(got) != len(tc.want) {
			t.Errorf("pool %q: %v, want %v", tc.pool, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if math.Abs(got[k]-v) > 1e-12 {
				t.Errorf("pool %q: %s = %v, want %v", tc.pool, k, got[k], v)
			}
		}
	}
	var st SampleStats
	st.Add(SampleStats{Intervals: 3, Reset: 1})
	st.Add(SampleStats{Intervals: 2, Unordered: 4})
	if st != (SampleStats{Intervals: 5, Reset: 1, Unordered: 4}) {
		t.Errorf("stats %+v", st)
	}
}
