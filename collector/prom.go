package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

func init() {
	openers["prom+http"] = openProm
	openers["prom+https"] = openProm
}

// Errors of the Prometheus source, each wrapped with the source URI and the
// details (which selector, which series, how old).
var (
	// ErrEmptyResult: Prometheus answered, but no series matched the
	// source's selector (wrong job or proxy, or the exporter is not scraped).
	ErrEmptyResult = errors.New("prometheus returned no series for the selector")
	// ErrStale: the oldest sample of the matched series is older than the
	// source's stale limit (the exporter stopped being scraped).
	ErrStale = errors.New("prometheus series are stale")
	// ErrCounterReset: a counter went backwards since the previous
	// snapshot (a balancer restart). That snapshot is skipped; the next one
	// is compared with it, so a restart costs one snapshot.
	ErrCounterReset = errors.New("counter reset")
	// ErrIncomplete: a server lacks a series the snapshot needs, a value is
	// not a number lbtune can store, or two targets report the same server.
	ErrIncomplete = errors.New("incomplete or ambiguous prometheus series")
)

// Defaults of the prom+http source (see OpenProm).
const (
	// PromDefaultStale is the default age beyond which a series is stale:
	// three scrape intervals of Prometheus' usual 15 s.
	PromDefaultStale = 45 * time.Second
	// promChunkSteps bounds the steps of one query_range (Prometheus refuses
	// more than 11,000 points per series).
	promChunkSteps = 1000
)

// promExporter describes one exporter's metric names and labels.
type promExporter struct {
	name        string // "haproxy" or "vts"
	poolLabel   string // label naming the pool
	serverLabel string // label naming the server
	metrics     []string
	required    []string // every server must have each of these
}

var (
	promHAProxy = promExporter{
		name: "haproxy", poolLabel: "proxy", serverLabel: "server",
		metrics: []string{
			"haproxy_server_sessions_total", "haproxy_server_bytes_in_total", "haproxy_server_bytes_out_total",
			"haproxy_server_http_responses_total", "haproxy_server_connection_errors_total", "haproxy_server_response_errors_total",
			"haproxy_server_current_sessions", "haproxy_server_current_queue", "haproxy_server_weight", "haproxy_server_status",
			"haproxy_server_check_status",
			"haproxy_server_queue_time_average_seconds", "haproxy_server_connect_time_average_seconds",
			"haproxy_server_response_time_average_seconds", "haproxy_server_total_time_average_seconds",
			"haproxy_backend_current_queue",
		},
		required: []string{
			"haproxy_server_sessions_total", "haproxy_server_bytes_in_total", "haproxy_server_bytes_out_total",
			"haproxy_server_current_sessions", "haproxy_server_current_queue", "haproxy_server_weight", "haproxy_server_status",
		},
	}
	promVTS = promExporter{
		name: "vts", poolLabel: "upstream", serverLabel: "backend",
		metrics: []string{
			"nginx_vts_upstream_requests_total", "nginx_vts_upstream_bytes_total",
			"nginx_vts_upstream_request_seconds_total", "nginx_vts_upstream_request_seconds",
		},
		required: []string{"nginx_vts_upstream_requests_total", "nginx_vts_upstream_bytes_total"},
	}
)

// PromSource reads a balancer's statistics through a Prometheus server's
// HTTP API: HAProxy's built-in exporter (haproxy_server_*) or
// nginx-module-vts's Prometheus format (nginx_vts_upstream_*). Scrape runs
// instant queries; Backfill copies history with query_range. Open it with
// Open or OpenProm.
type PromSource struct {
	uri      string
	api      promv1.API
	exp      promExporter
	selector string // matchers after __name__, each starting with ","
	stale    time.Duration
	now      func() time.Time

	mu       sync.Mutex
	prev     map[string]Counters // "pool/server" -> counters of the last snapshot
	prevTime time.Time
	sums     latencySums // vts: Active from the latency sum's growth (InFlight)
}

