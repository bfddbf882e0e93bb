package collector

import (
	"errors"
	"math"
	"testing"
	"time"
)

func snap(t0 time.Time, sec int, servers ...Server) *Snapshot {
	return &Snapshot{Time: t0.Add(time.Duration(sec) * time.Second), Source: "test", Pools: []Pool{{Name: "app", Servers: servers}}}
}

func TestRate(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	srv := func(name string, req, r5xx, lat uint64) Server {
		return Server{Name: name, Address: name, Weight: 1, State: StateUp,
			Counters: Counters{Requests: req, BytesIn: req * 10, BytesOut: req * 100, Responses: [5]uint64{0, req - r5xx, 0, 0, r5xx}, LatencySumMs: lat},
			Gauges:   Gauges{AvgResponseMs: 7}}
	}
	// big is srv with every counter at v (a corrupt or wrapped counter).
	big := func(name string, v uint64) Server {
		s := srv(name, 0, 0, 0)
		s.Counters = Counters{Requests: v, BytesIn: v, BytesOut: v, Responses: [5]uint64{1: v}, Errors: v, LatencySumMs: v}
		return s
	}
	// with returns srv("a", 100, 0, 1000) changed by mod.
	with := func(mod func(c *Counters)) Server {
		s := srv("a", 100, 0, 1000)
		mod(&s.Counters)
		return s
	}
	tests := []struct {
		name            string
		prev, cur       *Snapshot
		wantReq         float64 // requests/s of server "a"
		wantLat         float64 // mean latency ms of "a"
		wantReset       bool
		wantImplausible bool
		wantErr         error
	}{
		{name: "steady", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 2, srv("a", 300, 10, 3000)),
			wantReq: 100, wantLat: 10},
		// A restart zeroes counters: the increase is the current value.
		{name: "restart", prev: snap(t0, 0, srv("a", 5000, 10, 50000)), cur: snap(t0, 1, srv("a", 40, 0, 800)),
			wantReq: 40, wantLat: 20, wantReset: true},
		// A new server counts from zero.
		{name: "new server", prev: snap(t0, 0), cur: snap(t0, 4, srv("a", 80, 0, 0)),
			wantReq: 20, wantLat: 7, wantReset: true},
		// No requests in the interval: fall back to the balancer's moving average.
		{name: "idle", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 1, srv("a", 100, 0, 1000)),
			wantReq: 0, wantLat: 7},
		// Counters that imply an absurd rate are no traffic: zero rates,
		// the gauge's latency, flagged (and Reset, so the model drops them).
		{name: "new server at 2^64-1", prev: snap(t0, 0), cur: snap(t0, 1, big("a", math.MaxUint64)),
			wantReq: 0, wantLat: 7, wantReset: true, wantImplausible: true},
		{name: "jump to 2^62 in 10 s", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 10, with(func(c *Counters) { c.Requests = 1 << 62 })),
			wantReq: 0, wantLat: 7, wantReset: true, wantImplausible: true},
		{name: "requests 1e9+1 per second", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 1, with(func(c *Counters) { c.Requests = 100 + 1e9 + 1 })),
			wantReq: 0, wantLat: 7, wantReset: true, wantImplausible: true},
		// Exactly MaxRequestRate is kept (mean latency 900 ms / 1e9 requests).
		{name: "requests at MaxRequestRate", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 1, with(func(c *Counters) { c.Requests = 100 + 1e9 })),
			wantReq: 1e9, wantLat: 0},
		{name: "5xx jump", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 2, with(func(c *Counters) { c.Responses[4] = 3e9 })),
			wantReq: 0, wantLat: 7, wantReset: true, wantImplausible: true},
		{name: "errors jump", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 2, with(func(c *Counters) { c.Errors = 3e9 })),
			wantReq: 0, wantLat: 7, wantReset: true, wantImplausible: true},
		{name: "bytes out 2e12 per second", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 1, with(func(c *Counters) { c.BytesOut = 2e12 })),
			wantReq: 0, wantLat: 7, wantReset: true, wantImplausible: true},
		// 10 requests whose latency sum jumped by 2^62 ms: a mean of 4.6e17 ms.
		{name: "latency sum jump", prev: snap(t0, 0, srv("a", 100, 0, 1000)), cur: snap(t0, 1, with(func(c *Counters) { c.Requests, c.LatencySumMs = 110, 1<<62 })),
			wantReq: 0, wantLat: 7, wantReset: true, wantImplausible: true},
		// A byte counter past 2^53 that grows at a real rate is kept.
		{name: "bytes past 2^53", prev: snap(t0, 0, with(func(c *Counters) { c.BytesOut = 1 << 53 })), cur: snap(t0, 1, with(func(c *Counters) { c.Requests, c.BytesOut = 200, 1<<53+1e9 })),
			wantReq: 100, wantLat: 0},
		{name: "same time", prev: snap(t0, 1, srv("a", 1, 0, 0)), cur: snap(t0, 1, srv("a", 2, 0, 0)), wantErr: ErrNotLater},
		{name: "earlier", prev: snap(t0, 2, srv("a", 1, 0, 0)), cur: snap(t0, 1, srv("a", 2, 0, 0)), wantErr: ErrNotLater},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Rate(tc.prev, tc.cur)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := r.Pool("app").Servers[0]
			if math.Abs(s.Requests-tc.wantReq) > 1e-9 {
				t.Errorf("requests/s = %v, want %v", s.Requests, tc.wantReq)
			}
			if math.Abs(s.MeanLatencyMs-tc.wantLat) > 1e-9 {
				t.Errorf("mean latency = %v, want %v", s.MeanLatencyMs, tc.wantLat)
			}
			if s.Reset != tc.wantReset {
				t.Errorf("reset = %v, want %v", s.Reset, tc.wantReset)
			}
			if s.Implausible != tc.wantImplausible {
				t.Errorf("implausible = %v, want %v", s.Implausible, tc.wantImplausible)
			}
			if tc.wantImplausible {
				p := r.Pool("app")
				if p.Requests() != 0 || s.BytesIn != 0 || s.BytesOut != 0 || s.Errors != 0 || s.Responses != [5]float64{} || p.ErrorRatio() != 0 || p.MeanMs() != 0 {
					t.Errorf("implausible interval reached the rates: %+v", s)
				}
			}
			for k, v := range s.Responses {
				if v < 0 {
					t.Errorf("negative response rate class %d: %v", k+1, v)
				}
			}
			if s.BytesIn < 0 || s.BytesOut < 0 || s.Errors < 0 {
				t.Errorf("negative byte/error rate: %+v", s)
			}
		})
	}
}

