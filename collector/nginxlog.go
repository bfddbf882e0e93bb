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
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	openers["nginxlog+udp"] = openNginxLogUDP
	openers["nginxlog+file"] = openNginxLogFile
}

// NginxLogFormatName is the name lbtune gives its log_format in nginx.conf.
const NginxLogFormatName = "lbtune"

// NginxLogFormat is the NGINX log_format body lbtune's access-log source
// reads. Render it as
//
//	log_format lbtune '<NginxLogFormat>';
//	access_log syslog:server=127.0.0.1:PORT,tag=nginx,nohostname lbtune;
//
// Fields: msec is the log time (unix seconds with ms); pool is $proxy_host,
// the upstream group name of proxy_pass (the pool); status is the response
// to the client; rt the request time in seconds; bytes the bytes sent to the
// client; reqlen the request length. ua, us and urt are the upstream
// address, status and response time of each attempt, in order, separated
// by ", " (and " : " across internal redirects), "-" where absent. It starts
// with "lbtune=1" so a reader recognises the format and its version.
const NginxLogFormat = `lbtune=1 msec=$msec pool=$proxy_host status=$status rt=$request_time bytes=$bytes_sent reqlen=$request_length ua="$upstream_addr" us="$upstream_status" urt="$upstream_response_time"`

// logAttempt is one try of one upstream server for one request.
type logAttempt struct {
	addr   string
	status int     // 0 when the upstream gave none ("-")
	ms     float64 // upstream response time; < 0 when unknown
}

// logEntry is one parsed access-log line.
type logEntry struct {
	time     time.Time
	pool     string
	bytesIn  uint64 // request length
	bytesOut uint64 // bytes sent to the client
	attempts []logAttempt
}

// parseLogLine parses one access-log line in the lbtune format
// (NginxLogFormat), optionally behind a syslog header ("<190>Nov 28
// 09:00:15 nginx: "), or in the captures' "timing" format, whose pool is
// "default".
func parseLogLine(line string) (logEntry, error) {
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "<") {
		_, msg, ok := strings.Cut(line, ": ")
		if !ok {
			return logEntry{}, fmt.Errorf("%w: syslog line without a message", ErrMalformed)
		}
		line = msg
	}
	if strings.HasPrefix(line, "lbtune=1 ") {
		return parseLbtuneLine(line)
	}
	return parseTimingLine(line)
}

// keyValues splits `k=v k="v w"` into a map. Values in quotes may hold
// spaces; NGINX escapes a quote inside a variable as \x22.
func keyValues(s string) (map[string]string, error) {
	kv := make(map[string]string, 12)
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return kv, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.IndexByte(s[:eq], ' ') >= 0 {
			return nil, fmt.Errorf("%w: expected key=value at %q", ErrMalformed, clip(s))
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated quote after %s=", ErrMalformed, key)
			}
			val, s = s[1:1+end], s[2+end:]
		} else {
			sp := strings.IndexByte(s, ' ')
			if sp < 0 {
				sp = len(s)
			}
			val, s = s[:sp], s[sp:]
		}
		kv[key] = val
	}
}

func parseLbtuneLine(line string) (logEntry, error) {
	kv, err := keyValues(line)
	if err != nil {
		return logEntry{}, err
	}
	var e logEntry
	if e.time, err = parseMsec(kv["msec"]); err != nil {
		return logEntry{}, err
	}
	e.pool = kv["pool"]
	if e.pool == "" {
		return logEntry{}, fmt.Errorf("%w: no pool", ErrMalformed)
	}
	if _, err := strconv.Atoi(kv["status"]); err != nil {
		return logEntry{}, fmt.Errorf("%w: status %q", ErrMalformed, kv["status"])
	}
	if e.bytesOut, err = dashUint(kv["bytes"]); err != nil {
		return logEntry{}, fmt.Errorf("%w: bytes %q", ErrMalformed, kv["bytes"])
	}
	if e.bytesIn, err = dashUint(kv["reqlen"]); err != nil {
		return logEntry{}, fmt.Errorf("%w: reqlen %q", ErrMalformed, kv["reqlen"])
	}
	if e.attempts, err = logAttempts(kv["ua"], kv["us"], kv["urt"]); err != nil {
		return logEntry{}, err
	}
	return e, nil
}

// timingLayout is $time_local.
const timingLayout = "02/Jan/2006:15:04:05 -0700"

