package eval

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent/sim"
	"github.com/lbtune/lbtune/collector"
)

// calRecord records a simulated pool of known parameters, scraped every
// second, as a recording to calibrate.
func calRecord(t *testing.T, cfg sim.Config) []collector.Snapshot {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var snaps []collector.Snapshot
	for at := time.Duration(0); at <= s.End(); at += time.Second {
		s.Advance(at)
		sn, err := s.Scrape(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, sn)
	}
	return snaps
}

// TestCalibrateRecoversPool calibrates a recording of a known pool (3
// servers of 4 slots, 50 ms exponential service, 30 then 60 req/s) and
// checks the calibrated figures and the reproduction.
func TestCalibrateRecoversPool(t *testing.T) {
	tr := &sim.Trace{Name: "steps", Times: []float64{0, 300}, Rates: []float64{30, 60}, End: 600}
	snaps := calRecord(t, sim.Config{Seed: 7, Trace: tr, Pools: []sim.PoolConfig{{
		Name: "web", Servers: 3, Slots: 4, Balancer: sim.LeastConn,
		Classes: []sim.Class{{Name: "web", Share: 1, Service: sim.Dist{Kind: "exp", Mean: 0.05}}},
	}}})
	cals := Calibrate("rec", snaps)
	if len(cals) != 1 {
		t.Fatalf("%d calibrations, want 1", len(cals))
	}
	c := cals[0]
	if c.Skipped != "" {
		t.Fatalf("skipped: %s", c.Skipped)
	}
	// No queueing at 60 req/s on 12 slots of 20 req/s: the lower quartile
	// of the interval means is a little under the 50 ms mean.
	if c.Servers != 3 || c.MinServers != 3 || c.MaxServers != 3 {
		t.Errorf("servers %d (%d..%d), want 3", c.Servers, c.MinServers, c.MaxServers)
	}
	if c.ServiceMs < 35 || c.ServiceMs > 55 {
		t.Errorf("service %.1f ms, want about 50", c.ServiceMs)
	}
	if math.Abs(c.ArrivalMean-45)/45 > 0.1 || c.ArrivalPeak < 55 {
		t.Errorf("arrivals mean %.1f peak %.1f, want about 45 and >= 55", c.ArrivalMean, c.ArrivalPeak)
	}
	if c.Balancer != sim.SmoothWRR || c.Target != time.Duration(DefaultTargetFactor*c.ServiceMs*float64(time.Millisecond)) {
		t.Errorf("balancer %s target %v", c.Balancer, c.Target)
	}
	if want := float64(c.Slots) * 1000 / c.ServiceMs; math.Abs(c.ServiceRate-want) > 1e-9 || c.Slots < 1 {
		t.Errorf("service rate %v with %d slots", c.ServiceRate, c.Slots)
	}
	rep, err := c.Reproduce(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(rep.RateRPS/c.Recorded.RateRPS-1) > 0.1 || math.Abs(rep.MeanMs/c.Recorded.MeanMs-1) > 0.3 {
		t.Errorf("reproduction %+v, recording %+v", rep, c.Recorded)
	}
	if n := len(c.UnitSamples(snaps)); n < 500 {
		t.Errorf("%d unit samples, want one per interval with traffic (~600)", n)
	}
}

// TestCalibrateTooLittleData: a pool with fewer than
// CalibrationMinIntervals intervals of traffic is skipped, and FitRecorded
// returns ErrTooLittleData.
func TestCalibrateTooLittleData(t *testing.T) {
	tr := &sim.Trace{Name: "short", Times: []float64{0}, Rates: []float64{20}, End: 30}
	snaps := calRecord(t, sim.Config{Seed: 1, Trace: tr, Pools: []sim.PoolConfig{{Name: "web", Servers: 2,
		Classes: []sim.Class{{Name: "web", Share: 1, Service: sim.Dist{Kind: "exp", Mean: 0.01}}}}}})
	res, err := FitRecorded(context.Background(), RecordedFitConfig{Names: []string{"short"}, Snapshots: [][]collector.Snapshot{snaps}, Seed: 1})
	if err != ErrTooLittleData {
		t.Fatalf("err %v, want ErrTooLittleData", err)
	}
	if len(res.Calibrations) != 1 || res.Calibrations[0].Skipped == "" {
		t.Errorf("calibrations %+v", res.Calibrations)
	}
}

func TestLognormalSCV(t *testing.T) {
	tests := []struct {
		name    string
		ratio   float64
		wantSCV float64
	}{
		// sigma 1: p95/mean = exp(1.645 - 0.5) = 3.14, SCV = e - 1.
		{name: "sigma 1", ratio: math.Exp(1.6448536269514722 - 0.5), wantSCV: math.E - 1},
		{name: "below range", ratio: 0.5, wantSCV: math.Expm1(1e-6)},
		{name: "above range", ratio: 10, wantSCV: math.Expm1(1.6448536269514722 * 1.6448536269514722)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lognormalSCV(tc.ratio); math.Abs(got-tc.wantSCV) > 1e-6*max(1, tc.wantSCV) {
				t.Errorf("lognormalSCV(%v) = %v, want %v", tc.ratio, got, tc.wantSCV)
			}
		})
	}
}
