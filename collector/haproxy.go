package collector

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func init() {
	openers["haproxy+unix"] = openHAProxyUnix
	openers["haproxy+http"] = openHAProxyHTTP
	openers["haproxy+https"] = openHAProxyHTTP
	openers["haproxy+file"] = openHAProxyFile
}

// haproxyColumns are the `show stat` columns ParseHAProxyCSV requires. addr
// is optional (older versions lack it; the server name stands in).
var haproxyColumns = [...]string{
	"pxname", "svname", "qcur", "scur", "stot", "bin", "bout", "econ", "eresp",
	"status", "weight", "bck", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "ttime",
}

// haproxyOptionalColumns are read when the header has them (every version
// since 1.5 does); a missing one reads as empty: 0 or "".
var haproxyOptionalColumns = [...]string{"qtime", "ctime", "rtime", "check_status", "mode"}

// ParseHAProxyCSV parses HAProxy statistics CSV (`show stat` on the stats
// socket, or GET /stats;csv) into a Snapshot labelled with source, taken at
// time at (the CSV carries no clock).
//
// Columns are found by the header line ("# pxname,svname,..."), so column
// order and additions between versions do not matter. FRONTEND rows are
// skipped; a BACKEND row gives its Pool's Queue (qcur); every other row is a
// server of the pool named by pxname. Backends with no server row (the
// stats listener) are left out. Per server: Requests is stot (every stream
// sent to the server, in HTTP and TCP mode; hrsp_* count only the ones that
// got a response), Errors is econ+eresp, Gauges.Active is scur, Queue qcur,
// QueueTimeMs, ConnectTimeMs, ResponseTimeMs, TotalTimeMs are qtime, ctime,
// rtime, ttime (HAProxy's averages over the server's last 1024 requests),
// and AvgResponseMs, the response time the rest of lbtune reads, is
// qtime + ctime + rtime: the time from the request's arrival to the
// server's response headers, closest to what clients measure (see
// docs/DESIGN.md). ttime is not used for it: it is the whole session and,
// on keep-alive connections, includes the idle time between requests. For a
// TCP-mode server (mode column "tcp", whose rtime is always 0) and for a
// CSV without an rtime column, AvgResponseMs is ttime. CheckStatus is check_status
// without the "* " HAProxy prefixes while a check is running ("" for a
// server without check).
// Status maps to State: "UP", "UP 1/3" (going down, still serving) and
// "no check" are up; "DOWN" and "DOWN 1/2" (coming up, not serving yet) are
// down; "DRAIN" and "NOLB" are drain; "MAINT..." is maint. A usable server
// with bck=1 is StateBackup.
//
// Refused as ErrMalformed, besides malformed CSV: a weight outside
// 0..MaxWeight and a counter above MaxCounter (see Snapshot.Validate). The
// parse is linear in the document's size; sources read at most 64 MiB of it.
func ParseHAProxyCSV(data []byte, source string, at time.Time) (Snapshot, error) {
	return parseHAProxyCSV(context.Background(), data, source, at)
}