// OpenProm returns the Prometheus source for a URI
//
//	prom+http://HOST:PORT[/PREFIX]?job=JOB[&instance=I][&proxy=P1,P2][&upstream=U][&exporter=haproxy|vts][&stale=45s]
//
// job and instance select the scrape target (each optional, job strongly
// advised); proxy (HAProxy backends) or upstream (vts upstreams) selects
// pools by exact name, comma-separated or repeated (default: all). The
// exporter is vts when upstream is given, else haproxy, unless exporter=
// says. stale is the oldest sample age accepted (default 45 s: three scrape
// intervals of 15 s; set about three of yours).
func OpenProm(uri string) (*PromSource, error) {
	rest, ok := strings.CutPrefix(uri, "prom+")
	if !ok {
		return nil, fmt.Errorf("want prom+http://HOST:PORT?job=..., got %q", uri)
	}
	u, err := url.Parse(rest)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("want prom+http://HOST:PORT?job=..., got %q", uri)
	}
	q := u.Query()
	s := &PromSource{uri: uri, exp: promHAProxy, stale: PromDefaultStale, now: time.Now}
	known := map[string]bool{"job": true, "instance": true, "proxy": true, "upstream": true, "exporter": true, "stale": true}
	for k := range q {
		if !known[k] {
			return nil, fmt.Errorf("unknown parameter %q (want job, instance, proxy, upstream, exporter, stale)", k)
		}
	}
	switch e := q.Get("exporter"); {
	case e == "vts", e == "" && q.Has("upstream"):
		s.exp = promVTS
	case e == "haproxy", e == "":
	default:
		return nil, fmt.Errorf("exporter %q: want haproxy or vts", e)
	}
	if q.Has("proxy") && q.Has("upstream") {
		return nil, errors.New("give proxy (HAProxy) or upstream (vts), not both")
	}
	if v := q.Get("stale"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("stale %q: want a positive duration such as 45s", v)
		}
		s.stale = d
	}
	var sel strings.Builder
	for _, l := range []string{"job", "instance"} {
		if v := q.Get(l); v != "" {
			fmt.Fprintf(&sel, ",%s=%s", l, strconv.Quote(v))
		}
	}
	var pools []string
	for _, v := range append(q["proxy"], q["upstream"]...) {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				pools = append(pools, regexp.QuoteMeta(p))
			}
		}
	}
	if len(pools) > 0 {
		fmt.Fprintf(&sel, ",%s=~%s", s.exp.poolLabel, strconv.Quote(strings.Join(pools, "|")))
	}
	s.selector = sel.String()
	u.RawQuery, u.Fragment = "", ""
	// No client timeout: every request runs under the caller's context.
	c, err := promapi.NewClient(promapi.Config{Address: u.String(), Client: &http.Client{}})
	if err != nil {
		return nil, err
	}
	s.api = promv1.NewAPI(c)
	return s, nil
}

func openProm(uri string) (Source, error) { return OpenProm(uri) }

// String is the source URI.
func (s *PromSource) String() string { return s.uri }

// Query is the PromQL selector of every series the source reads.
func (s *PromSource) Query() string {
	return fmt.Sprintf("{__name__=~%s%s}", strconv.Quote(strings.Join(s.exp.metrics, "|")), s.selector)
}

// describe names the series read, shortly, for errors.
func (s *PromSource) describe() string {
	prefix := "haproxy_server_*"
	if s.exp.name == "vts" {
		prefix = "nginx_vts_upstream_*"
	}
	return prefix + "{" + strings.TrimPrefix(s.selector, ",") + "}"
}

// timeQueries are the newest and the oldest sample time of the series.
// They read one metric (the exporter's first required one), not all:
// timestamp() drops the metric name, so over several metrics it would
// yield duplicate label sets, which Prometheus refuses. A target's series
// all carry the time of its scrape, so one metric stands for them.
func (s *PromSource) timeQueries() (newest, oldest string) {
	q := s.exp.required[0] + "{" + strings.TrimPrefix(s.selector, ",") + "}"
	return "max(timestamp(" + q + "))", "min(timestamp(" + q + "))"
}

