package collector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

func init() {
	openers["haproxylog+udp"] = func(uri string) (Source, error) { return openLogUDP(haproxyLog, uri) }
	openers["haproxylog+file"] = func(uri string) (Source, error) { return openLogFile(haproxyLog, uri) }
}

// haproxyLog is HAProxy's HTTP log (option httplog). Per request, the
// server is the one that answered (after retries and redispatch) and its
// response time is Ta, the request's total active time: from the first
// byte of the request to the last byte of the response, which is what the
// client waits for less the network (see docs/DESIGN.md).
var haproxyLog = &logFormat{name: "haproxy", scheme: "haproxylog", parse: parseHAProxyLogEntry}

// HAProxyLogEntry is one request line of an HAProxy HTTP log (option
// httplog, HAProxy 1.9 or later):
//
//	client:port [date] frontend backend/server TR/Tw/Tc/Tr/Ta status bytes
//	reqcookie respcookie termstate act/fe/be/srv/retries srvq/beq "request"
//
// optionally behind a syslog header. Timers are in ms, at most MaxLatencyMs;
// -1 means the phase never completed (for example Tc -1: the connection to
// the server failed).
type HAProxyLogEntry struct {
	// Time is the accept date as logged (HAProxy writes local time without
	// a zone; it is read as UTC).
	Time     time.Time
	Frontend string
	Backend  string
	// Server is the server that handled the request, or one of HAProxy's
	// own: <NOSRV> (none could be used), <STATS>, <CACHE>, <PROMEX>.
	Server string
	// TR is the time to receive the full request (Tq in older versions).
	TR int
	// Tw is the time spent waiting in queues.
	Tw int
	// Tc is the time to connect to the server.
	Tc int
	// Tr is the server's response time (headers): the service time.
	Tr int
	// Ta is the total active time of the request (Tt in older versions).
	Ta int
	// Status is the HTTP status (-1 when none was sent).
	Status int
	// Bytes is the response size.
	Bytes int64
	// Termination is the two to four character termination state ("----" when normal).
	Termination string
	Request     string
}

// ErrNotHAProxyRequest is returned by ParseHAProxyLogLine for lines that are
// not request logs (start-up and server-state messages).
var ErrNotHAProxyRequest = errors.New("not an HAProxy request log line")

// ParseHAProxyLogLine parses one HAProxy HTTP log line. A line that is not
// a request log is ErrNotHAProxyRequest; a request line with a malformed
// field is an ErrMalformed error naming it.
func ParseHAProxyLogLine(line string) (HAProxyLogEntry, error) {
	line = strings.TrimRight(line, "\r\n")
	// Find the accept date "[28/Nov/2026:09:01:35.592]": the client is just
	// before it, whatever syslog prefix precedes.
	open := strings.Index(line, " [")
	if open < 0 {
		return HAProxyLogEntry{}, ErrNotHAProxyRequest
	}
	end := strings.IndexByte(line[open:], ']')
	if end < 0 {
		return HAProxyLogEntry{}, ErrNotHAProxyRequest
	}
	end += open
	ts, err := time.Parse("02/Jan/2006:15:04:05.000", line[open+2:end])
	if err != nil {
		return HAProxyLogEntry{}, ErrNotHAProxyRequest
	}
	client := line[strings.LastIndexByte(line[:open], ' ')+1 : open]
	if !strings.Contains(client, ":") {
		return HAProxyLogEntry{}, ErrNotHAProxyRequest
	}
	rest := line[end+1:]
	var req string
	if q := strings.IndexByte(rest, '"'); q >= 0 {
		req = strings.Trim(rest[q:], `"`)
		rest = rest[:q]
	}
	f := strings.Fields(rest)
	if len(f) < 8 {
		return HAProxyLogEntry{}, fmt.Errorf("%d fields after the date, want at least 8: %w", len(f), ErrNotHAProxyRequest)
	}
	e := HAProxyLogEntry{Time: ts, Frontend: strings.TrimSuffix(f[0], "~"), Termination: f[7], Request: req}
	var ok bool
	if e.Backend, e.Server, ok = strings.Cut(f[1], "/"); !ok {
		return HAProxyLogEntry{}, fmt.Errorf("backend/server %q: %w", f[1], ErrNotHAProxyRequest)
	}
	if e.Backend == "" || e.Server == "" {
		return HAProxyLogEntry{}, fmt.Errorf("%w: empty backend or server in %q", ErrMalformed, f[1])
	}
	timers := strings.Split(f[2], "/")
	if len(timers) != 5 {
		return HAProxyLogEntry{}, fmt.Errorf("%w: timers %q: want TR/Tw/Tc/Tr/Ta", ErrMalformed, f[2])
	}
	dst := []*int{&e.TR, &e.Tw, &e.Tc, &e.Tr, &e.Ta}
	for i, s := range timers {
		v, err := strconv.Atoi(strings.TrimPrefix(s, "+"))
		if err != nil || v < -1 || v > MaxLatencyMs {
			return HAProxyLogEntry{}, fmt.Errorf("%w: timers %q: bad value %q", ErrMalformed, f[2], s)
		}
		*dst[i] = v
	}
	if e.Status, err = strconv.Atoi(f[3]); err != nil || e.Status < -1 || e.Status > 999 {
		return HAProxyLogEntry{}, fmt.Errorf("%w: status %q: not an HTTP status", ErrMalformed, f[3])
	}
	if e.Bytes, err = strconv.ParseInt(strings.TrimPrefix(f[4], "+"), 10, 64); err != nil || e.Bytes < 0 {
		return HAProxyLogEntry{}, fmt.Errorf("%w: bytes %q: not a size", ErrMalformed, f[4])
	}
	return e, nil
}

