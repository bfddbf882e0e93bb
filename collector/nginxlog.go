package collector

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

func init() {
	openers["nginxlog+udp"] = func(uri string) (Source, error) { return openLogUDP(nginxLog, uri) }
	openers["nginxlog+file"] = func(uri string) (Source, error) { return openLogFile(nginxLog, uri) }
}

// nginxLog is the NGINX access log: NginxLogFormat or the captures' timing
// format. Per server, the response time is $upstream_response_time of each
// attempt.
var nginxLog = &logFormat{name: "nginx", scheme: "nginxlog", parse: parseLogLine}

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
			if err != nil || bad(v) || v*1000 > MaxLatencyMs {
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

// ParseNginxLog parses a whole access log (lbtune or timing format, one
// line per request) into one Snapshot at time at: cumulative per-server
// counters over every line and percentiles over all of them. Unlike the
// streaming sources, any malformed line is an error.
func ParseNginxLog(data []byte, source string, at time.Time) (Snapshot, error) {
	return parseLog(nginxLog, data, source, at)
}