// Scrape reads the latest samples with instant queries at the current time.
// The Snapshot's Time is the newest sample's timestamp (when Prometheus
// scraped the exporter). It fails with ErrEmptyResult, ErrStale,
// ErrCounterReset, ErrIncomplete, ErrNotLater (no sample newer than the
// previous snapshot's yet: scrape no faster than Prometheus does), or the
// error of the HTTP API (connection refused, ctx's deadline).
func (s *PromSource) Scrape(ctx context.Context) (Snapshot, error) {
	at := s.now()
	newestQ, oldestQ := s.timeQueries()
	var vec [3]model.Vector
	for i, q := range []string{s.Query(), newestQ, oldestQ} {
		v, err := s.instant(ctx, q, at)
		if err != nil {
			return Snapshot{}, err
		}
		vec[i] = v
	}
	if len(vec[0]) == 0 || len(vec[1]) != 1 || len(vec[2]) != 1 {
		return Snapshot{}, fmt.Errorf("scrape %s: %w: %s at %s", s.uri, ErrEmptyResult, s.describe(), at.UTC().Format(time.RFC3339))
	}
	newest, oldest := promSeconds(float64(vec[1][0].Value)), promSeconds(float64(vec[2][0].Value))
	if age := at.Sub(oldest); age > s.stale {
		return Snapshot{}, fmt.Errorf("scrape %s: %w: the oldest sample is %s old (at %s), more than stale=%s: is the exporter still scraped?",
			s.uri, ErrStale, age.Round(time.Millisecond), oldest.Format(time.RFC3339), s.stale)
	}
	samples := make([]promSample, len(vec[0]))
	for i, smp := range vec[0] {
		samples[i] = promSample{m: smp.Metric, v: float64(smp.Value)}
	}
	snap, err := s.build(newest, samples)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.advance(&snap); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	return snap, nil
}

func (s *PromSource) instant(ctx context.Context, q string, at time.Time) (model.Vector, error) {
	v, _, err := s.api.Query(ctx, q, at)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: query prometheus: %w", s.uri, ctxCause(ctx, promError{err}))
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("scrape %s: query prometheus: %w: result is a %s, not a vector", s.uri, ErrMalformed, v.Type())
	}
	return vec, nil
}

// promError is an error of the Prometheus client printed on one line:
// client_golang quotes the answer's bytes in decoding errors, which may
// hold newlines and control characters.
type promError struct{ err error }