// parseHAProxyCSV is ParseHAProxyCSV under ctx: a document still being
// parsed when ctx is done is abandoned with an error wrapping ctx.Err().
func parseHAProxyCSV(ctx context.Context, data []byte, source string, at time.Time) (Snapshot, error) {
	fail := func(format string, args ...any) (Snapshot, error) {
		return Snapshot{}, fmt.Errorf("parse haproxy csv from %s: %w: %s", source, ErrMalformed, fmt.Sprintf(format, args...))
	}
	if at.IsZero() {
		return fail("no time given")
	}
	r, ncol, col, err := haproxyHeader(data)
	if err != nil {
		return fail("%v", err)
	}
	idx := make([]int, len(haproxyColumns))
	for i, name := range haproxyColumns {
		c, ok := col[name]
		if !ok {
			return fail("header has no %q column", name)
		}
		idx[i] = c
	}
	addrCol, hasAddr := col["addr"]
	var opt [len(haproxyOptionalColumns)]int
	for i, name := range haproxyOptionalColumns {
		c, ok := col[name]
		if !ok {
			c = -1
		}
		opt[i] = c
	}
	// Split each row only as far as the last column read; count the rest.
	r.limit = addrCol
	for _, c := range idx {
		r.limit = max(r.limit, c)
	}
	for _, c := range opt {
		r.limit = max(r.limit, c)
	}
	r.limit++

	snap := Snapshot{Time: at.UTC(), Source: source}
	pools := map[string]int{}      // pool name -> index in snap.Pools
	queues := map[string]float64{} // backend qcur
	last := -1                     // index of the previous row's pool: a backend's rows are contiguous
	// Every server goes into one array, sized by the line count (an upper
	// bound on the rows) up to maxPrealloc and grown by append beyond: a
	// pool's Servers is the run of its contiguous rows there, capped so that
	// an append copies. A backend whose rows were split (HAProxy never does)
	// appends to a slice of its own.
	all := make([]Server, 0, min(bytes.Count(data, []byte("\n"))+1, maxPrealloc))
	start := 0 // where the run of pool `last` starts in all
	for line := 2; ; line++ {
		if line%ctxCheckSteps == 0 {
			if err := ctx.Err(); err != nil {
				return Snapshot{}, fmt.Errorf("parse haproxy csv from %s: stopped at line %d: %w", source, line, err)
			}
		}
		nfields, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail("line %d: %v", line, err)
		}
		if nfields < ncol-1 {
			return fail("line %d: %d fields, header has %d", line, nfields, ncol)
		}
		get := r.field
		px, sv := get(idx[0]), get(idx[1])
		if len(px) == 0 || len(sv) == 0 {
			return fail("line %d: empty pxname or svname", line)
		}
		switch string(sv) {
		case "FRONTEND":
			continue
		case "BACKEND":
			q, err := gauge(get(idx[2]))
			if err != nil {
				return fail("line %d: backend %s qcur: %v", line, px, err)
			}
			queues[string(px)] = q
			continue
		}
		var addr []byte
		if hasAddr {
			addr = get(addrCol)
		}
		server, err := haproxyServer(get, idx, &opt, addr)
		if err != nil {
			return fail("line %d: server %s/%s: %v", line, px, sv, err)
		}
		pi := last
		if pi < 0 || snap.Pools[pi].Name != string(px) {
			var ok bool
			if pi, ok = pools[string(px)]; !ok {
				pi = len(snap.Pools)
				pools[string(px)] = pi
				snap.Pools = append(snap.Pools, Pool{Name: string(px)})
			}
			last, start = pi, len(all)
		}
		if p := &snap.Pools[pi]; len(p.Servers) == len(all)-start {
			if len(all) == cap(all) {
				// Double (append grows a large slice by 1.25x: five times
				// the final size copied over the growths, not two).
				all = slices.Grow(all, len(all))
			}
			all = append(all, server)
			p.Servers = all[start:len(all):len(all)]
		} else {
			p.Servers = append(p.Servers, server)
		}
	}
	for i := range snap.Pools {
		p := &snap.Pools[i]
		p.Queue = queues[p.Name]
		sortServersByName(p.Servers)
		for j := 1; j < len(p.Servers); j++ {
			if p.Servers[j].Name == p.Servers[j-1].Name {
				return fail("server %s/%s listed twice", p.Name, p.Servers[j].Name)
			}
		}
	}
	sortPools(snap.Pools)
	if err := snap.Validate(); err != nil {
		return fail("%v", err)
	}
	return snap, nil
}

// maxPrealloc bounds the servers ParseHAProxyCSV allocates room for
// before reading them: a document of blank lines must not allocate a
// server per line.
const maxPrealloc = 1 << 12

