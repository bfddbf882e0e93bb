package backend

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lbtune/lbtune/testbed/dist"
)

func testConfig(work Work, conc, queue int) Config {
	c := DefaultConfig()
	c.Work = work
	c.Dist = dist.Fixed
	c.Means = map[string]time.Duration{"light": 2 * time.Millisecond, "medium": 10 * time.Millisecond, "heavy": 60 * time.Millisecond}
	c.Concurrency = conc
	c.QueueLimit = queue
	c.ItersPerMs = 0
	return c
}

func TestServeRoutes(t *testing.T) {
	s, err := New(testConfig(Sleep, 0, 0), rand.NewPCG(1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	tests := []struct {
		name       string
		path       string
		wantStatus int
		minMs      float64 // the fixed service time of the class
	}{
		{name: "root is light", path: "/", wantStatus: 200, minMs: 2},
		{name: "light", path: "/light", wantStatus: 200, minMs: 2},
		{name: "medium", path: "/medium", wantStatus: 200, minMs: 10},
		{name: "heavy", path: "/heavy", wantStatus: 200, minMs: 60},
		{name: "healthz", path: "/healthz", wantStatus: 200},
		{name: "unknown", path: "/nope", wantStatus: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(ts.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.minMs == 0 {
				return
			}
			ms, err := strconv.ParseFloat(resp.Header.Get("X-Lbtune-Service-Ms"), 64)
			if err != nil {
				t.Fatalf("service-ms header: %v", err)
			}
			if ms < tc.minMs || ms > tc.minMs+50 {
				t.Fatalf("service %.3f ms, want about %.0f ms", ms, tc.minMs)
			}
		})
	}
}

// TestConcurrencyCap: 2 slots and a queue of 1 in front of 60 ms jobs; 5
// simultaneous requests give 2 served at once, 1 queued then served, 2 refused.
func TestConcurrencyCap(t *testing.T) {
	s, err := New(testConfig(Sleep, 2, 1), rand.NewPCG(1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(ts.URL + "/heavy")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 3 || codes[503] != 2 {
		t.Fatalf("status counts %v, want 3x200 and 2x503", codes)
	}
	if st := s.Stats(); st.Served != 3 || st.Rejected != 2 || st.InFlight != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCPUWorkTakesItsTime(t *testing.T) {
	c := testConfig(CPU, 1, 10)
	s, err := New(c, rand.NewPCG(1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	start := time.Now()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/heavy", nil))
	took := time.Since(start)
	// 60 ms of calibrated work; allow for a loaded machine both ways.
	if took < 20*time.Millisecond || took > 600*time.Millisecond {
		t.Fatalf("heavy CPU job took %v, want about 60ms", took)
	}
}

func TestGracefulShutdown(t *testing.T) {
	s, err := New(testConfig(Sleep, 0, 0), rand.NewPCG(1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()

	got := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/heavy")
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	// Cancel while the 60 ms job runs; it must still complete with 200.
	for s.Stats().InFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if code := <-got; code != 200 {
		t.Fatalf("in-flight request got %d, want 200", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{name: "work", mutate: func(c *Config) { c.Work = "gpu" }},
		{name: "dist", mutate: func(c *Config) { c.Dist = "pareto" }},
		{name: "negative mean", mutate: func(c *Config) { c.Means["heavy"] = -1 }},
		{name: "concurrency", mutate: func(c *Config) { c.Concurrency = -1 }},
		{name: "queue", mutate: func(c *Config) { c.QueueLimit = -1 }},
		{name: "speed", mutate: func(c *Config) { c.Speed = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("Validate accepted a bad config")
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}