func (e promError) Error() string {
	msg := strings.Join(strings.FieldsFunc(e.err.Error(), func(r rune) bool { return r < ' ' || r == 0x7f || r == ' ' }), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

func (e promError) Unwrap() error { return e.err }

// advance checks snap against the previous snapshot (later, no counter
// went backwards) and makes it the previous one. A counter reset makes snap
// the new baseline and is returned as an error: that snapshot is not kept.
// Called with s.mu held.
func (s *PromSource) advance(snap *Snapshot) error {
	if !s.prevTime.IsZero() && !snap.Time.After(s.prevTime) {
		return fmt.Errorf("%w: no sample newer than %s yet (scrape no faster than Prometheus does)", ErrNotLater, s.prevTime.Format(time.RFC3339Nano))
	}
	var reset []string
	next := make(map[string]Counters, len(s.prev))
	for _, p := range snap.Pools {
		for _, sv := range p.Servers {
			key := p.Name + "/" + sv.Name
			next[key] = sv.Counters
			if old, ok := s.prev[key]; ok {
				if what := counterWentBack(old, sv.Counters); what != "" {
					reset = append(reset, key+" "+what)
				}
			}
		}
	}
	s.prev, s.prevTime = next, snap.Time
	if s.exp.name == "vts" { // the exporter has no in-flight gauge
		s.sums.fill(snap)
	}
	if len(reset) > 0 {
		return fmt.Errorf("%w at %s: %s (balancer restarted?): snapshot skipped, the next one counts from here",
			ErrCounterReset, snap.Time.Format(time.RFC3339), strings.Join(reset, "; "))
	}
	return nil
}

// counterWentBack names the first counter of b lower than in a, or "".
func counterWentBack(a, b Counters) string {
	type c struct {
		name string
		a, b uint64
	}
	for _, x := range []c{
		{"requests", a.Requests, b.Requests}, {"bytes_in", a.BytesIn, b.BytesIn}, {"bytes_out", a.BytesOut, b.BytesOut},
		{"errors", a.Errors, b.Errors}, {"latency_sum_ms", a.LatencySumMs, b.LatencySumMs},
		{"1xx", a.Responses[0], b.Responses[0]}, {"2xx", a.Responses[1], b.Responses[1]}, {"3xx", a.Responses[2], b.Responses[2]},
		{"4xx", a.Responses[3], b.Responses[3]}, {"5xx", a.Responses[4], b.Responses[4]},
	} {
		if x.b < x.a {
			return fmt.Sprintf("%s %d -> %d", x.name, x.a, x.b)
		}
	}
	return ""
}

// promSample is one series' value at one instant.
type promSample struct {
	m model.Metric
	v float64
}

// build turns the samples of one instant into a Snapshot taken at at.
func (s *PromSource) build(at time.Time, samples []promSample) (Snapshot, error) {
	type key struct{ pool, server string }
	servers := map[key]*Server{}
	have := map[key]map[string]bool{}
	queues := map[string]float64{}
	seen := map[string]model.Metric{} // metric+pool+server+distinguishing label -> first series
	states := map[key][]string{}
	for _, smp := range samples {
		name := string(smp.m[model.MetricNameLabel])
		pool, server := string(smp.m[model.LabelName(s.exp.poolLabel)]), string(smp.m[model.LabelName(s.exp.serverLabel)])
		sub := string(smp.m["code"]) + string(smp.m["direction"]) + string(smp.m["state"])
		id := name + "{" + pool + "/" + server + "/" + sub + "}"
		if first, dup := seen[id]; dup {
			return Snapshot{}, fmt.Errorf("%w: %s comes from two series (%s and %s): narrow the URI with instance=", ErrIncomplete, id, first, smp.m)
		}
		seen[id] = smp.m
		if pool == "" {
			return Snapshot{}, fmt.Errorf("%w: %s has no %s label", ErrIncomplete, smp.m, s.exp.poolLabel)
		}
		v := smp.v
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			// HAProxy exports NaN for a limit that is not set; none of the
			// series read here is one, so a NaN is not stored.
			return Snapshot{}, fmt.Errorf("%w: %s = %v", ErrIncomplete, smp.m, v)
		}
		if name == "haproxy_backend_current_queue" {
			queues[pool] = v
			continue
		}
		if server == "" {
			return Snapshot{}, fmt.Errorf("%w: %s has no %s label", ErrIncomplete, smp.m, s.exp.serverLabel)
		}
		k := key{pool, server}
		sv := servers[k]
		if sv == nil {
			sv = &Server{Name: server, Address: server, State: StateUp}
			servers[k] = sv
			have[k] = map[string]bool{}
		}
		have[k][name] = true
		n := uint64(math.Round(v))
		switch name {
		// HAProxy exporter.
		case "haproxy_server_sessions_total":
			sv.Counters.Requests = n
		case "haproxy_server_bytes_in_total":
			sv.Counters.BytesIn = n
		case "haproxy_server_bytes_out_total":
			sv.Counters.BytesOut = n
		case "haproxy_server_connection_errors_total", "haproxy_server_response_errors_total":
			sv.Counters.Errors += n
		case "haproxy_server_http_responses_total":
			if i := promClass(string(smp.m["code"])); i >= 0 {
				sv.Counters.Responses[i] = n
			}
		case "haproxy_server_current_sessions":
			sv.Gauges.Active = v
		case "haproxy_server_current_queue":
			sv.Gauges.Queue = v
		case "haproxy_server_weight":
			if v > 1<<20 {
				return Snapshot{}, fmt.Errorf("%w: %s weight %v out of range", ErrIncomplete, smp.m, v)
			}
			sv.Weight = int(n)
		case "haproxy_server_status":
			if v == 1 {
				states[k] = append(states[k], string(smp.m["state"]))
			}
		case "haproxy_server_check_status":
			if v == 1 {
				sv.CheckStatus = string(smp.m["state"])
			}
		case "haproxy_server_queue_time_average_seconds":
			sv.Gauges.QueueTimeMs = v * 1000
		case "haproxy_server_connect_time_average_seconds":
			sv.Gauges.ConnectTimeMs = v * 1000
		case "haproxy_server_response_time_average_seconds":
			sv.Gauges.ResponseTimeMs = v * 1000
		case "haproxy_server_total_time_average_seconds":
			sv.Gauges.TotalTimeMs = v * 1000
		// nginx-module-vts.
		case "nginx_vts_upstream_requests_total":
			if i := promClass(string(smp.m["code"])); i >= 0 {
				sv.Counters.Responses[i] = n
			}
		case "nginx_vts_upstream_bytes_total":
			switch smp.m["direction"] {
			case "in":
				sv.Counters.BytesIn = n
			case "out":
				sv.Counters.BytesOut = n
			}
		case "nginx_vts_upstream_request_seconds_total":
			sv.Counters.LatencySumMs = uint64(math.Round(v * 1000))
		case "nginx_vts_upstream_request_seconds":
			sv.Gauges.AvgResponseMs = v * 1000
		}
	}
	if len(servers) == 0 {
		return Snapshot{}, fmt.Errorf("%w: no server series among %d", ErrEmptyResult, len(samples))
	}
	snap := Snapshot{Time: at.UTC(), Source: s.uri}
	pools := map[string]int{}
	for k, sv := range servers {
		for _, m := range s.exp.required {
			if !have[k][m] {
				return Snapshot{}, fmt.Errorf("%w: server %s/%s has no %s series", ErrIncomplete, k.pool, k.server, m)
			}
		}
		switch s.exp.name {
		case "haproxy":
			st := states[k]
			if len(st) != 1 {
				return Snapshot{}, fmt.Errorf("%w: server %s/%s has %d haproxy_server_status series at 1 (%v), want one",
					ErrIncomplete, k.pool, k.server, len(st), st)
			}
			state, err := haproxyState([]byte(st[0]))
			if err != nil {
				return Snapshot{}, fmt.Errorf("%w: server %s/%s: %v", ErrIncomplete, k.pool, k.server, err)
			}
			sv.State = state
			// lbtune's latency: qtime + ctime + rtime (see ParseHAProxyCSV).
			sv.Gauges.AvgResponseMs = sv.Gauges.QueueTimeMs + sv.Gauges.ConnectTimeMs + sv.Gauges.ResponseTimeMs
		case "vts":
			c := &sv.Counters
			c.Requests = c.Responses[0] + c.Responses[1] + c.Responses[2] + c.Responses[3] + c.Responses[4]
		}
		pi, ok := pools[k.pool]
		if !ok {
			pi = len(snap.Pools)
			pools[k.pool] = pi
			snap.Pools = append(snap.Pools, Pool{Name: k.pool, Queue: queues[k.pool]})
		}
		snap.Pools[pi].Servers = append(snap.Pools[pi].Servers, *sv)
	}
	for i := range snap.Pools {
		sortServersByName(snap.Pools[i].Servers)
	}
	sortPools(snap.Pools)
	if err := snap.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("%w: %v", ErrIncomplete, err)
	}
	return snap, nil
}

