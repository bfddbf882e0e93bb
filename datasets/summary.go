package datasets

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// Summary describes a recording: what "lbtune dataset info" prints.
type Summary struct {
	// Snapshots and Events count the entries.
	Snapshots int `json:"snapshots"`
	Events    int `json:"events"`
	// Start and End are the times of the first and last snapshot (zero when
	// there is none); DurationS is End-Start in seconds.
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	DurationS float64   `json:"duration_s"`
	// Sources lists the snapshot sources, sorted.
	Sources []string `json:"sources"`
	// Pools and Servers count distinct pool names and distinct pool/server
	// pairs over the whole recording.
	Pools   int `json:"pools"`
	Servers int `json:"servers"`
	// Intervals counts consecutive snapshot pairs of the same source.
	Intervals int `json:"intervals"`
	// MedianIntervalS is the median of those intervals in seconds.
	MedianIntervalS float64 `json:"median_interval_s"`
	// Gaps are the intervals longer than twice the median, in time order.
	Gaps []Gap `json:"gaps"`
	// MinRate is the smallest per-server request rate (requests/s) derived
	// with collector.Rate between consecutive snapshots of a source; nil
	// when no interval exists. Never negative: Rate counts a counter reset
	// from zero.
	MinRate *float64 `json:"min_rate"`
	// Resets counts server intervals whose counters went backwards or whose
	// server was new (collector.ServerRates.Reset).
	Resets int `json:"resets"`
	// Unordered counts snapshots not later than the previous one of their
	// source; no rate is derived across them.
	Unordered int `json:"unordered"`
	// PoolStats are per-pool figures, sorted by name.
	PoolStats []PoolSummary `json:"pool_stats"`
	// Buckets counts the entries of the store's reserved buckets (models,
	// decisions, ...) that have any; nil for a dataset file.
	Buckets map[Bucket]int `json:"buckets,omitempty"`
}

// Gap is one interval between consecutive snapshots of a source that is
// longer than twice the median interval.
type Gap struct {
	Source  string    `json:"source"`
	After   time.Time `json:"after"`
	Before  time.Time `json:"before"`
	Seconds float64   `json:"seconds"`
}

// PoolSummary is the per-pool part of a Summary.
type PoolSummary struct {
	Name string `json:"name"`
	// Servers counts the distinct servers seen in the pool.
	Servers int `json:"servers"`
	// MeanRate is the pool's total request rate (requests/s) averaged over
	// the intervals in which the pool appears; MaxRate is the largest.
	MeanRate float64 `json:"mean_rate"`
	MaxRate  float64 `json:"max_rate"`
	// MinServerRate is the smallest per-server request rate in the pool.
	MinServerRate float64 `json:"min_server_rate"`
	// MeanCost is the pool's cost figure (collector.PoolRates.Cost with
	// c1 = c2 = 1: requests in the system plus primary servers up, at the
	// end of each interval) averaged over the same intervals.
	MeanCost float64 `json:"mean_cost"`
	// MeanMs and P95Ms are the pool's mean and p95 response time in ms,
	// each interval's collector.PoolRates.MeanMs and P95Ms weighted by the
	// requests the pool served in it (intervals where the figure is unknown
	// are left out); 0 when no interval has one. A p95 from a source
	// without percentiles is the collector's estimate from the mean.
	MeanMs float64 `json:"mean_ms"`
	P95Ms  float64 `json:"p95_ms"`
}

// Summarizer accumulates a Summary from snapshots given in time order per
// source (different sources may interleave).
type Summarizer struct {
	s         Summary
	prev      map[string]*collector.Snapshot
	sources   map[string]bool
	servers   map[[2]string]bool
	pools     map[string]*poolAcc
	intervals []interval
}

type poolAcc struct {
	servers  map[string]bool
	sum, max float64
	cost     float64 // sum of Cost(1, 1) over the intervals
	n        int
	// meanSum, p95Sum are sums of MeanMs and P95Ms times the requests of
	// each interval where they are known; meanW, p95W those requests.
	meanSum, meanW, p95Sum, p95W float64
	minServer                    float64
}

type interval struct {
	source        string
	after, before time.Time
}

// NewSummarizer returns an empty Summarizer.
func NewSummarizer() *Summarizer {
	return &Summarizer{
		prev:    map[string]*collector.Snapshot{},
		sources: map[string]bool{},
		servers: map[[2]string]bool{},
		pools:   map[string]*poolAcc{},
	}
}

// AddEvent counts one event.
func (z *Summarizer) AddEvent(Event) { z.s.Events++ }

