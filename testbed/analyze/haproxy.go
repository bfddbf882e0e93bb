package analyze

import "github.com/lbtune/lbtune/collector"

// haproxyKind classifies an HAProxy log entry's outcome: "" for success,
// else one of loadgen's failure kinds (http_5xx, http_4xx, timeout,
// connection_error, connection_reset) or "client_abort". The line itself
// is parsed by collector.ParseHAProxyLogLine, the one HAProxy log parser.
func haproxyKind(e collector.HAProxyLogEntry) string {
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
