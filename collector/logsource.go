package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// This file holds what the access-log sources (nginxlog+, haproxylog+)
// share: a logFormat names a balancer's log and parses one line of it into
// a logEntry; the aggregator folds entries into cumulative counters and
// per-window percentiles; the UDP (syslog) and file sources feed it.

// logFormat is one balancer's request log.
type logFormat struct {
	// name is the balancer, in errors ("nginx", "haproxy").
	name string
	// scheme is the URI scheme prefix without the transport ("nginxlog").
	scheme string
	// parse parses one line; it returns errSkipLine for a line that is not
	// a request (start-up and health notices, the stats page), which is
	// neither counted nor an error.
	parse func(line string) (logEntry, error)
}

// errSkipLine marks a log line that is not a request.
var errSkipLine = errors.New("not a request line")

// logAttempt is one try of one upstream server for one request.
type logAttempt struct {
	// addr names the server: its address (NGINX) or its name (HAProxy).
	addr   string
	status int     // HTTP status the server answered; 0 when it gave none
	ms     float64 // response time; < 0 when unknown
}

// logEntry is one parsed request line.
type logEntry struct {
	time     time.Time
	pool     string
	bytesIn  uint64 // request length
	bytesOut uint64 // bytes sent to the client
	attempts []logAttempt
	// receiveMs and queueMs are the parts of the last attempt's ms before
	// the server had the request: receiving it from the client and waiting
	// in the balancer's queue (HAProxy TR and Tw); 0 where the attempt's
	// time is the server's alone (NGINX's upstream times).
	receiveMs, queueMs float64
}

// logAggregator folds log entries into cumulative per-server counters (so
// Rate works across scrapes) and the response times of the current window
// (since the previous snapshot) for percentiles.
type logAggregator struct {
	format *logFormat
	mu     sync.Mutex
	// since is when the current window began: the previous snapshot's time,
	// or when the source began to listen; zero for a whole log read at once,
	// which has no window.
	since   time.Time
	pools   map[string]map[string]*logServer
	servers int   // servers known, across pools
	good    int   // lines aggregated in this window
	bad     int   // malformed lines in this window
	lastBad error // the last malformed line's error
}

// maxLogServers bounds the servers a log source tracks, so stray or
// hostile datagrams cannot grow its memory without limit.
const maxLogServers = 10000

// errTooManyServers is the error of a line naming a server past maxLogServers.
var errTooManyServers = fmt.Errorf("%w: more than %d upstream servers in the log", ErrMalformed, maxLogServers)

type logServer struct {
	c      Counters
	window []float64 // response times (ms) in this window
	// spent holds, per request of this window, the time the server had it
	// and the time it waited in the balancer's queue (ms).
	spent [][2]float64
}

func newLogAggregator(f *logFormat) *logAggregator {
	return &logAggregator{format: f, pools: map[string]map[string]*logServer{}}
}

// addLine parses and aggregates one line; malformed lines are counted,
// lines that are not requests are ignored.
func (a *logAggregator) addLine(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	e, err := a.format.parse(line)
	if errors.Is(err, errSkipLine) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		err = a.addLocked(e)
	}
	if err != nil {
		a.bad++
		a.lastBad = err
	}
}

// addLocked aggregates one entry; a.mu must be held. It refuses an entry
// that would track more than maxLogServers servers.
func (a *logAggregator) addLocked(e logEntry) error {
	if len(e.attempts) == 0 {
		a.good++
		return nil // served without a server (return, cache hit, no server left): no server to count
	}
	servers := a.pools[e.pool]
	for _, at := range e.attempts {
		if servers[at.addr] == nil && a.servers >= maxLogServers {
			return errTooManyServers
		}
	}
	a.good++
	if servers == nil {
		servers = map[string]*logServer{}
		a.pools[e.pool] = servers
	}
	for i, at := range e.attempts {
		s := servers[at.addr]
		if s == nil {
			s = &logServer{}
			servers[at.addr] = s
			a.servers++
		}
		s.c.Requests++
		if k := at.status/100 - 1; k >= 0 && k < 5 {
			s.c.Responses[k]++
		} else {
			s.c.Errors++ // no HTTP status from the server
		}
		if at.ms >= 0 {
			s.c.LatencySumMs += uint64(math.Round(at.ms))
			s.window = append(s.window, at.ms)
		}
		if i == len(e.attempts)-1 { // the attempt that served the response
			s.c.BytesIn += e.bytesIn
			s.c.BytesOut += e.bytesOut
			if at.ms >= 0 {
				s.spent = append(s.spent, [2]float64{max(at.ms-e.receiveMs-e.queueMs, 0), min(e.queueMs, at.ms)})
			}
		} else if at.ms >= 0 {
			s.spent = append(s.spent, [2]float64{at.ms, 0})
		}
	}
	return nil
}

