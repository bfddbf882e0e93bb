package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Source produces one Snapshot per call. Implementations honour ctx for
// cancellation and deadlines, never return a partial or fabricated snapshot,
// and name themselves in every error.
type Source interface {
	// Scrape reads the balancer's statistics once.
	Scrape(ctx context.Context) (Snapshot, error)
	// String is the source URI, used in errors and recorded snapshots.
	String() string
}

// stateBlind is implemented by sources that cannot see servers' states:
// request logs, which list every server they have seen as up.
type stateBlind interface {
	ServerStatesUnknown()
}

// KnowsServerStates reports whether src reports servers' states (up,
// drain, maint, ...) as the balancer has them; a request log does not
// (through TimeScaled too). A daemon then takes them from the balancer's
// actuator (Pool.SetServing).
func KnowsServerStates(src Source) bool {
	if ts, ok := src.(*TimeScaled); ok {
		return KnowsServerStates(ts.Source)
	}
	_, blind := src.(stateBlind)
	return !blind
}

// ErrExhausted is returned by replaying sources (vts+file:, haproxy+file:)
// once every recorded capture has been returned.
var ErrExhausted = errors.New("no more recorded snapshots")

// ErrUnknownScheme is returned by Open for a URI whose scheme no source handles.
var ErrUnknownScheme = errors.New("unknown source scheme")

// opener builds a Source from a URI whose scheme prefix selected it.
type opener func(uri string) (Source, error)

// openers maps a URI scheme (the part before ':') to its constructor.
// Filled by the source files of this package.
var openers = map[string]opener{}

// Open returns the Source for a URI such as
// "vts+http://127.0.0.1:8080/status/format/json",
// "haproxy+unix:///run/haproxy/admin.sock", "haproxy+http://host/stats;csv",
// "vts+file:captures/vts", "haproxy+file:/tmp/caps",
// "nginxlog+udp://127.0.0.1:5514", "nginxlog+file:///var/log/nginx/access.log",
// "haproxylog+udp://127.0.0.1:5515", "haproxylog+file:///var/log/haproxy.log"
// (the log files also replay with "?replay=1s") or
// "prom+http://127.0.0.1:9090?job=haproxy&proxy=web" (HAProxy's exporter or
// nginx-module-vts through Prometheus; see OpenProm).
// A source that holds a resource between scrapes (nginxlog+udp and
// haproxylog+udp listen from Open) also implements io.Closer: close it when
// done.
func Open(uri string) (Source, error) {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok {
		return nil, fmt.Errorf("open source %q: missing scheme: %w", uri, ErrUnknownScheme)
	}
	o, found := openers[scheme]
	if !found {
		return nil, fmt.Errorf("open source %q: scheme %q: %w", uri, scheme, ErrUnknownScheme)
	}
	s, err := o(uri)
	if err != nil {
		return nil, fmt.Errorf("open source %q: %w", uri, err)
	}
	return s, nil
}

// The sources of this package.
var (
	_ Source    = (*vtsHTTP)(nil)
	_ Source    = (*haproxyUnix)(nil)
	_ Source    = (*haproxyHTTP)(nil)
	_ Source    = (*replay)(nil)
	_ Source    = (*logUDP)(nil)
	_ Source    = (*logFile)(nil)
	_ Source    = (*PromSource)(nil)
	_ io.Closer = (*logUDP)(nil)
)
