package model

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// Feature indices into Features.Values. The state of a pool over one
// interval; weights are the agent's control and deliberately absent.
const (
	FeatRate          = iota // arrival rate, requests/s (sum over servers)
	FeatRatePerServer        // arrival rate per serving server, requests/s
	FeatMaxShare             // largest share of the pool's requests one server took, 0..1
	FeatShareCV              // coefficient of variation of requests across serving servers
	FeatMeanLatency          // request-weighted mean response time, ms
	FeatMaxLatency           // largest per-server mean response time, ms
	FeatP95Latency           // pool p95 response time, ms (collector.PoolRates.P95Ms; imputed when estimated from means)
	FeatErrorRatio           // (5xx + connection errors) / requests, 0..1 (collector.PoolRates.ErrorRatio)
	FeatBytesIn              // bytes/s received from clients
	FeatBytesOut             // bytes/s sent to clients
	FeatActive               // requests in progress (sum of server active gauges)
	FeatQueue                // requests queued (pool queue + server queues)
	FeatServers              // servers serving (collector.PoolRates.ServersUp)
	NumFeatures              // dimension of the feature vector
)

// FeatureNames names each feature, with its unit, in index order. Read-only.
var FeatureNames = [NumFeatures]string{
	"rate_rps", "rate_per_server_rps", "max_share", "share_cv",
	"mean_latency_ms", "max_latency_ms", "p95_latency_ms", "error_ratio",
	"bytes_in_per_s", "bytes_out_per_s", "active", "queue", "servers",
}

// logFeature marks the heavy-tailed features that Transform maps through
// log1p before standardising. Shares, ratios and the server count are
// bounded and stay linear.
var logFeature = [NumFeatures]bool{
	FeatRate: true, FeatRatePerServer: true,
	FeatMeanLatency: true, FeatMaxLatency: true, FeatP95Latency: true,
	FeatBytesIn: true, FeatBytesOut: true, FeatActive: true, FeatQueue: true,
}

// Features is the load state of one pool over one interval, in real units.
type Features struct {
	// Pool is the pool's name; Time is the end of the interval.
	Pool string    `json:"pool"`
	Time time.Time `json:"time"`
	// Values are indexed by the Feat constants.
	Values [NumFeatures]float64 `json:"values"`
	// Imputed marks values that were missing and filled in: latencies with
	// no source value (0) and a p95 estimated from means (see
	// collector.P95PerMean).
	Imputed [NumFeatures]bool `json:"imputed"`
}

// Extract computes the features of one pool over one interval. It never
// fails: an idle pool has zero rates, even shares and, when no latency is
// known at all, zero latencies marked Imputed.
func Extract(pr *collector.PoolRates) Features {
	var f Features
	f.Pool = pr.Name
	v := &f.Values
	var bytesIn, bytesOut, active, queue float64
	var latMax, gaugeSum, gaugeMax float64
	var gaugeN int
	measuredP95 := pr.SourceP95Ms != nil
	for i := range pr.Servers {
		s := &pr.Servers[i]
		bytesIn += s.BytesIn
		bytesOut += s.BytesOut
		active += s.Gauges.Active
		queue += s.Gauges.Queue
		if s.MeanLatencyMs > 0 {
			if s.Requests > 0 {
				latMax = math.Max(latMax, s.MeanLatencyMs)
			}
			gaugeSum += s.MeanLatencyMs
			gaugeMax = math.Max(gaugeMax, s.MeanLatencyMs)
			gaugeN++
		}
		if s.Requests > 0 && s.Gauges.P95Ms != nil {
			measuredP95 = true
		}
	}
	rate := pr.Requests()
	serving := pr.ServersUp()
	v[FeatRate] = rate
	v[FeatRatePerServer] = rate / float64(max(serving, 1))
	v[FeatMaxShare], v[FeatShareCV] = shares(pr, rate)
	switch mean := pr.MeanMs(); {
	case mean > 0:
		v[FeatMeanLatency], v[FeatMaxLatency] = mean, latMax
	case gaugeN > 0:
		// No request in the interval: the balancer's moving averages.
		v[FeatMeanLatency], v[FeatMaxLatency] = gaugeSum/float64(gaugeN), gaugeMax
	default:
		f.Imputed[FeatMeanLatency], f.Imputed[FeatMaxLatency] = true, true
	}
	v[FeatP95Latency] = pr.P95Ms()
	if v[FeatP95Latency] == 0 && rate <= 0 {
		// Nothing served: the one estimate from the mean, applied to the
		// balancer's moving averages.
		v[FeatP95Latency] = collector.P95PerMean * v[FeatMeanLatency]
		measuredP95 = false
	}
	f.Imputed[FeatP95Latency] = !measuredP95
	v[FeatErrorRatio] = pr.ErrorRatio()
	v[FeatBytesIn], v[FeatBytesOut] = bytesIn, bytesOut
	v[FeatActive] = active
	v[FeatQueue] = pr.Queue + queue
	v[FeatServers] = float64(serving)
	return f
}

// shares returns the largest share of requests one server took and the
// coefficient of variation of request rates over the servers that serve
// (state up) or took requests. With no requests the shares are even.
func shares(pr *collector.PoolRates, rate float64) (maxShare, cv float64) {
	var n int
	var sum, sumSq, mx float64
	for i := range pr.Servers {
		s := &pr.Servers[i]
		if s.State != collector.StateUp && s.Requests <= 0 {
			continue
		}
		n++
		sum += s.Requests
		sumSq += s.Requests * s.Requests
		mx = math.Max(mx, s.Requests)
	}
	if n == 0 {
		return 0, 0
	}
	if rate <= 0 || sum <= 0 {
		return 1 / float64(n), 0
	}
	mean := sum / float64(n)
	variance := math.Max(sumSq/float64(n)-mean*mean, 0)
	return mx / rate, math.Sqrt(variance) / mean
}

