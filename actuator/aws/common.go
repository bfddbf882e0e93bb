package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/lbtune/lbtune/actuator"
)

// PoolTag is the tag key carrying an instance's pool name.
const PoolTag = "lbtune:pool"

// ErrBootTimeout marks an instance that did not become ready in time.
var ErrBootTimeout = errors.New("instance not ready in time")

// Readiness says when a new instance counts as ready and where it serves.
type Readiness struct {
	// Port is the service port on the instance; its address is
	// privateIP:Port.
	Port int
	// HealthPath, when set, is polled over HTTP on privateIP:Port until it
	// answers 200; "" means running is ready.
	HealthPath string
	// BootTimeout bounds the wait for a new instance; 0 means 10 minutes.
	BootTimeout time.Duration
	// Poll is the interval between describe calls; 0 means 5 s.
	Poll time.Duration
}

func (r Readiness) bootTimeout() time.Duration {
	if r.BootTimeout <= 0 {
		return 10 * time.Minute
	}
	return r.BootTimeout
}

func (r Readiness) poll() time.Duration {
	if r.Poll <= 0 {
		return 5 * time.Second
	}
	return r.Poll
}

func (r Readiness) addr(ip string) string {
	return net.JoinHostPort(ip, strconv.Itoa(r.Port))
}

// waitHealthy polls http://addr+HealthPath until 200 (no-op without a path).
func (r Readiness) waitHealthy(ctx context.Context, client *http.Client, addr string) error {
	if r.HealthPath == "" {
		return nil
	}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+r.HealthPath, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: health %s: %v (last: %v)", ErrBootTimeout, addr, ctx.Err(), last)
		case <-time.After(r.poll()):
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// orDefault returns l, or slog.Default() when l is nil.
func orDefault(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}

// lookup returns pool's template; the error names the provider kind ("asg",
// "ec2") and wraps actuator.ErrUnknownPool.
func lookup[T any](kind string, templates map[string]T, pool string) (T, error) {
	t, ok := templates[pool]
	if !ok {
		return t, fmt.Errorf("%s pool %q: %w", kind, pool, actuator.ErrUnknownPool)
	}
	return t, nil
}

// healthClient is the HTTP client of the providers' readiness checks.
func healthClient() *http.Client { return &http.Client{Timeout: 2 * time.Second} }

// sortByStart orders members oldest first.
func sortByStart(ms []actuator.Member) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Started.Before(ms[j].Started) })
}
