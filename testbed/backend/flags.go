package backend

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/lbtune/lbtune/testbed/dist"
)

// Flags are the command-line flags of lbtune backend. Register them on a
// FlagSet, parse, then call Serve.
type Flags struct {
	Listen, Name, Work, Dist   string
	LightMs, MediumMs, HeavyMs float64
	Concurrency, Queue         int
	Speed                      float64
	Seed                       uint64
	// BootDelay is how long the server takes to start listening, as a
	// virtual machine takes to boot (lbtune ab scales it by its speed-up).
	BootDelay time.Duration
}

// Register defines the flags on fs with DefaultConfig's values.
func (f *Flags) Register(fs *flag.FlagSet) {
	def := DefaultConfig()
	fs.StringVar(&f.Listen, "listen", "127.0.0.1:0", "address to listen on (port 0 picks a free one; the address is printed on stdout)")
	fs.StringVar(&f.Name, "name", "", "name reported in X-Lbtune-Server (default: the listen address)")
	fs.StringVar(&f.Work, "work", string(def.Work), "job cost: cpu (real CPU work) or sleep")
	fs.StringVar(&f.Dist, "dist", string(def.Dist), "service-time distribution: exp, fixed, normal, lognormal")
	fs.Float64Var(&f.LightMs, "light-ms", 5, "mean service time of /light (and /) in ms")
	fs.Float64Var(&f.MediumMs, "medium-ms", 20, "mean service time of /medium in ms")
	fs.Float64Var(&f.HeavyMs, "heavy-ms", 80, "mean service time of /heavy in ms")
	fs.IntVar(&f.Concurrency, "concurrency", def.Concurrency, "jobs served at once, the VM size (0 = unlimited)")
	fs.IntVar(&f.Queue, "queue", def.QueueLimit, "jobs that may wait for a slot; beyond it: 503")
	fs.Float64Var(&f.Speed, "speed", def.Speed, "speed factor dividing every service time")
	fs.Uint64Var(&f.Seed, "seed", 0, "random seed (0 = from the clock)")
	fs.DurationVar(&f.BootDelay, "boot-delay", 0, "wait this long before listening: a booting VM (health checks fail until then)")
}

// Config returns the Config the flags describe (Name is set by Serve when empty).
func (f *Flags) Config() (Config, error) {
	kind, err := dist.Parse(f.Dist)
	if err != nil {
		return Config{}, err
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	c := DefaultConfig()
	c.Name = f.Name
	c.Work = Work(f.Work)
	c.Dist = kind
	c.Means = map[string]time.Duration{"light": ms(f.LightMs), "medium": ms(f.MediumMs), "heavy": ms(f.HeavyMs)}
	c.Concurrency, c.QueueLimit, c.Speed = f.Concurrency, f.Queue, f.Speed
	return c, c.Validate()
}

// Serve listens on f.Listen, prints the address on stdout once listening,
// and serves until ctx is done (then shuts down gracefully).
func (f *Flags) Serve(ctx context.Context, c Config, stdout, stderr io.Writer) error {
	if f.BootDelay < 0 {
		return fmt.Errorf("--boot-delay %v must not be negative", f.BootDelay)
	}
	if f.BootDelay > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.BootDelay):
		}
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if c.Name == "" {
		c.Name = ln.Addr().String()
	}
	seed := f.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	srv, err := New(c, rand.NewPCG(seed, seed^0x9e3779b97f4a7c15), slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintln(stdout, ln.Addr().String())
	return srv.Run(ctx, ln)
}