// haproxyHeader reads the header line of HAProxy statistics CSV ("# pxname,
// svname,..."): the reader positioned at the first row, the number of
// columns and each named column's index.
func haproxyHeader(data []byte) (r csvLines, ncol int, col map[string]int, err error) {
	data = bytes.TrimLeft(data, "\r\n\t ")
	if !bytes.HasPrefix(data, []byte("# ")) {
		first, _, _ := bytes.Cut(data, []byte("\n"))
		return r, 0, nil, fmt.Errorf("no header line starting with %q (got %q)", "# pxname", clip(string(first)))
	}
	r = csvLines{data: data[2:]}
	if ncol, err = r.next(); err != nil {
		return r, 0, nil, fmt.Errorf("header: %v", err)
	}
	col = make(map[string]int, ncol)
	for i := range ncol {
		if h := r.field(i); len(h) > 0 {
			col[string(h)] = i
		}
	}
	return r, ncol, col, nil
}

// HAProxyAlgorithms reads each backend's balancing algorithm from HAProxy
// statistics CSV: the algo column of the BACKEND rows ("roundrobin",
// "static-rr", "leastconn", "source", ...; HAProxy 2.6 has it), with the
// reader ParseHAProxyCSV uses. A CSV without a pxname, svname or algo
// column, or malformed, is an error wrapping ErrMalformed.
func HAProxyAlgorithms(data []byte) (map[string]string, error) {
	fail := func(format string, args ...any) (map[string]string, error) {
		return nil, fmt.Errorf("haproxy algorithms: %w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	r, _, col, err := haproxyHeader(data)
	if err != nil {
		return fail("%v", err)
	}
	px, okp := col["pxname"]
	sv, oks := col["svname"]
	algo, oka := col["algo"]
	if !okp || !oks || !oka {
		return fail("header has no pxname, svname or algo column")
	}
	r.limit = max(px, sv, algo) + 1
	out := map[string]string{}
	for line := 2; ; line++ {
		n, err := r.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return fail("line %d: %v", line, err)
		}
		if n <= max(px, sv, algo) || string(r.field(sv)) != "BACKEND" {
			continue
		}
		out[string(r.field(px))] = string(r.field(algo))
	}
}

// csvLines splits HAProxy CSV into records. HAProxy quotes a field only
// when it holds a comma, quote or newline, which is rare (descriptions), so
// plain lines are split on commas in place and only lines with a quote go
// through the RFC 4180 splitter (quoted). Fields are kept as offsets into
// the line (no pointers to write, no allocation per field).
type csvLines struct {
	data []byte
	// limit is how many leading fields to split out; 0 means all.
	limit int

	line []byte
	ends []int  // ends[i] is the end of field i in line; field i starts after ends[i-1]+1
	buf  []byte // the unquoted fields of a quoted record (line aliases it then)
}

// field returns field i of the current record, or nil past its end.
func (c *csvLines) field(i int) []byte {
	if i >= len(c.ends) {
		return nil
	}
	start := 0
	if i > 0 {
		start = c.ends[i-1] + 1
	}
	return c.line[start:c.ends[i]]
}

// next moves to the next record and returns its total number of fields, or
// io.EOF. Only the first limit fields are split out.
func (c *csvLines) next() (int, error) {
	for len(c.data) > 0 {
		record, line := c.data, c.data
		if i := bytes.IndexByte(c.data, '\n'); i >= 0 {
			line, c.data = c.data[:i], c.data[i+1:]
		} else {
			c.data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if bytes.IndexByte(line, '"') >= 0 {
			return c.quoted(record)
		}
		c.line, c.ends = line, c.ends[:0]
		for i, ch := range line {
			if ch != ',' {
				continue
			}
			c.ends = append(c.ends, i)
			if c.limit > 0 && len(c.ends) == c.limit {
				return len(c.ends) + bytes.Count(line[i+1:], []byte(",")) + 1, nil
			}
		}
		c.ends = append(c.ends, len(line))
		return len(c.ends), nil
	}
	return 0, io.EOF
}

// quoted splits the record at the start of data, which holds a quote, as
// RFC 4180 (and encoding/csv) does: a field in double quotes may hold
// commas, newlines and "" for a quote; a quote anywhere else is an error.
// The unquoted fields are copied into c.buf with offsets, like a plain
// line, and c.data moves past the record. It reads only the record's own
// bytes, so a document of quoted lines splits in linear time.
func (c *csvLines) quoted(data []byte) (int, error) {
	buf, ends := c.buf[:0], c.ends[:0]
	i := 0
	for {
		if i < len(data) && data[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(data[i:], '"')
				if j < 0 {
					return 0, errors.New("quoted field not closed")
				}
				buf = append(buf, data[i:i+j]...)
				i += j + 1
				if i < len(data) && data[i] == '"' { // "" is a quote
					buf = append(buf, '"')
					i++
					continue
				}
				break
			}
			if i < len(data) && data[i] != ',' && data[i] != '\n' && !(data[i] == '\r' && (i+1 == len(data) || data[i+1] == '\n')) {
				return 0, fmt.Errorf("%q after a quoted field", data[i])
			}
		} else {
			j := i
			for j < len(data) && data[j] != ',' && data[j] != '\n' {
				j++
			}
			f := data[i:j]
			if j == len(data) || data[j] == '\n' {
				f = bytes.TrimSuffix(f, []byte("\r"))
			}
			if bytes.IndexByte(f, '"') >= 0 {
				return 0, errors.New(`bare " in a field not in quotes`)
			}
			buf = append(buf, f...)
			i = j
		}
		ends = append(ends, len(buf))
		if i < len(data) && data[i] == ',' {
			buf = append(buf, ',')
			i++
			continue
		}
		// End of the record: the end of data, "\n" or "\r\n".
		if i < len(data) && data[i] == '\r' {
			i++
		}
		if i < len(data) {
			i++ // '\n'
		}
		c.data = data[i:]
		c.line, c.ends, c.buf = buf, ends, buf
		return len(ends), nil
	}
}

// haproxyServer reads one server row; idx follows haproxyColumns, opt
// haproxyOptionalColumns (-1: not in the header). addr is the row's addr
// field (nil when the CSV has none): Address falls back to the server name.
func haproxyServer(get func(int) []byte, idx []int, opt *[len(haproxyOptionalColumns)]int, addr []byte) (Server, error) {
	var (
		num   [len(haproxyColumns)]float64
		cnt   [len(haproxyColumns)]uint64
		times [3]float64 // qtime, ctime, rtime; see haproxyOptionalColumns
		errs  []error
	)
	for i := range times {
		if opt[i] < 0 {
			continue
		}
		v, err := gauge(get(opt[i]))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", haproxyOptionalColumns[i], err))
		}
		times[i] = v
	}
	for _, i := range haproxyCounterCols {
		v, err := counter(get(idx[i]))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", haproxyColumns[i], err))
		}
		cnt[i] = v
	}
	for _, i := range haproxyGaugeCols {
		v, err := gauge(get(idx[i]))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", haproxyColumns[i], err))
		}
		num[i] = v
	}
	if num[10] > MaxWeight {
		errs = append(errs, fmt.Errorf("weight %.0f out of range 0..%d", num[10], MaxWeight))
	}
	if len(errs) > 0 {
		return Server{}, errors.Join(errs...)
	}
	st, err := haproxyState(get(idx[9]))
	if err != nil {
		return Server{}, err
	}
	// One allocation for name and address.
	sv := get(idx[1])
	if len(addr) == 0 {
		addr = sv
	}
	both := string(append(append(make([]byte, 0, len(sv)+len(addr)), sv...), addr...))
	s := Server{Name: both[:len(sv)], Address: both[len(sv):]}
	s.Gauges.Queue = num[2]
	s.Gauges.Active = num[3]
	s.Counters.Requests = cnt[4]
	s.Counters.BytesIn = cnt[5]
	s.Counters.BytesOut = cnt[6]
	s.Counters.Errors = cnt[7] + cnt[8]
	for k := 0; k < 5; k++ {
		s.Counters.Responses[k] = cnt[12+k]
	}
	s.Gauges.QueueTimeMs, s.Gauges.ConnectTimeMs, s.Gauges.ResponseTimeMs = times[0], times[1], times[2]
	s.Gauges.TotalTimeMs = num[17]
	tcp := opt[4] >= 0 && string(get(opt[4])) == "tcp"
	if opt[2] < 0 || tcp {
		s.Gauges.AvgResponseMs = num[17]
	} else {
		s.Gauges.AvgResponseMs = times[0] + times[1] + times[2]
	}
	if c := opt[3]; c >= 0 {
		s.CheckStatus = haproxyCheckStatus(get(c))
	}
	s.Weight = int(num[10])
	s.Backup = cnt[11] > 0
	if s.Backup && st == StateUp {
		st = StateBackup
	}
	s.State = st
	return s, nil
}

