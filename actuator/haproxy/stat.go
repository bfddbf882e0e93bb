package haproxy

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// Stat is the part of one `show stat` server row the actuator needs.
type Stat struct {
	Proxy  string // pxname: the backend's name
	Server string // svname: the server's name
	// Status is HAProxy's word for the server's state: "UP", "DOWN",
	// "DRAIN" or "MAINT" (HAProxy's "UP 1/3" and "no check" are "UP",
	// "NOLB" is "DRAIN", "MAINT (via ...)" is "MAINT").
	Status string
	// Weight is the server's effective weight.
	Weight int
	// Scur is the number of current sessions.
	Scur int
	// Addr is the server's address (its name when HAProxy gives none).
	Addr string
}

// Serving reports whether HAProxy sends new traffic to the server: up (a
// backup server counts) and not drained.
func (s Stat) Serving() bool {
	return s.Status == "UP"
}

// ErrBadStat marks `show stat` output that is not HAProxy's CSV.
var ErrBadStat = errors.New("malformed show stat output")

// statusWords maps the collector's states to HAProxy's status words.
var statusWords = map[collector.State]string{
	collector.StateUp:     "UP",
	collector.StateBackup: "UP",
	collector.StateDown:   "DOWN",
	collector.StateDrain:  "DRAIN",
	collector.StateMaint:  "MAINT",
}

// ParseStat parses `show stat` CSV output (also /stats;csv) into its server
// rows (no FRONTEND or BACKEND rows). The CSV is read by the collector's
// parser (collector.ParseHAProxyCSV), so the actuator and the collector
// agree on every column and state; its errors wrap ErrBadStat.
func ParseStat(r io.Reader) ([]Stat, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read show stat: %w", err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, fmt.Errorf("%w: empty output", ErrBadStat)
	}
	// The rows carry no clock and the actuator reads only state, so the
	// snapshot's time is a fixed stand-in.
	snap, err := collector.ParseHAProxyCSV(data, "show stat", time.Unix(0, 0))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadStat, err)
	}
	var out []Stat
	for _, p := range snap.Pools {
		for _, s := range p.Servers {
			out = append(out, Stat{
				Proxy:  p.Name,
				Server: s.Name,
				Status: statusWords[s.State],
				Weight: s.Weight,
				Scur:   int(s.Gauges.Active),
				Addr:   s.Address,
			})
		}
	}
	return out, nil
}

// ParseAlgorithms reads each backend's balancing algorithm from `show
// stat` CSV output: the algo column of the BACKEND rows (HAProxy 2.6 has
// it; "roundrobin", "static-rr", "leastconn", "source", ...), read by the
// collector's parser (collector.HAProxyAlgorithms), like ParseStat; output
// without the column, or not CSV, is an error wrapping ErrBadStat.
func ParseAlgorithms(r io.Reader) (map[string]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read show stat: %w", err)
	}
	algos, err := collector.HAProxyAlgorithms(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadStat, err)
	}
	return algos, nil
}