// snapshot returns the state at time at and starts a new window. Each
// server with a response time in the window gets its mean and nearest-rank
// p50/p95/p99 over them, each pool the percentiles over all its servers'
// response times in the window. A log has no gauges: when the window has a
// start (a.since), each server's Active and Queue are their means over the
// window by Little's law (InFlight) from the time its requests spent with
// it and in the balancer's queue. It fails when the window held only
// malformed lines.
func (a *logAggregator) snapshot(source string, at time.Time) (Snapshot, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	good, badN, lastBad := a.good, a.bad, a.lastBad
	a.good, a.bad, a.lastBad = 0, 0, nil
	if badN > 0 && good == 0 {
		return Snapshot{}, fmt.Errorf("parse %s log from %s: %d malformed lines and no good one, last: %w", a.format.name, source, badN, lastBad)
	}
	var window time.Duration
	if !a.since.IsZero() && at.After(a.since) {
		window = at.Sub(a.since)
		a.since = at
	}
	snap := Snapshot{Time: at.UTC(), Source: source, Pools: make([]Pool, 0, len(a.pools))}
	var all []float64
	for name, servers := range a.pools {
		p := Pool{Name: name, Servers: make([]Server, 0, len(servers))}
		all = all[:0]
		for addr, s := range servers {
			sv := Server{Name: addr, Address: addr, State: StateUp, Counters: s.c}
			if window > 0 {
				sv.Gauges.Active, sv.Gauges.Queue = windowInFlight(s.spent, window)
			}
			s.spent = s.spent[:0]
			if n := len(s.window); n > 0 {
				sort.Float64s(s.window)
				var sum float64
				for _, v := range s.window {
					sum += v
				}
				sv.Gauges.AvgResponseMs = sum / float64(n)
				sv.Gauges.P50Ms = ptr(percentile(s.window, 0.50))
				sv.Gauges.P95Ms = ptr(percentile(s.window, 0.95))
				sv.Gauges.P99Ms = ptr(percentile(s.window, 0.99))
				all = append(all, s.window...)
			}
			s.window = s.window[:0]
			p.Servers = append(p.Servers, sv)
		}
		if len(all) > 0 {
			sort.Float64s(all)
			p.P50Ms = ptr(percentile(all, 0.50))
			p.P95Ms = ptr(percentile(all, 0.95))
			p.P99Ms = ptr(percentile(all, 0.99))
		}
		sortServers(p.Servers)
		snap.Pools = append(snap.Pools, p)
	}
	sortPools(snap.Pools)
	if err := snap.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("parse %s log from %s: %w", a.format.name, source, err)
	}
	return snap, nil
}

// windowInFlight is the mean number of requests with the server and in the
// balancer's queue over a window of length window, from the time each
// request logged in it spent in either (spent). A request counts at most
// the window's length, the most of it that can lie in the window: one that
// ran for a minute and ended in a 5 s window was in flight for at most those
// 5 s of it, so one long request cannot make a burst of the window.
func windowInFlight(spent [][2]float64, window time.Duration) (active, queue float64) {
	w := float64(window) / float64(time.Millisecond)
	var busy, queued float64
	for _, sp := range spent {
		b, q := sp[0], sp[1]
		if t := b + q; t > w {
			b, q = b*w/t, q*w/t
		}
		busy += b
		queued += q
	}
	return InFlight(busy, window), InFlight(queued, window)
}

func ptr(v float64) *float64 { return &v }

// percentile is the nearest-rank q-quantile of sorted, non-empty xs.
func percentile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