// Positions in haproxyColumns read as counters and as gauges.
var (
	haproxyCounterCols = []int{4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16}
	haproxyGaugeCols   = []int{2, 3, 10, 17}
)

// haproxyCheckStatuses are the check_status values of HAProxy 2.6
// (get_check_status_info): returned without allocating.
var haproxyCheckStatuses = [...]string{
	"L7OK", "L4CON", "L4OK", "L4TOUT", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP", "L7OKC",
	"L7STS", "INI", "SOCKERR", "PROCERR", "PROCTOUT", "PROCOK", "UNK",
}

// haproxyCheckStatus is a check_status field without the "* " HAProxy puts
// in front while a check is in progress (the status is the last result).
func haproxyCheckStatus(b []byte) string {
	b = bytes.TrimPrefix(b, []byte("* "))
	for _, s := range haproxyCheckStatuses {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

// haproxyState maps a `show stat` status field to a State.
func haproxyState(status []byte) (State, error) {
	switch {
	case string(status) == "no check", bytes.HasPrefix(status, []byte("UP")):
		return StateUp, nil
	case bytes.HasPrefix(status, []byte("DOWN")):
		return StateDown, nil
	case bytes.HasPrefix(status, []byte("DRAIN")), bytes.HasPrefix(status, []byte("NOLB")):
		return StateDrain, nil
	case bytes.HasPrefix(status, []byte("MAINT")):
		return StateMaint, nil
	}
	return "", fmt.Errorf("unknown status %q", status)
}

// counter parses a cumulative CSV field; empty means 0 (not applicable).
// Plain digits are read in place; anything else goes through strconv for
// its checks and error.
func counter(b []byte) (uint64, error) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' || v > (math.MaxUint64-9)/10 {
			return strconv.ParseUint(string(b), 10, 64)
		}
		v = v*10 + uint64(c-'0')
	}
	return v, nil
}