// Add accounts for one snapshot.
func (z *Summarizer) Add(sn collector.Snapshot) {
	s := &z.s
	s.Snapshots++
	if s.Start.IsZero() || sn.Time.Before(s.Start) {
		s.Start = sn.Time
	}
	if sn.Time.After(s.End) {
		s.End = sn.Time
	}
	z.sources[sn.Source] = true
	for _, p := range sn.Pools {
		acc := z.pool(p.Name)
		for _, sv := range p.Servers {
			acc.servers[sv.Name] = true
			z.servers[[2]string{p.Name, sv.Name}] = true
		}
	}
	prev := z.prev[sn.Source]
	z.prev[sn.Source] = &sn
	if prev == nil {
		return
	}
	r, err := collector.Rate(prev, &sn)
	if err != nil {
		s.Unordered++
		z.prev[sn.Source] = prev // keep the latest in time
		return
	}
	z.intervals = append(z.intervals, interval{sn.Source, prev.Time, sn.Time})
	for _, pr := range r.Pools {
		acc := z.pool(pr.Name)
		total := pr.Requests()
		acc.sum += total
		acc.max = math.Max(acc.max, total)
		acc.cost += pr.Cost(1, 1)
		acc.n++
		if served := total * r.Seconds(); served > 0 {
			if m := pr.MeanMs(); m > 0 {
				acc.meanSum += m * served
				acc.meanW += served
			}
			if p := pr.P95Ms(); p > 0 {
				acc.p95Sum += p * served
				acc.p95W += served
			}
		}
		for _, sr := range pr.Servers {
			if sr.Reset {
				s.Resets++
			}
			if s.MinRate == nil || sr.Requests < *s.MinRate {
				v := sr.Requests
				s.MinRate = &v
			}
			if acc.minServer < 0 || sr.Requests < acc.minServer {
				acc.minServer = sr.Requests
			}
		}
	}
}

func (z *Summarizer) pool(name string) *poolAcc {
	acc := z.pools[name]
	if acc == nil {
		acc = &poolAcc{servers: map[string]bool{}, minServer: -1}
		z.pools[name] = acc
	}
	return acc
}

// Summary returns the figures of everything added so far.
func (z *Summarizer) Summary() Summary {
	s := z.s
	if !s.Start.IsZero() {
		s.DurationS = s.End.Sub(s.Start).Seconds()
	}
	s.Sources = sortedKeys(z.sources)
	s.Pools = len(z.pools)
	s.Servers = len(z.servers)
	s.Intervals = len(z.intervals)
	s.Gaps = []Gap{}
	if n := len(z.intervals); n > 0 {
		secs := make([]float64, n)
		for i, iv := range z.intervals {
			secs[i] = iv.before.Sub(iv.after).Seconds()
		}
		sort.Float64s(secs)
		if n%2 == 1 {
			s.MedianIntervalS = secs[n/2]
		} else {
			s.MedianIntervalS = (secs[n/2-1] + secs[n/2]) / 2
		}
		for _, iv := range z.intervals {
			if d := iv.before.Sub(iv.after).Seconds(); d > 2*s.MedianIntervalS {
				s.Gaps = append(s.Gaps, Gap{Source: iv.source, After: iv.after, Before: iv.before, Seconds: d})
			}
		}
		sort.SliceStable(s.Gaps, func(i, j int) bool { return s.Gaps[i].After.Before(s.Gaps[j].After) })
	}
	s.PoolStats = []PoolSummary{}
	for _, name := range sortedKeys(z.pools) {
		acc := z.pools[name]
		ps := PoolSummary{Name: name, Servers: len(acc.servers), MaxRate: acc.max, MinServerRate: math.Max(acc.minServer, 0)}
		if acc.n > 0 {
			ps.MeanRate = acc.sum / float64(acc.n)
			ps.MeanCost = acc.cost / float64(acc.n)
		}
		if acc.meanW > 0 {
			ps.MeanMs = acc.meanSum / acc.meanW
		}
		if acc.p95W > 0 {
			ps.P95Ms = acc.p95Sum / acc.p95W
		}
		s.PoolStats = append(s.PoolStats, ps)
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Summarize reads the store or dataset file at path and summarizes it,
// streaming: memory holds one snapshot per source, not the recording.
func Summarize(path string) (Summary, error) {
	z := NewSummarizer()
	if IsStore(path) {
		s, err := OpenReadOnly(path)
		if err != nil {
			return Summary{}, fmt.Errorf("summarize: %w", err)
		}
		defer s.Close()
		if err := s.Range("", time.Time{}, time.Time{}, func(sn collector.Snapshot) error { z.Add(sn); return nil }); err != nil {
			return Summary{}, fmt.Errorf("summarize: %w", err)
		}
		if err := s.RangeRecords(BucketEvents, time.Time{}, time.Time{}, func(time.Time, []byte) error { z.AddEvent(Event{}); return nil }); err != nil {
			return Summary{}, fmt.Errorf("summarize: %w", err)
		}
		sizes, err := s.BucketSizes()
		if err != nil {
			return Summary{}, fmt.Errorf("summarize: %w", err)
		}
		sum := z.Summary()
		if len(sizes) > 0 {
			sum.Buckets = sizes
		}
		return sum, nil
	}
	r, err := OpenFile(path)
	if err != nil {
		return Summary{}, fmt.Errorf("summarize: %w", err)
	}
	defer r.Close()
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return z.Summary(), nil
		}
		if err != nil {
			return Summary{}, fmt.Errorf("summarize: %w", err)
		}
		if e.Snapshot != nil {
			z.Add(*e.Snapshot)
		} else {
			z.AddEvent(*e.Event)
		}
	}
}