// parseLog parses a whole log (one line per request) into one Snapshot at
// time at: cumulative per-server counters over every line and percentiles
// over all of them. Unlike the streaming sources, any malformed line is an
// error; lines that are not requests are skipped.
func parseLog(f *logFormat, data []byte, source string, at time.Time) (Snapshot, error) {
	if at.IsZero() {
		return Snapshot{}, fmt.Errorf("parse %s log from %s: no time given", f.name, source)
	}
	agg := newLogAggregator(f)
	for n, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, err := f.parse(line)
		if errors.Is(err, errSkipLine) {
			continue
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("parse %s log from %s: line %d: %w", f.name, source, n+1, err)
		}
		if err := agg.addLocked(e); err != nil {
			return Snapshot{}, fmt.Errorf("parse %s log from %s: line %d: %w", f.name, source, n+1, err)
		}
	}
	return agg.snapshot(source, at)
}

// logUDP receives log lines as syslog datagrams (NGINX access_log
// syslog:server=, HAProxy log 127.0.0.1:PORT).
//
// Choice on empty windows: the source listens from Open, so a Scrape when
// nothing arrived is a real observation ("no request was logged"): it
// returns the servers seen so far with unchanged counters (no pools before
// the first line), never an invented rate.
type logUDP struct {
	uri  string
	conn *net.UDPConn
	agg  *logAggregator
	now  func() time.Time
	done chan struct{}
}

// openLogUDP listens on the host:port after SCHEME+udp://.
func openLogUDP(f *logFormat, uri string) (Source, error) {
	hostport := strings.TrimPrefix(uri, f.scheme+"+udp://")
	addr, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(4 << 20)
	s := &logUDP{uri: uri, conn: conn, agg: newLogAggregator(f), now: time.Now, done: make(chan struct{})}
	s.agg.since = s.now()
	go s.receive()
	return s, nil
}

func (s *logUDP) receive() {
	defer close(s.done)
	buf := make([]byte, 64<<10)
	for {
		n, _, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // a persistent error must not spin
			continue
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			s.agg.addLine(line)
		}
	}
}

func (s *logUDP) String() string { return s.uri }

// ServerStatesUnknown marks a request log: it sees requests, not servers'
// states, and lists every server it has seen as up.
func (s *logUDP) ServerStatesUnknown() {}

// Addr is the UDP address the source listens on (useful with port 0).
func (s *logUDP) Addr() string { return s.conn.LocalAddr().String() }

// Scrape returns the cumulative counters and this window's percentiles.
func (s *logUDP) Scrape(ctx context.Context) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	return s.agg.snapshot(s.uri, s.now())
}

// Close stops listening.
func (s *logUDP) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// maxLogLine bounds the unfinished last line a tailing source keeps.
const maxLogLine = 64 << 10

// logFile tails a log file from where it ended at Open (following a
// truncation back to the start), or, with ?replay=DURATION, replays the
// whole file in windows of DURATION of log time.
type logFile struct {
	uri  string
	path string
	agg  *logAggregator
	now  func() time.Time

	mu      sync.Mutex
	offset  int64
	partial []byte

	// replay mode
	window  time.Duration
	entries []logEntry
	next    int
}

// openLogFile opens SCHEME+file:///path[?replay=DURATION].
func openLogFile(f *logFormat, uri string) (Source, error) {
	rest := strings.TrimPrefix(uri, f.scheme+"+file:")
	path, query, _ := strings.Cut(rest, "?")
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return nil, fmt.Errorf("want %s+file:///path/to/log", f.scheme)
	}
	s := &logFile{uri: uri, path: path, agg: newLogAggregator(f), now: time.Now}
	if query != "" {
		k, v, _ := strings.Cut(query, "=")
		if k != "replay" {
			return nil, fmt.Errorf("unknown parameter %q (want replay=DURATION)", k)
		}
		w, err := time.ParseDuration(v)
		if err != nil || w <= 0 {
			return nil, fmt.Errorf("replay=%q: want a positive duration", v)
		}
		s.window = w
		return s, s.load()
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	s.offset = fi.Size()
	s.agg.since = s.now()
	return s, nil
}