// Transform writes the model-space vector of f into dst (reused when it has
// capacity NumFeatures): log1p of the heavy-tailed features, the others as
// they are.
func (f *Features) Transform(dst []float64) []float64 {
	dst = resize(dst, NumFeatures)
	for j, x := range f.Values {
		if logFeature[j] {
			x = math.Log1p(math.Max(x, 0))
		}
		dst[j] = x
	}
	return dst
}

// InverseTransform maps a model-space vector t back to real units into dst:
// expm1 of the log features (a centroid therefore reads as a geometric-style
// mean), clamped at 0.
func InverseTransform(dst, t []float64) []float64 {
	if len(t) != NumFeatures {
		panic(fmt.Sprintf("model: InverseTransform of length %d, want %d", len(t), NumFeatures))
	}
	dst = resize(dst, NumFeatures)
	for j, x := range t {
		if logFeature[j] {
			x = math.Max(math.Expm1(x), 0)
		}
		if math.Abs(x) < 1e-12 {
			x = 0 // rounding noise of the scaler's inverse
		}
		dst[j] = x
	}
	return dst
}

// SampleStats counts what Samples did with the intervals it saw.
type SampleStats struct {
	// Intervals is the number of pool-intervals considered.
	Intervals int `json:"intervals"`
	// Reset counts pool-intervals dropped because a counter went backwards
	// or a server appeared (its rate would be a since-start total).
	Reset int `json:"reset"`
	// Unordered counts snapshot pairs dropped because time did not advance.
	Unordered int `json:"unordered"`
}

// Add adds o's counts to s (samples from several recordings).
func (s *SampleStats) Add(o SampleStats) {
	s.Intervals += o.Intervals
	s.Reset += o.Reset
	s.Unordered += o.Unordered
}

// ImputedShares is, per feature name, the share of the samples (of pool
// only, unless pool is "") whose value was imputed; features never imputed
// are left out.
func ImputedShares(samples []Features, pool string) map[string]float64 {
	out := map[string]float64{}
	for j, name := range FeatureNames {
		var n, total int
		for i := range samples {
			if pool != "" && samples[i].Pool != pool {
				continue
			}
			total++
			if samples[i].Imputed[j] {
				n++
			}
		}
		if n > 0 {
			out[name] = float64(n) / float64(total)
		}
	}
	return out
}

// Samples turns recorded snapshots into per-pool, per-interval Features:
// snapshots are grouped by Source, ordered by Time, and every consecutive
// pair gives one interval. Pool-intervals where any server was reset are
// dropped, since their rates would count from the balancer's start.
func Samples(snaps []collector.Snapshot) ([]Features, SampleStats) {
	bySource := map[string][]*collector.Snapshot{}
	var sources []string
	for i := range snaps {
		s := &snaps[i]
		if _, ok := bySource[s.Source]; !ok {
			sources = append(sources, s.Source)
		}
		bySource[s.Source] = append(bySource[s.Source], s)
	}
	sort.Strings(sources)
	var out []Features
	var st SampleStats
	for _, src := range sources {
		ss := bySource[src]
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].Time.Before(ss[j].Time) })
		for i := 1; i < len(ss); i++ {
			r, err := collector.Rate(ss[i-1], ss[i])
			if err != nil {
				st.Unordered++
				continue
			}
			for p := range r.Pools {
				pr := &r.Pools[p]
				st.Intervals++
				if anyReset(pr) {
					st.Reset++
					continue
				}
				f := Extract(pr)
				f.Time = r.End
				out = append(out, f)
			}
		}
	}
	return out, st
}

func anyReset(pr *collector.PoolRates) bool {
	for i := range pr.Servers {
		if pr.Servers[i].Reset {
			return true
		}
	}
	return false
}

// Scaler standardises model-space vectors with the mean and standard
// deviation of the training data: z = (x - Mean) / Std.
type Scaler struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

// minStd is the smallest standard deviation a Scaler divides by; a feature
// constant in training (std below it) is only centred.
const minStd = 1e-9

// FitScaler learns the per-column mean and population standard deviation of
// rows (each of the same length).
func FitScaler(rows [][]float64) Scaler {
	if len(rows) == 0 {
		panic("model: FitScaler of no rows")
	}
	d := len(rows[0])
	s := Scaler{Mean: make([]float64, d), Std: make([]float64, d)}
	for _, r := range rows {
		for j, x := range r {
			s.Mean[j] += x
		}
	}
	n := float64(len(rows))
	for j := range s.Mean {
		s.Mean[j] /= n
	}
	for _, r := range rows {
		for j, x := range r {
			e := x - s.Mean[j]
			s.Std[j] += e * e
		}
	}
	for j := range s.Std {
		s.Std[j] = math.Sqrt(s.Std[j] / n)
		if s.Std[j] < minStd {
			s.Std[j] = 1
		}
	}
	return s
}

// Transform writes (x - Mean) / Std into dst and returns it.
func (s *Scaler) Transform(dst, x []float64) []float64 {
	dst = resize(dst, len(s.Mean))
	for j := range dst {
		dst[j] = (x[j] - s.Mean[j]) / s.Std[j]
	}
	return dst
}

// Inverse writes z * Std + Mean into dst and returns it.
func (s *Scaler) Inverse(dst, z []float64) []float64 {
	dst = resize(dst, len(s.Mean))
	for j := range dst {
		dst[j] = z[j]*s.Std[j] + s.Mean[j]
	}
	return dst
}