// ServerResponded reports whether the server sent response headers (Tr is
// known and the status is an HTTP one): otherwise the request failed before
// the server answered (connection error, server timeout, abort) and any
// status in the line was made by HAProxy.
func (e *HAProxyLogEntry) ServerResponded() bool {
	return e.Tr >= 0 && e.Status >= 100 && e.Status <= 599
}

// haproxyOwnServers are the "servers" HAProxy logs for requests it
// answered itself.
var haproxyOwnServers = map[string]bool{"<STATS>": true, "<CACHE>": true, "<PROMEX>": true}

// parseHAProxyLogEntry reads one line for the aggregator: one attempt on
// the server that handled the request (its HTTP status when it answered,
// else none: an error), timed by Ta. <NOSRV> lines count as requests
// without a server; HAProxy's own answers and non-request lines are
// skipped.
func parseHAProxyLogEntry(line string) (logEntry, error) {
	if strings.TrimSpace(line) == "" {
		return logEntry{}, errSkipLine
	}
	e, err := ParseHAProxyLogLine(line)
	if errors.Is(err, ErrNotHAProxyRequest) {
		return logEntry{}, errSkipLine
	}
	if err != nil {
		return logEntry{}, err
	}
	if haproxyOwnServers[e.Server] {
		return logEntry{}, errSkipLine
	}
	le := logEntry{time: e.Time, pool: e.Backend, bytesOut: uint64(e.Bytes)}
	if e.Server == "<NOSRV>" {
		return le, nil
	}
	at := logAttempt{addr: e.Server, ms: float64(e.Ta)}
	if e.ServerResponded() {
		at.status = e.Status
	}
	le.attempts = []logAttempt{at}
	// What of Ta the server did not have: receiving the request, and the
	// queue (all of the rest when the request never left it: Tw -1).
	le.receiveMs = float64(max(e.TR, 0))
	switch {
	case e.Tw >= 0:
		le.queueMs = float64(e.Tw)
	case e.Ta >= 0:
		le.queueMs = max(float64(e.Ta)-le.receiveMs, 0)
	}
	return le, nil
}

// ParseHAProxyLog parses a whole HAProxy HTTP log (one line per request;
// notices and HAProxy's own answers are skipped) into one Snapshot at time
// at: per backend, per server cumulative counters over every line, and the
// mean and p50/p95/p99 of Ta over all of them, per server and per pool.
// Unlike the streaming sources, any malformed request line is an error.
func ParseHAProxyLog(data []byte, source string, at time.Time) (Snapshot, error) {
	return parseLog(haproxyLog, data, source, at)
}
