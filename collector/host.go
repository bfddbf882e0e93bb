package collector

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// Host is the resource signals of the machine lbtune runs on, read from
// Linux /proc: the balancer host's signals when lbtune runs on the balancer
// host, meaningless otherwise. CPU time and network bytes are cumulative
// since boot (Rate turns them into a utilisation and byte rates); the rest
// are instantaneous. /proc/net reflects the network namespace of the lbtune
// process: run it in the balancer's (the host's) namespace.
type Host struct {
	// CPUBusySeconds and CPUTotalSeconds are CPU time summed over every
	// CPU since boot (/proc/stat "cpu" line, in USER_HZ = 100 ticks/s):
	// total is user+nice+system+idle+iowait+irq+softirq+steal (guest time is
	// already inside user and nice), busy is total minus idle and iowait.
	CPUBusySeconds  float64 `json:"cpu_busy_seconds"`
	CPUTotalSeconds float64 `json:"cpu_total_seconds"`
	// MemTotalBytes and MemAvailableBytes are /proc/meminfo MemTotal and
	// MemAvailable (the kernel's estimate of memory available without
	// swapping).
	MemTotalBytes     uint64 `json:"mem_total_bytes"`
	MemAvailableBytes uint64 `json:"mem_available_bytes"`
	// NetRxBytes and NetTxBytes are bytes received and sent, summed over
	// every interface of /proc/net/dev except lo.
	NetRxBytes uint64 `json:"net_rx_bytes"`
	NetTxBytes uint64 `json:"net_tx_bytes"`
	// TCPEstablished is /proc/net/snmp Tcp CurrEstab: TCP connections
	// (IPv4 and IPv6) in ESTABLISHED or CLOSE-WAIT.
	TCPEstablished uint64 `json:"tcp_established"`
	// Load1, Load5 and Load15 are the 1, 5 and 15 minute load averages
	// (/proc/loadavg).
	Load1  float64 `json:"load1"`
	Load5  float64 `json:"load5"`
	Load15 float64 `json:"load15"`
}

// Validate reports a negative or non-finite value, or busy CPU time above
// the total.
func (h *Host) Validate() error {
	for _, v := range [...]float64{h.CPUBusySeconds, h.CPUTotalSeconds, h.Load1, h.Load5, h.Load15} {
		if bad(v) {
			return fmt.Errorf("host: bad value %v", v)
		}
	}
	if h.CPUBusySeconds > h.CPUTotalSeconds {
		return fmt.Errorf("host: cpu busy %v s above total %v s", h.CPUBusySeconds, h.CPUTotalSeconds)
	}
	return nil
}

// userHZ is the unit of /proc/stat CPU times: USER_HZ, 100 on every Linux
// architecture lbtune builds for.
const userHZ = 100

// HostReader reads Host signals from a procfs tree.
type HostReader struct {
	// Root is the procfs mount point; "" means /proc. Tests point it at a
	// testdata tree.
	Root string
}

// Read reads every host signal once. A missing or malformed file is an
// error naming the file (content errors wrap ErrMalformed); no partial Host
// is returned.
func (r HostReader) Read() (Host, error) {
	root := r.Root
	if root == "" {
		root = "/proc"
	}
	var h Host
	var err error
	read := func(name string, parse func([]byte) error) {
		if err != nil {
			return
		}
		path := filepath.Join(root, name)
		data, rerr := os.ReadFile(path)
		if rerr != nil {
			err = fmt.Errorf("read host signals: %w", rerr)
			return
		}
		if perr := parse(data); perr != nil {
			err = fmt.Errorf("read host signals: %s: %w: %v", path, ErrMalformed, perr)
		}
	}
	read("stat", func(b []byte) (e error) { h.CPUBusySeconds, h.CPUTotalSeconds, e = parseProcStat(b); return })
	read("meminfo", func(b []byte) (e error) { h.MemTotalBytes, h.MemAvailableBytes, e = parseMeminfo(b); return })
	read("net/dev", func(b []byte) (e error) { h.NetRxBytes, h.NetTxBytes, e = parseNetDev(b); return })
	read("net/snmp", func(b []byte) (e error) { h.TCPEstablished, e = parseNetSNMP(b); return })
	read("loadavg", func(b []byte) (e error) { h.Load1, h.Load5, h.Load15, e = parseLoadavg(b); return })
	if err != nil {
		return Host{}, err
	}
	return h, nil
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat and returns
// busy and total CPU seconds. At least user, nice, system and idle must be
// there (older kernels have fewer columns than 2.6.33+).
func parseProcStat(data []byte) (busy, total float64, err error) {
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		if len(f) < 5 {
			return 0, 0, fmt.Errorf("cpu line has %d fields, want >= 5", len(f))
		}
		// user nice system idle iowait irq softirq steal [guest guest_nice]
		var sum, idle uint64
		for i, b := range f[1:min(len(f), 9)] {
			v, err := strconv.ParseUint(string(b), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("cpu field %d: %w", i+1, err)
			}
			if sum+v < sum {
				return 0, 0, fmt.Errorf("cpu time overflows")
			}
			sum += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		return float64(sum-idle) / userHZ, float64(sum) / userHZ, nil
	}
	return 0, 0, fmt.Errorf("no cpu line")
}

// parseMeminfo returns MemTotal and MemAvailable in bytes.
func parseMeminfo(data []byte) (total, avail uint64, err error) {
	var seen int
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		var dst *uint64
		switch string(f[0]) {
		case "MemTotal:":
			dst = &total
		case "MemAvailable:":
			dst = &avail
		default:
			continue
		}
		v, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s %w", f[0], err)
		}
		if len(f) > 2 {
			if string(f[2]) != "kB" {
				return 0, 0, fmt.Errorf("%s unit %q, want kB", f[0], f[2])
			}
			if v > math.MaxUint64/1024 {
				return 0, 0, fmt.Errorf("%s %d kB overflows", f[0], v)
			}
			v *= 1024
		}
		*dst = v
		seen++
	}
	if seen != 2 {
		return 0, 0, fmt.Errorf("want one MemTotal and one MemAvailable line, found %d", seen)
	}
	return total, avail, nil
}