func TestErrorRatio(t *testing.T) {
	tests := []struct {
		name string
		s    ServerRates
		want float64
	}{
		{"none", ServerRates{}, 0},
		{"half 5xx", ServerRates{Requests: 10, Responses: [5]float64{0, 5, 0, 0, 5}}, 0.5},
		{"errors count", ServerRates{Requests: 10, Errors: 2}, 0.2},
		{"capped", ServerRates{Requests: 1, Errors: 3}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.ErrorRatio(); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("ErrorRatio = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Snapshot{Time: time.Unix(1, 0), Source: "x", Pools: []Pool{{Name: "p", Servers: []Server{{Name: "s", State: StateUp}}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid snapshot rejected: %v", err)
	}
	// The limits themselves are valid: a byte counter past 2^53 is real
	// traffic on a busy server.
	edge := ok
	edge.Pools = []Pool{{Name: "p", Servers: []Server{{Name: "s", State: StateUp, Weight: MaxWeight,
		Counters: Counters{Requests: MaxCounter, BytesOut: 1<<53 + 1, Responses: [5]uint64{4: MaxCounter}}}}}}
	if err := edge.Validate(); err != nil {
		t.Fatalf("snapshot at the limits rejected: %v", err)
	}
	nan := math.NaN()
	bad := []struct {
		name string
		mod  func(s *Snapshot)
	}{
		{"no time", func(s *Snapshot) { s.Time = time.Time{} }},
		{"empty pool", func(s *Snapshot) { s.Pools[0].Name = "" }},
		{"empty server", func(s *Snapshot) { s.Pools[0].Servers[0].Name = "" }},
		{"bad state", func(s *Snapshot) { s.Pools[0].Servers[0].State = "weird" }},
		{"negative active", func(s *Snapshot) { s.Pools[0].Servers[0].Gauges.Active = -1 }},
		{"nan p95", func(s *Snapshot) { s.Pools[0].Servers[0].Gauges.P95Ms = &nan }},
		{"negative queue time", func(s *Snapshot) { s.Pools[0].Servers[0].Gauges.QueueTimeMs = -1 }},
		{"nan connect time", func(s *Snapshot) { s.Pools[0].Servers[0].Gauges.ConnectTimeMs = nan }},
		{"infinite response time", func(s *Snapshot) { s.Pools[0].Servers[0].Gauges.ResponseTimeMs = math.Inf(1) }},
		{"negative total time", func(s *Snapshot) { s.Pools[0].Servers[0].Gauges.TotalTimeMs = -0.5 }},
		{"nan host load", func(s *Snapshot) { s.Host = &Host{Load1: nan} }},
		{"negative host cpu", func(s *Snapshot) { s.Host = &Host{CPUBusySeconds: -1, CPUTotalSeconds: 1} }},
		{"host busy above total", func(s *Snapshot) { s.Host = &Host{CPUBusySeconds: 2, CPUTotalSeconds: 1} }},
		{"negative weight", func(s *Snapshot) { s.Pools[0].Servers[0].Weight = -5 }},
		{"weight above MaxWeight", func(s *Snapshot) { s.Pools[0].Servers[0].Weight = MaxWeight + 1 }},
		{"requests 2^64-1", func(s *Snapshot) { s.Pools[0].Servers[0].Counters.Requests = math.MaxUint64 }},
		{"bytes in above MaxCounter", func(s *Snapshot) { s.Pools[0].Servers[0].Counters.BytesIn = MaxCounter + 1 }},
		{"4xx above MaxCounter", func(s *Snapshot) { s.Pools[0].Servers[0].Counters.Responses[3] = MaxCounter + 1 }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.Pools = []Pool{{Name: "p", Servers: []Server{{Name: "s", State: StateUp}}}}
			s.Host = nil
			tc.mod(&s)
			if err := s.Validate(); err == nil {
				t.Error("invalid snapshot accepted")
			}
		})
	}
}
