package haproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Stat is the part of one `show stat` row the actuator needs.
type Stat struct {
	Proxy  string // pxname: frontend/backend name
	Server string // svname: server name, or FRONTEND / BACKEND
	// Status is e.g. "UP", "DOWN", "DRAIN", "MAINT", "UP 1/3", "no check".
	Status string
	// Weight is the effective weight (for a BACKEND row, the sum over usable servers).
	Weight int
	// Scur is the number of current sessions.
	Scur int
	// CheckStatus is the last health check's result, e.g. "L7OK", "L4CON".
	CheckStatus string
	// Addr is the server's address (empty for non-server rows).
	Addr string
}

// Serving reports whether HAProxy sends new traffic to the server: UP
// (including "UP 1/3" while a check confirms it) and not drained.
func (s Stat) Serving() bool {
	return strings.HasPrefix(s.Status, "UP") || s.Status == "no check"
}

// ErrBadStat marks `show stat` output that is not HAProxy's CSV.
var ErrBadStat = errors.New("malformed show stat output")

// ParseStat parses `show stat` CSV output (also /stats;csv): a header line
// "# pxname,svname,..." naming the columns, then one row per proxy/server.
// Columns are found by name, so extra or reordered columns are fine.
func ParseStat(r io.Reader) ([]Stat, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	var col map[string]int
	var out []Stat
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		if col == nil {
			if !strings.HasPrefix(text, "# ") {
				return nil, fmt.Errorf("%w: line 1 is not a '# pxname,...' header", ErrBadStat)
			}
			col = map[string]int{}
			for i, name := range strings.Split(strings.TrimPrefix(text, "# "), ",") {
				col[name] = i
			}
			for _, need := range []string{"pxname", "svname", "scur", "status", "weight"} {
				if _, ok := col[need]; !ok {
					return nil, fmt.Errorf("%w: header has no %q column", ErrBadStat, need)
				}
			}
			continue
		}
		f := strings.Split(text, ",")
		get := func(name string) string {
			i, ok := col[name]
			if !ok || i >= len(f) {
				return ""
			}
			return f[i]
		}
		if len(f) <= col["weight"] || len(f) <= col["scur"] || len(f) <= col["status"] {
			return nil, fmt.Errorf("%w: line %d has %d fields", ErrBadStat, line, len(f))
		}
		s := Stat{Proxy: get("pxname"), Server: get("svname"), Status: get("status"),
			CheckStatus: get("check_status"), Addr: get("addr")}
		var err error
		if s.Scur, err = atoiEmpty(get("scur")); err != nil {
			return nil, fmt.Errorf("%w: line %d scur: %v", ErrBadStat, line, err)
		}
		if s.Weight, err = atoiEmpty(get("weight")); err != nil {
			return nil, fmt.Errorf("%w: line %d weight: %v", ErrBadStat, line, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read show stat: %w", err)
	}
	if col == nil {
		return nil, fmt.Errorf("%w: empty output", ErrBadStat)
	}
	return out, nil
}

// atoiEmpty parses a non-negative integer field; "" is 0.
func atoiEmpty(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("negative value %d", n)
	}
	return n, nil
}