// load reads the whole file for replay, ordered by log time.
func (s *logFile) load() error {
	data, err := readLimited(s.path)
	if err != nil {
		return err
	}
	var bad int
	var lastBad error
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, err := s.agg.format.parse(line)
		if errors.Is(err, errSkipLine) {
			continue
		}
		if err != nil {
			bad, lastBad = bad+1, err
			continue
		}
		s.entries = append(s.entries, e)
	}
	if len(s.entries) == 0 {
		if bad > 0 {
			return fmt.Errorf("%s: %d malformed lines and no good one, last: %w", s.path, bad, lastBad)
		}
		return fmt.Errorf("%s: no log lines", s.path)
	}
	sort.SliceStable(s.entries, func(i, j int) bool { return s.entries[i].time.Before(s.entries[j].time) })
	s.agg.since = s.entries[0].time // where the windows are aligned
	return nil
}

func (s *logFile) String() string { return s.uri }

// ServerStatesUnknown marks a request log (see logUDP's).
func (s *logFile) ServerStatesUnknown() {}

// Scrape reads what was appended since the last Scrape (tail mode), or
// returns the next non-empty window of the log (replay mode; ErrExhausted
// after the last, the snapshot time is the window's end).
func (s *logFile) Scrape(ctx context.Context) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.window > 0 {
		return s.replayNext(ctx)
	}
	if err := s.readNew(ctx); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	return s.agg.snapshot(s.uri, s.now())
}

// replayNext aggregates the next window. When ctx is done part way, the
// entries aggregated so far stay aggregated and the next call finishes the
// same window.
func (s *logFile) replayNext(ctx context.Context) (Snapshot, error) {
	if s.next >= len(s.entries) {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, ErrExhausted)
	}
	// Windows are aligned to the first entry's time.
	start := s.entries[0].time
	k := s.entries[s.next].time.Sub(start) / s.window
	end := start.Add((k + 1) * s.window)
	s.agg.mu.Lock()
	for n := 1; s.next < len(s.entries) && s.entries[s.next].time.Before(end); n++ {
		if n%ctxCheckSteps == 0 {
			if err := ctx.Err(); err != nil {
				s.agg.mu.Unlock()
				return Snapshot{}, fmt.Errorf("scrape %s: stopped in the window ending %s: %w", s.uri, end.Format(time.RFC3339Nano), err)
			}
		}
		if err := s.agg.addLocked(s.entries[s.next]); err != nil {
			s.agg.bad++
			s.agg.lastBad = err
		}
		s.next++
	}
	s.agg.mu.Unlock()
	return s.agg.snapshot(s.uri, end)
}

// readNew aggregates the complete lines appended since the last read, at
// most maxDocument bytes of them. When ctx is done part way, the lines read
// so far stay aggregated and the next call starts at the first line not
// read.
func (s *logFile) readNew(ctx context.Context) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < s.offset { // truncated (copytruncate rotation): start over
		s.offset, s.partial = 0, nil
	}
	if fi.Size() == s.offset {
		return nil
	}
	if _, err := f.Seek(s.offset, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDocument))
	if err != nil {
		return err
	}
	base := s.offset - int64(len(s.partial)) // the file offset of data[0] below
	s.offset += int64(len(data))
	data = append(s.partial, data...)
	last := bytes.LastIndexByte(data, '\n')
	if last < 0 {
		if len(data) > maxLogLine {
			// No newline in a whole line's worth: not a log we can read.
			s.partial = nil
			s.agg.addLine(clip(string(data)))
			return nil
		}
		s.partial = data
		return nil
	}
	s.partial = append([]byte(nil), data[last+1:]...)
	text := string(data[:last+1]) // complete lines, each with its '\n'
	for n, rest := 1, text; rest != ""; n++ {
		if n%ctxCheckSteps == 0 {
			if err := ctx.Err(); err != nil {
				s.offset, s.partial = base+int64(len(text)-len(rest)), nil
				return fmt.Errorf("stopped after %d of %d new bytes: %w", len(text)-len(rest), len(data), err)
			}
		}
		line, after, _ := strings.Cut(rest, "\n")
		s.agg.addLine(line)
		rest = after
	}
	return nil
}