// parseTimingLine parses the captures' format:
// `$remote_addr - [$time_local] "$request" $status $body_bytes_sent host=...
// rt=... us="..." ua="..." urt="..." ...`.
func parseTimingLine(line string) (logEntry, error) {
	open := strings.IndexByte(line, '[')
	closeIdx := strings.IndexByte(line, ']')
	if open < 0 || closeIdx < open {
		return logEntry{}, fmt.Errorf("%w: not an lbtune or timing log line: %q", ErrMalformed, clip(line))
	}
	t, err := time.Parse(timingLayout, line[open+1:closeIdx])
	if err != nil {
		return logEntry{}, fmt.Errorf("%w: time: %v", ErrMalformed, err)
	}
	rest := strings.TrimLeft(line[closeIdx+1:], " ")
	if !strings.HasPrefix(rest, `"`) {
		return logEntry{}, fmt.Errorf("%w: no quoted request", ErrMalformed)
	}
	end := strings.IndexByte(rest[1:], '"')
	if end < 0 {
		return logEntry{}, fmt.Errorf("%w: unterminated request", ErrMalformed)
	}
	fields := strings.SplitN(strings.TrimLeft(rest[end+2:], " "), " ", 3)
	if len(fields) < 3 {
		return logEntry{}, fmt.Errorf("%w: no status and bytes after the request", ErrMalformed)
	}
	if _, err := strconv.Atoi(fields[0]); err != nil {
		return logEntry{}, fmt.Errorf("%w: status %q", ErrMalformed, fields[0])
	}
	e := logEntry{time: t.UTC(), pool: "default"}
	if e.bytesOut, err = dashUint(fields[1]); err != nil {
		return logEntry{}, fmt.Errorf("%w: bytes %q", ErrMalformed, fields[1])
	}
	kv, err := keyValues(fields[2])
	if err != nil {
		return logEntry{}, err
	}
	if e.attempts, err = logAttempts(kv["ua"], kv["us"], kv["urt"]); err != nil {
		return logEntry{}, err
	}
	return e, nil
}

// logAttempts zips $upstream_addr, $upstream_status and
// $upstream_response_time. Attempts whose address is "-" or is not an
// address (the group name NGINX logs for "no live upstreams") are dropped:
// no server was tried.
func logAttempts(ua, us, urt string) ([]logAttempt, error) {
	addrs, stats, times := splitUpstream(ua), splitUpstream(us), splitUpstream(urt)
	var out []logAttempt
	for i, a := range addrs {
		if a == "-" || a == "" || !strings.Contains(a, ":") {
			continue
		}
		at := logAttempt{addr: a, ms: -1}
		if i < len(stats) && stats[i] != "-" {
			n, err := strconv.Atoi(stats[i])
			if err != nil || n < 0 || n > 999 {
				return nil, fmt.Errorf("%w: upstream status %q", ErrMalformed, stats[i])
			}
			at.status = n
		}
		if i < len(times) && times[i] != "-" {
			v, err := strconv.ParseFloat(times[i], 64)
			if err != nil || bad(v) || v > 1e6 {
				return nil, fmt.Errorf("%w: upstream response time %q", ErrMalformed, times[i])
			}
			at.ms = v * 1000
		}
		out = append(out, at)
	}
	return out, nil
}

func splitUpstream(s string) []string {
	if s == "" {
		return nil
	}
	s = strings.ReplaceAll(s, " : ", ", ")
	return strings.Split(s, ", ")
}

func parseMsec(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n <= 0 || n > 1<<40 {
		return time.Time{}, fmt.Errorf("%w: msec %q", ErrMalformed, s)
	}
	var ms int64
	if frac != "" {
		if len(frac) > 3 {
			frac = frac[:3]
		}
		for len(frac) < 3 {
			frac += "0"
		}
		if ms, err = strconv.ParseInt(frac, 10, 64); err != nil || ms < 0 {
			return time.Time{}, fmt.Errorf("%w: msec %q", ErrMalformed, s)
		}
	}
	return time.UnixMilli(n*1000 + ms).UTC(), nil
}

func dashUint(s string) (uint64, error) {
	if s == "-" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// logAggregator folds access-log entries into cumulative per-server
// counters (so Rate works across scrapes) and the upstream response times
// of the current window (since the previous snapshot) for percentiles.
type logAggregator struct {
	mu      sync.Mutex
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
	window []float64 // upstream response times (ms) in this window
}

func newLogAggregator() *logAggregator {
	return &logAggregator{pools: map[string]map[string]*logServer{}}
}

// addLine parses and aggregates one line; malformed lines are counted.
func (a *logAggregator) addLine(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	e, err := parseLogLine(line)
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
		return nil // served without an upstream (return, cache hit): no server to count
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
			s.c.Errors++ // no HTTP status from the upstream
		}
		if at.ms >= 0 {
			s.c.LatencySumMs += uint64(math.Round(at.ms))
			s.window = append(s.window, at.ms)
		}
		if i == len(e.attempts)-1 { // the attempt that served the response
			s.c.BytesIn += e.bytesIn
			s.c.BytesOut += e.bytesOut
		}
	}
	return nil
}