// gauge parses a non-negative CSV gauge; empty means 0.
func gauge(b []byte) (float64, error) {
	if v, err := counter(b); err == nil {
		return float64(v), nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, err
	}
	if bad(v) {
		return 0, fmt.Errorf("bad value %q", b)
	}
	return v, nil
}

// haproxyUnix scrapes the HAProxy stats socket.
type haproxyUnix struct {
	uri  string
	path string
	now  func() time.Time
}

func openHAProxyUnix(uri string) (Source, error) {
	path := strings.TrimPrefix(uri, "haproxy+unix://")
	if path == "" || path == uri {
		return nil, errors.New("want haproxy+unix:///path/to/admin.sock")
	}
	return &haproxyUnix{uri: uri, path: path, now: time.Now}, nil
}

func (s *haproxyUnix) String() string { return s.uri }

// Scrape sends `show stat` on a fresh connection (the stats socket runs one
// command per connection unless in prompt mode) and reads to EOF.
func (s *haproxyUnix) Scrape(ctx context.Context) (Snapshot, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", s.path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: send show stat: %w", s.uri, ctxCause(ctx, err))
	}
	data, err := io.ReadAll(io.LimitReader(bufio.NewReader(conn), maxDocument+1))
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: read show stat: %w", s.uri, ctxCause(ctx, err))
	}
	if len(data) > maxDocument {
		return Snapshot{}, fmt.Errorf("scrape %s: answer larger than %d bytes", s.uri, maxDocument)
	}
	return parseHAProxyCSV(ctx, data, s.uri, s.now())
}

