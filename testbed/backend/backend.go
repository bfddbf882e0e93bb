// Package backend is the testbed's job server: an HTTP server standing for one
// VM of a given size. It serves light, medium and heavy jobs whose cost is
// real CPU work or a sleep drawn from a chosen distribution, caps how many
// jobs run at once (the VM size), queues the excess in a bounded queue and
// rejects beyond it with 503. The testbed starts one process per pool member
// (lbtune backend); the balancers in front of it are what lbtune observes.
package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lbtune/lbtune/testbed/dist"
)

// Work is how a job spends its service time.
type Work string

// The kinds of work a job can do.
const (
	// CPU burns a calibrated number of loop iterations: the job competes for
	// the cores like real work, so its time stretches under contention.
	CPU Work = "cpu"
	// Sleep waits for the drawn time without using the CPU. The timer's
	// overshoot (its wake-up latency, about a millisecond on a loaded
	// host) is measured and taken off the following sleeps, so a job's
	// time is the drawn time on average: its mean is the configured one.
	Sleep Work = "sleep"
)

// Classes are the job classes served at /light, /medium and /heavy ("/" is light).
var Classes = []string{"light", "medium", "heavy"}

// Config describes one backend. Start from DefaultConfig.
type Config struct {
	// Name identifies the backend in responses (X-Lbtune-Server) and logs.
	Name string
	// Work selects CPU work or sleep.
	Work Work
	// Dist is the service-time distribution.
	Dist dist.Kind
	// Means is the mean service time per class at Speed 1.
	Means map[string]time.Duration
	// Concurrency is how many jobs run at once (0 = unlimited).
	Concurrency int
	// QueueLimit is how many jobs may wait for a slot; one more is refused with 503.
	QueueLimit int
	// Speed divides every service time (2 = a VM twice as fast).
	Speed float64
	// ItersPerMs is the CPU loop iterations per millisecond of work; 0 means
	// calibrate at start.
	ItersPerMs float64
	// ShutdownTimeout bounds how long Run waits for in-flight jobs on shutdown.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns a backend doing CPU work with exponential service
// times of 5/20/80 ms, 4 slots and a queue of 100.
func DefaultConfig() Config {
	return Config{
		Name:            "backend",
		Work:            CPU,
		Dist:            dist.Exponential,
		Means:           map[string]time.Duration{"light": 5 * time.Millisecond, "medium": 20 * time.Millisecond, "heavy": 80 * time.Millisecond},
		Concurrency:     4,
		QueueLimit:      100,
		Speed:           1,
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Work != CPU && c.Work != Sleep {
		errs = append(errs, fmt.Errorf("work %q: want cpu or sleep", c.Work))
	}
	if _, err := dist.Parse(string(c.Dist)); err != nil {
		errs = append(errs, err)
	}
	for _, cl := range Classes {
		if c.Means[cl] < 0 {
			errs = append(errs, fmt.Errorf("mean of %s %v: must not be negative", cl, c.Means[cl]))
		}
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency %d: must not be negative", c.Concurrency))
	}
	if c.QueueLimit < 0 {
		errs = append(errs, fmt.Errorf("queue limit %d: must not be negative", c.QueueLimit))
	}
	if !(c.Speed > 0) {
		errs = append(errs, fmt.Errorf("speed %v: must be positive", c.Speed))
	}
	return errors.Join(errs...)
}

// Stats are a backend's counters, served as JSON at /stats.
type Stats struct {
	Served   int64 `json:"served"`
	Rejected int64 `json:"rejected"`
	InFlight int64 `json:"in_flight"`
	Queued   int64 `json:"queued"`
}

// Server is an http.Handler serving jobs under Config.
type Server struct {
	cfg     Config
	sampler *dist.Sampler
	slots   chan struct{}
	log     *slog.Logger

	served, rejected, inFlight, queued atomic.Int64
	// overshoot is the sleep timer's mean wake-up latency (ns, an
	// exponentially weighted mean over the last ~16 sleeps).
	overshoot atomic.Int64
	// sleep waits d or until ctx ends (tests add an overshoot).
	sleep func(ctx context.Context, d time.Duration)
}

// overshootWeight is the weight 1/N of each sleep in the overshoot's mean.
const overshootWeight = 16

// sleepFor waits for ctx or d.
func sleepFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// sleepJob sleeps for d on average: it asks the timer for d minus the
// overshoot measured so far and folds this sleep's overshoot into it.
func (s *Server) sleepJob(ctx context.Context, d time.Duration) {
	o := time.Duration(s.overshoot.Load())
	ask := max(d-o, 0)
	start := time.Now()
	s.sleep(ctx, ask)
	if ctx.Err() != nil {
		return
	}
	late := time.Since(start) - ask
	// Concurrent jobs may overwrite each other's update: the mean stays
	// an estimate of the same latency.
	s.overshoot.Store(int64(o + (late-o)/overshootWeight))
}

// New returns a Server for cfg drawing service times from src.
func New(cfg Config, src rand.Source, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("backend config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, sampler: dist.New(cfg.Dist, src), log: log, sleep: sleepFor}
	if cfg.Concurrency > 0 {
		s.slots = make(chan struct{}, cfg.Concurrency)
	}
	if cfg.Work == CPU && s.cfg.ItersPerMs <= 0 {
		s.cfg.ItersPerMs = Calibrate(50 * time.Millisecond)
	}
	return s, nil
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	return Stats{Served: s.served.Load(), Rejected: s.rejected.Load(), InFlight: s.inFlight.Load(), Queued: s.queued.Load()}
}

// ServeHTTP routes /healthz, /stats and the job paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
		return
	case "/stats":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
		return
	case "/", "/light":
		s.serveJob(w, r, "light")
	case "/medium":
		s.serveJob(w, r, "medium")
	case "/heavy":
		s.serveJob(w, r, "heavy")
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveJob(w http.ResponseWriter, r *http.Request, class string) {
	arrived := time.Now()
	// Take a slot, waiting in the bounded queue if all are busy.
	if s.slots != nil {
		select {
		case s.slots <- struct{}{}:
		default:
			if s.queued.Add(1) > int64(s.cfg.QueueLimit) {
				s.queued.Add(-1)
				s.rejected.Add(1)
				w.Header().Set("X-Lbtune-Server", s.cfg.Name)
				http.Error(w, "queue full", http.StatusServiceUnavailable)
				return
			}
			select {
			case s.slots <- struct{}{}:
				s.queued.Add(-1)
			case <-r.Context().Done():
				s.queued.Add(-1)
				return
			}
		}
		defer func() { <-s.slots }()
	}
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	queuedFor := time.Since(arrived)

	// Do the job.
	mean := float64(s.cfg.Means[class]) / s.cfg.Speed
	d := time.Duration(s.sampler.Draw(mean))
	start := time.Now()
	if s.cfg.Work == CPU {
		Spin(d, s.cfg.ItersPerMs)
	} else {
		s.sleepJob(r.Context(), d)
	}
	took := time.Since(start)
	s.served.Add(1)

	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("X-Lbtune-Server", s.cfg.Name)
	h.Set("X-Lbtune-Service-Ms", strconv.FormatFloat(float64(took)/1e6, 'f', 3, 64))
	h.Set("X-Lbtune-Queue-Ms", strconv.FormatFloat(float64(queuedFor)/1e6, 'f', 3, 64))
	fmt.Fprintf(w, "%s %s %.3fms\n", s.cfg.Name, class, float64(took)/1e6)
}

// spinSink keeps the compiler from removing the spin loop.
var spinSink atomic.Uint64

// Spin burns d of CPU work at itersPerMs loop iterations per millisecond.
func Spin(d time.Duration, itersPerMs float64) {
	n := uint64(float64(d) / 1e6 * itersPerMs)
	spinSink.Add(spinLoop(n))
}

func spinLoop(n uint64) uint64 {
	x := uint64(88172645463325252)
	for i := uint64(0); i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// Calibrate measures loop iterations per millisecond over about d of work.
func Calibrate(d time.Duration) float64 {
	const chunk = 100000
	var n uint64
	start := time.Now()
	for time.Since(start) < d {
		spinSink.Add(spinLoop(chunk))
		n += chunk
	}
	return float64(n) / (float64(time.Since(start)) / 1e6)
}

// Run serves s on ln until ctx is done, then shuts down gracefully: it stops
// accepting and waits up to ShutdownTimeout for in-flight jobs to finish.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "name", s.cfg.Name, "in_flight", s.inFlight.Load(), "queued", s.queued.Load())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	<-errc // Serve returns ErrServerClosed once Shutdown starts.
	return nil
}