// snapshot returns the state at time at and starts a new window. It fails
// when the window held only malformed lines.
func (a *logAggregator) snapshot(source string, at time.Time) (Snapshot, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	good, badN, lastBad := a.good, a.bad, a.lastBad
	a.good, a.bad, a.lastBad = 0, 0, nil
	if badN > 0 && good == 0 {
		return Snapshot{}, fmt.Errorf("parse nginx log from %s: %d malformed lines and no good one, last: %w", source, badN, lastBad)
	}
	snap := Snapshot{Time: at.UTC(), Source: source, Pools: make([]Pool, 0, len(a.pools))}
	for name, servers := range a.pools {
		p := Pool{Name: name, Servers: make([]Server, 0, len(servers))}
		for addr, s := range servers {
			sv := Server{Name: addr, Address: addr, State: StateUp, Counters: s.c}
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
			}
			s.window = s.window[:0]
			p.Servers = append(p.Servers, sv)
		}
		sortServers(p.Servers)
		snap.Pools = append(snap.Pools, p)
	}
	sortPools(snap.Pools)
	if err := snap.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("parse nginx log from %s: %w", source, err)
	}
	return snap, nil
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

// ParseNginxLog parses a whole access log (lbtune or timing format, one
// line per request) into one Snapshot at time at: cumulative per-server
// counters over every line and percentiles over all of them. Unlike the
// streaming sources, any malformed line is an error.
func ParseNginxLog(data []byte, source string, at time.Time) (Snapshot, error) {
	if at.IsZero() {
		return Snapshot{}, fmt.Errorf("parse nginx log from %s: no time given", source)
	}
	agg := newLogAggregator()
	for n, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, err := parseLogLine(line)
		if err != nil {
			return Snapshot{}, fmt.Errorf("parse nginx log from %s: line %d: %w", source, n+1, err)
		}
		if err := agg.addLocked(e); err != nil {
			return Snapshot{}, fmt.Errorf("parse nginx log from %s: line %d: %w", source, n+1, err)
		}
	}
	return agg.snapshot(source, at)
}

// nginxLogUDP receives NGINX access-log lines as syslog datagrams.
//
// Choice on empty windows: the source listens from Open, so a Scrape when
// nothing arrived is a real observation ("no request was logged"): it
// returns the servers seen so far with unchanged counters (no pools before
// the first line), never an invented rate.
type nginxLogUDP struct {
	uri  string
	conn *net.UDPConn
	agg  *logAggregator
	now  func() time.Time
	done chan struct{}
}

func openNginxLogUDP(uri string) (Source, error) {
	hostport := strings.TrimPrefix(uri, "nginxlog+udp://")
	addr, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(4 << 20)
	s := &nginxLogUDP{uri: uri, conn: conn, agg: newLogAggregator(), now: time.Now, done: make(chan struct{})}
	go s.receive()
	return s, nil
}

func (s *nginxLogUDP) receive() {
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

func (s *nginxLogUDP) String() string { return s.uri }

// Addr is the UDP address the source listens on (useful with port 0).
func (s *nginxLogUDP) Addr() string { return s.conn.LocalAddr().String() }

// Scrape returns the cumulative counters and this window's percentiles.
func (s *nginxLogUDP) Scrape(ctx context.Context) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	return s.agg.snapshot(s.uri, s.now())
}

// Close stops listening.
func (s *nginxLogUDP) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// maxLogLine bounds the unfinished last line a tailing source keeps.
const maxLogLine = 64 << 10

// nginxLogFile tails an access-log file from where it ended at Open
// (following a truncation back to the start), or, with ?replay=DURATION,
// replays the whole file in windows of DURATION of log time.
type nginxLogFile struct {
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

func openNginxLogFile(uri string) (Source, error) {
	rest := strings.TrimPrefix(uri, "nginxlog+file:")
	path, query, _ := strings.Cut(rest, "?")
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return nil, errors.New("want nginxlog+file:///path/to/access.log")
	}
	s := &nginxLogFile{uri: uri, path: path, agg: newLogAggregator(), now: time.Now}
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
	return s, nil
}

// load reads the whole file for replay, ordered by log time.
func (s *nginxLogFile) load() error {
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
		e, err := parseLogLine(line)
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
	return nil
}

func (s *nginxLogFile) String() string { return s.uri }

// Scrape reads what was appended since the last Scrape (tail mode), or
// returns the next non-empty window of the log (replay mode; ErrExhausted
// after the last, the snapshot time is the window's end).
func (s *nginxLogFile) Scrape(ctx context.Context) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.window > 0 {
		return s.replayNext()
	}
	if err := s.readNew(); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	return s.agg.snapshot(s.uri, s.now())
}

func (s *nginxLogFile) replayNext() (Snapshot, error) {
	if s.next >= len(s.entries) {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, ErrExhausted)
	}
	// Windows are aligned to the first entry's time.
	start := s.entries[0].time
	k := s.entries[s.next].time.Sub(start) / s.window
	end := start.Add((k + 1) * s.window)
	s.agg.mu.Lock()
	for s.next < len(s.entries) && s.entries[s.next].time.Before(end) {
		if err := s.agg.addLocked(s.entries[s.next]); err != nil {
			s.agg.bad++
			s.agg.lastBad = err
		}
		s.next++
	}
	s.agg.mu.Unlock()
	return s.agg.snapshot(s.uri, end)
}

// readNew aggregates the complete lines appended since the last read.
func (s *nginxLogFile) readNew() error {
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
	for _, line := range strings.Split(string(data[:last]), "\n") {
		s.agg.addLine(line)
	}
	return nil
}
