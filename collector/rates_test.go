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
	tests := []struct {
		name      string
		prev, cur *Snapshot
		wantReq   float64 // requests/s of server "a"
		wantLat   float64 // mean latency ms of "a"
		wantReset bool
		wantErr   error
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