// ctxCause reports an I/O error cut short by the scrape's deadline or
// cancellation as the context error (the connection deadline, set to the
// context's, may fire a moment before the context itself is done).
func ctxCause(ctx context.Context, err error) error {
	cause := ctx.Err()
	if cause == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		cause = context.DeadlineExceeded
	}
	if cause == nil {
		return err
	}
	return fmt.Errorf("%w (%v)", cause, err)
}

// haproxyHTTP scrapes the HAProxy stats page in CSV form.
type haproxyHTTP struct {
	uri string
	web webGetter
	now func() time.Time
}

func openHAProxyHTTP(uri string) (Source, error) {
	w, err := newWebGetter(strings.TrimPrefix(uri, "haproxy+"))
	if err != nil {
		return nil, err
	}
	return &haproxyHTTP{uri: uri, web: w, now: time.Now}, nil
}

func (s *haproxyHTTP) String() string { return s.uri }

// Scrape fetches and parses the stats CSV once.
func (s *haproxyHTTP) Scrape(ctx context.Context) (Snapshot, error) {
	body, err := s.web.get(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	return parseHAProxyCSV(ctx, body, s.uri, s.now())
}

// openHAProxyFile replays `show stat` captures: one CSV file, or a
// directory read in name order whose entries are CSV files or
// subdirectories holding show_stat.csv. A capture's time comes from a
// timeline.tsv in PATH (or the file's directory) or up to two levels above
// it, whose lines "TIME<TAB>UNIX_MS<TAB>capture LABEL ..." are matched by
// the capture's directory name; else from the file's modification time.
func openHAProxyFile(uri string) (Source, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(uri, "haproxy+file:"), "//")
	files, err := replayFiles(path, func(name string, dir bool) string {
		if dir {
			return filepath.Join(name, "show_stat.csv")
		}
		if strings.HasSuffix(name, ".csv") {
			return name
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	timeline := map[string]time.Time{}
	// The timeline sits beside the capture directories: look in path and up
	// to two levels above it (path may be one capture's show_stat.csv).
	base := path
	if len(files) == 1 && files[0].path == path {
		base = filepath.Dir(path)
	}
	for _, p := range []string{filepath.Join(base, "timeline.tsv"), filepath.Join(base, "..", "timeline.tsv"), filepath.Join(base, "..", "..", "timeline.tsv")} {
		if tl, err := readTimeline(p); err == nil {
			timeline = tl
			break
		}
	}
	when := func(f replayFile) (time.Time, error) {
		if t, ok := timeline[filepath.Base(filepath.Dir(f.path))]; ok {
			return t, nil
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			return time.Time{}, err
		}
		return fi.ModTime(), nil
	}
	// The CSV has no clock: parse with a placeholder, then the replay sets
	// the capture time from when().
	parse := func(ctx context.Context, data []byte, name string) (Snapshot, error) {
		t, err := when(replayFile{path: name})
		if err != nil {
			return Snapshot{}, err
		}
		return parseHAProxyCSV(ctx, data, uri, t)
	}
	return &replay{uri: uri, files: files, parse: parse}, nil
}

// readTimeline reads a capture timeline: tab-separated lines whose first
// field is an RFC 3339 time and whose third starts "capture LABEL".
func readTimeline(path string) (map[string]time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tl := map[string]time.Time{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) < 3 || !strings.HasPrefix(f[2], "capture ") {
			continue
		}
		label, _, _ := strings.Cut(strings.TrimPrefix(f[2], "capture "), " ")
		t, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			continue
		}
		tl[label] = t.UTC()
	}
	return tl, nil
}
