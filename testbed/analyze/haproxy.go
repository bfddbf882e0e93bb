package analyze

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HAProxyEntry is one request line of an HAProxy HTTP log (option httplog):
//
//	client:port [date] frontend backend/server TR/Tw/Tc/Tr/Ta status bytes
//	reqcookie respcookie termstate act/fe/be/srv/retries srvq/beq "request"
//
// optionally behind a syslog prefix. Timers are in ms; -1 means the phase
// never completed (for example Tc -1: the connection to the server failed).
type HAProxyEntry struct {
	Time     time.Time
	Frontend string
	Backend  string
	Server   string
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

// ErrNotRequest is returned by ParseHAProxyLine for lines that are not
// request logs (start-up and server-state messages).
var ErrNotRequest = errors.New("not an HAProxy request log line")

// ParseHAProxyLine parses one log line.
func ParseHAProxyLine(line string) (HAProxyEntry, error) {
	// Find the accept date "[28/Nov/2026:09:01:35.592]": the client is just
	// before it, whatever syslog prefix precedes.
	open := strings.Index(line, " [")
	if open < 0 {
		return HAProxyEntry{}, ErrNotRequest
	}
	close := strings.IndexByte(line[open:], ']')
	if close < 0 {
		return HAProxyEntry{}, ErrNotRequest
	}
	close += open
	ts, err := time.Parse("02/Jan/2006:15:04:05.000", line[open+2:close])
	if err != nil {
		return HAProxyEntry{}, ErrNotRequest
	}
	client := line[strings.LastIndexByte(line[:open], ' ')+1 : open]
	if !strings.Contains(client, ":") {
		return HAProxyEntry{}, ErrNotRequest
	}
	rest := line[close+1:]
	var req string
	if q := strings.IndexByte(rest, '"'); q >= 0 {
		req = strings.Trim(rest[q:], `"`)
		rest = rest[:q]
	}
	f := strings.Fields(rest)
	if len(f) < 8 {
		return HAProxyEntry{}, fmt.Errorf("%d fields after the date, want at least 8: %w", len(f), ErrNotRequest)
	}
	e := HAProxyEntry{Time: ts, Frontend: strings.TrimSuffix(f[0], "~"), Termination: f[7], Request: req}
	var ok bool
	if e.Backend, e.Server, ok = strings.Cut(f[1], "/"); !ok {
		return HAProxyEntry{}, fmt.Errorf("backend/server %q: %w", f[1], ErrNotRequest)
	}
	timers := strings.Split(f[2], "/")
	if len(timers) != 5 {
		return HAProxyEntry{}, fmt.Errorf("timers %q: want TR/Tw/Tc/Tr/Ta", f[2])
	}
	dst := []*int{&e.TR, &e.Tw, &e.Tc, &e.Tr, &e.Ta}
	for i, s := range timers {
		v, err := strconv.Atoi(strings.TrimPrefix(s, "+"))
		if err != nil || v < -1 {
			return HAProxyEntry{}, fmt.Errorf("timers %q: bad value %q", f[2], s)
		}
		*dst[i] = v
	}
	if e.Status, err = strconv.Atoi(f[3]); err != nil || e.Status < -1 || e.Status > 999 {
		return HAProxyEntry{}, fmt.Errorf("status %q: not an HTTP status", f[3])
	}
	if e.Bytes, err = strconv.ParseInt(strings.TrimPrefix(f[4], "+"), 10, 64); err != nil || e.Bytes < 0 {
		return HAProxyEntry{}, fmt.Errorf("bytes %q: not a size", f[4])
	}
	return e, nil
}

// Kind classifies the entry's outcome: "" for success, else one of
// loadgen's failure kinds (http_5xx, http_4xx, timeout, connection_error,
// connection_reset) or "client_abort".
func (e HAProxyEntry) Kind() string {
	t := e.Termination
	first := byte('-')
	if len(t) > 0 {
		first = t[0]
	}
	switch {
	case first == 'c' || first == 's':
		return "timeout"
	case first == 'S' && len(t) > 1 && t[1] == 'C', e.Tc == -1 && e.Server != "<NOSRV>" && e.Status <= 0:
		return "connection_error"
	case first == 'S':
		return "connection_reset"
	case first == 'C':
		return "client_abort"
	case e.Status >= 500:
		return "http_5xx"
	case e.Status >= 400:
		return "http_4xx"
	case e.Status < 100:
		return "connection_error"
	}
	return ""
}