// parseNetDev returns received and sent bytes summed over every interface
// but lo. Lines after the two header lines are "NAME: rx_bytes rx_packets
// ... (8 receive fields) tx_bytes ...".
func parseNetDev(data []byte) (rx, tx uint64, err error) {
	n := 0
	for line := range bytes.Lines(data) {
		n++
		if n <= 2 {
			if !bytes.Contains(line, []byte("|")) {
				return 0, 0, fmt.Errorf("line %d: not a /proc/net/dev header", n)
			}
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			return 0, 0, fmt.Errorf("line %d: no interface name", n)
		}
		f := bytes.Fields(rest)
		if len(f) < 16 {
			return 0, 0, fmt.Errorf("line %d: %d fields, want 16", n, len(f))
		}
		r, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		t, err2 := strconv.ParseUint(string(f[8]), 10, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("line %d: bytes: %v %v", n, err1, err2)
		}
		if string(bytes.TrimSpace(name)) == "lo" {
			continue
		}
		if rx+r < rx || tx+t < tx {
			return 0, 0, fmt.Errorf("line %d: byte sum overflows", n)
		}
		rx, tx = rx+r, tx+t
	}
	if n < 2 {
		return 0, 0, fmt.Errorf("no header")
	}
	return rx, tx, nil
}

// parseNetSNMP returns Tcp CurrEstab: /proc/net/snmp has a "Tcp:" line of
// names followed by a "Tcp:" line of values.
func parseNetSNMP(data []byte) (uint64, error) {
	var names [][]byte
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		if len(f) != len(names) {
			return 0, fmt.Errorf("Tcp: %d values for %d names", len(f), len(names))
		}
		for i, n := range names {
			if string(n) == "CurrEstab" {
				v, err := strconv.ParseUint(string(f[i]), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("CurrEstab: %w", err)
				}
				return v, nil
			}
		}
		return 0, fmt.Errorf("Tcp: no CurrEstab column")
	}
	return 0, fmt.Errorf("no Tcp: names and values lines")
}

// parseLoadavg returns the 1, 5 and 15 minute load averages.
func parseLoadavg(data []byte) (l1, l5, l15 float64, err error) {
	f := bytes.Fields(data)
	if len(f) < 3 {
		return 0, 0, 0, fmt.Errorf("%d fields, want >= 3", len(f))
	}
	var v [3]float64
	for i := range v {
		v[i], err = strconv.ParseFloat(string(f[i]), 64)
		if err != nil {
			return 0, 0, 0, err
		}
		if bad(v[i]) {
			return 0, 0, 0, fmt.Errorf("bad load average %q", f[i])
		}
	}
	return v[0], v[1], v[2], nil
}

// WithHost returns a Source that scrapes src and attaches the host signals
// read by r (right after the scrape) to every snapshot. A failed host read
// never loses the balancer's snapshot: it is returned without Host, and the
// failure is logged once (again only after a successful read). The returned
// Source has src's String; check src itself for optional interfaces (a
// replay, a listener address, io.Closer). logger may be nil.
func WithHost(src Source, r HostReader, logger *slog.Logger) Source {
	return &hostSource{Source: src, reader: r, logger: logger}
}

type hostSource struct {
	Source
	reader HostReader
	logger *slog.Logger

	mu      sync.Mutex
	failing bool // the last host read failed (and was logged)
}

// Scrape scrapes the wrapped source, then reads the host signals.
func (s *hostSource) Scrape(ctx context.Context) (Snapshot, error) {
	snap, err := s.Source.Scrape(ctx)
	if err != nil {
		return snap, err
	}
	h, herr := s.reader.Read()
	if herr == nil {
		herr = h.Validate()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if herr != nil {
		if !s.failing && s.logger != nil {
			s.logger.Warn("host signals not collected; snapshots are stored without them", "source", s.String(), "err", herr)
		}
		s.failing = true
		return snap, nil
	}
	if s.failing && s.logger != nil {
		s.logger.Info("host signals collected again", "source", s.String())
	}
	s.failing = false
	snap.Host = &h
	return snap, nil
}