// promClass is the Responses index of a code label ("2xx" -> 1), or -1
// ("other", "total").
func promClass(code string) int {
	if len(code) == 3 && code[1:] == "xx" && code[0] >= '1' && code[0] <= '5' {
		return int(code[0] - '1')
	}
	return -1
}

// promSeconds converts a timestamp() value (Unix seconds with ms
// precision) to a time.
func promSeconds(v float64) time.Time {
	return time.UnixMilli(int64(math.Round(v * 1000))).UTC()
}

// BackfillStats counts what Backfill did.
type BackfillStats struct {
	// Steps is the number of evaluation steps in [from, to].
	Steps int
	// Appended is the number of snapshots stored.
	Appended int
	// Empty counts steps with no sample (no data in Prometheus then).
	Empty int
	// Stale counts steps whose oldest sample was older than stale.
	Stale int
	// Repeated counts steps that saw the same scrape as the step before
	// (a step shorter than the scrape interval).
	Repeated int
	// Resets counts steps skipped for a counter reset.
	Resets int
	// Bad counts steps skipped for ErrIncomplete.
	Bad int
}

// Backfill copies the history in [from, to] into app, one Snapshot per step
// (query_range, in chunks of at most 1000 steps; each chunk appended in one
// call). A snapshot's Time is the newest sample's timestamp at that step, so
// steps that see the same scrape are stored once. Steps with no sample, with
// stale samples, a counter reset or incomplete series are skipped and
// counted; the first stale and the first incomplete step and every reset
// are logged. It fails with
// ErrEmptyResult when the whole range holds no sample, and on the first
// query or append error (snapshots of earlier chunks stay stored), or
// when no step gave a snapshot to store.
func (s *PromSource) Backfill(ctx context.Context, from, to time.Time, step time.Duration, app Appender, logger *slog.Logger) (BackfillStats, error) {
	var st BackfillStats
	if step <= 0 || !to.After(from) {
		return st, fmt.Errorf("backfill %s: want from < to and a positive step (got %s .. %s, %s)", s.uri, from, to, step)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Prometheus evaluates at whole milliseconds: align the steps so that
	// the answer's timestamps are the ones looked up below.
	from, to, step = from.Truncate(time.Millisecond), to.Truncate(time.Millisecond), step.Truncate(time.Millisecond)
	if step <= 0 {
		return st, fmt.Errorf("backfill %s: step %s is shorter than Prometheus' 1 ms resolution", s.uri, step)
	}
	logged := map[string]bool{}
	skip := func(kind string, counter *int, err error) {
		*counter++
		if kind == "reset" || !logged[kind] {
			logged[kind] = true
			logger.Warn("backfill: step skipped", "source", s.uri, "error", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prev, s.prevTime = nil, time.Time{}
	newestQ, oldestQ := s.timeQueries()
	for start := from; !start.After(to); start = start.Add(promChunkSteps * step) {
		end := start.Add((promChunkSteps - 1) * step)
		if end.After(to) {
			end = to
		}
		r := promv1.Range{Start: start, End: end, Step: step}
		var mats [3]model.Matrix
		for i, q := range []string{s.Query(), newestQ, oldestQ} {
			v, _, err := s.api.QueryRange(ctx, q, r)
			if err != nil {
				return st, fmt.Errorf("backfill %s: query_range [%s, %s]: %w", s.uri, start.Format(time.RFC3339), end.Format(time.RFC3339), ctxCause(ctx, promError{err}))
			}
			m, ok := v.(model.Matrix)
			if !ok {
				return st, fmt.Errorf("backfill %s: query_range: %w: result is a %s, not a matrix", s.uri, ErrMalformed, v.Type())
			}
			mats[i] = m
		}
		byTime := map[model.Time][]promSample{}
		for _, ss := range mats[0] {
			for _, p := range ss.Values {
				byTime[p.Timestamp] = append(byTime[p.Timestamp], promSample{m: ss.Metric, v: float64(p.Value)})
			}
		}
		times := func(m model.Matrix) map[model.Time]float64 {
			out := map[model.Time]float64{}
			if len(m) == 1 {
				for _, p := range m[0].Values {
					out[p.Timestamp] = float64(p.Value)
				}
			}
			return out
		}
		newest, oldest := times(mats[1]), times(mats[2])
		var batch []Snapshot
		for t := start; !t.After(end); t = t.Add(step) {
			st.Steps++
			mt := model.TimeFromUnixNano(t.UnixNano())
			samples := byTime[mt]
			nv, ok1 := newest[mt]
			ov, ok2 := oldest[mt]
			if len(samples) == 0 || !ok1 || !ok2 {
				st.Empty++ // a gap in the history: counted, not logged
				continue
			}
			if age := t.Sub(promSeconds(ov)); age > s.stale {
				skip("stale", &st.Stale, fmt.Errorf("%w at %s: the oldest sample is %s old, more than stale=%s", ErrStale, t.UTC().Format(time.RFC3339), age.Round(time.Millisecond), s.stale))
				continue
			}
			at := promSeconds(nv)
			if !s.prevTime.IsZero() && !at.After(s.prevTime) {
				st.Repeated++
				continue
			}
			snap, err := s.build(at, samples)
			if err != nil {
				skip("bad", &st.Bad, fmt.Errorf("at %s: %w", t.UTC().Format(time.RFC3339), err))
				continue
			}
			if err := s.advance(&snap); err != nil {
				if errors.Is(err, ErrCounterReset) {
					skip("reset", &st.Resets, err)
				} else {
					skip("bad", &st.Bad, err)
				}
				continue
			}
			batch = append(batch, snap)
		}
		if len(batch) > 0 {
			if err := app.Append(batch...); err != nil {
				return st, fmt.Errorf("backfill %s: append %d snapshots: %w", s.uri, len(batch), err)
			}
			st.Appended += len(batch)
		}
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("backfill %s: %w", s.uri, err)
		}
	}
	switch {
	case st.Appended == 0 && st.Empty == st.Steps:
		return st, fmt.Errorf("backfill %s: %w: %s from %s to %s", s.uri, ErrEmptyResult, s.describe(), from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	case st.Appended == 0:
		return st, fmt.Errorf("backfill %s: no snapshot stored from %d steps (%d empty, %d stale, %d counter resets, %d incomplete)",
			s.uri, st.Steps, st.Empty, st.Stale, st.Resets, st.Bad)
	}
	return st, nil
}
