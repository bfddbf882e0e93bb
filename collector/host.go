package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/procfs"
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

// HostReader reads Host signals from a procfs tree with
// github.com/prometheus/procfs.
type HostReader struct {
	// Root is the procfs mount point; "" means /proc. Tests point it at a
	// testdata tree (which needs self -> PID and PID/net -> ../net for
	// /proc/self/net/snmp).
	Root string
}

// Read reads every host signal once. A missing file is an error naming it;
// a file procfs cannot parse, or whose values are implausible, is an error
// naming it that wraps ErrMalformed. No partial Host is returned.
func (r HostReader) Read() (Host, error) {
	root := r.Root
	if root == "" {
		root = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		return Host{}, fmt.Errorf("read host signals: %w", err)
	}
	var h Host
	steps := []struct {
		name string
		read func() error
	}{
		{"stat", func() (err error) { h.CPUBusySeconds, h.CPUTotalSeconds, err = hostCPU(fs); return }},
		{"meminfo", func() (err error) { h.MemTotalBytes, h.MemAvailableBytes, err = hostMemory(fs); return }},
		{"net/dev", func() (err error) { h.NetRxBytes, h.NetTxBytes, err = hostNetDev(fs); return }},
		{"net/snmp", func() (err error) { h.TCPEstablished, err = hostTCPEstablished(fs); return }},
		{"loadavg", func() (err error) { h.Load1, h.Load5, h.Load15, err = hostLoad(fs); return }},
	}
	for _, st := range steps {
		path := filepath.Join(root, st.name)
		if err := procfsCall(st.read); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return Host{}, fmt.Errorf("read host signals: %s: %w", path, err)
			}
			return Host{}, fmt.Errorf("read host signals: %s: %w: %v", path, ErrMalformed, err)
		}
	}
	return h, nil
}

// procfsCall runs one procfs read, turning a panic into an error: procfs
// v0.16 indexes fields without checking their count in several parsers
// (meminfo, net/dev), so a malformed file could otherwise crash the
// collector.
func procfsCall(read func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("procfs could not parse the file: %v", p)
		}
	}()
	return read()
}

// hostCPU returns busy and total CPU seconds from /proc/stat's "cpu" line:
// total is user+nice+system+idle+iowait+irq+softirq+steal, busy is total
// minus idle and iowait. procfs gives seconds (ticks / USER_HZ); they are
// summed in ticks so the result is exact.
func hostCPU(fs procfs.FS) (busy, total float64, err error) {
	st, err := fs.Stat()
	if err != nil {
		return 0, 0, err
	}
	c := st.CPUTotal
	ticks := func(sec float64) float64 { return math.Round(sec * userHZ) }
	var sum float64
	for _, v := range [...]float64{c.User, c.Nice, c.System, c.Idle, c.Iowait, c.IRQ, c.SoftIRQ, c.Steal} {
		if bad(v) {
			return 0, 0, fmt.Errorf("cpu time %v", v)
		}
		sum += ticks(v)
	}
	if sum == 0 {
		return 0, 0, errors.New("no cpu line")
	}
	idle := ticks(c.Idle) + ticks(c.Iowait)
	return (sum - idle) / userHZ, sum / userHZ, nil
}

// userHZ is the unit of /proc/stat CPU times: USER_HZ, 100 on every Linux
// architecture lbtune builds for (procfs divides by the same constant).
const userHZ = 100

// hostMemory returns /proc/meminfo MemTotal and MemAvailable in bytes.
func hostMemory(fs procfs.FS) (total, avail uint64, err error) {
	m, err := fs.Meminfo()
	if err != nil {
		return 0, 0, err
	}
	if m.MemTotal == nil || m.MemAvailable == nil || m.MemTotalBytes == nil || m.MemAvailableBytes == nil {
		return 0, 0, errors.New("want MemTotal and MemAvailable lines")
	}
	if *m.MemTotal > math.MaxUint64/1024 || *m.MemAvailable > math.MaxUint64/1024 {
		return 0, 0, errors.New("memory size overflows")
	}
	return *m.MemTotalBytes, *m.MemAvailableBytes, nil
}

// hostNetDev returns bytes received and sent summed over every interface
// of /proc/net/dev but lo.
func hostNetDev(fs procfs.FS) (rx, tx uint64, err error) {
	dev, err := fs.NetDev()
	if err != nil {
		return 0, 0, err
	}
	for name, l := range dev {
		if name == "lo" {
			continue
		}
		if rx+l.RxBytes < rx || tx+l.TxBytes < tx {
			return 0, 0, errors.New("byte sum overflows")
		}
		rx, tx = rx+l.RxBytes, tx+l.TxBytes
	}
	return rx, tx, nil
}

// hostTCPEstablished returns Tcp CurrEstab of /proc/self/net/snmp (the
// network namespace of this process; /proc/net is a link to it).
func hostTCPEstablished(fs procfs.FS) (uint64, error) {
	self, err := fs.Self()
	if err != nil {
		return 0, err
	}
	snmp, err := self.Snmp()
	if err != nil {
		return 0, err
	}
	v := snmp.CurrEstab
	if v == nil {
		return 0, errors.New("no Tcp CurrEstab")
	}
	if bad(*v) || *v != math.Trunc(*v) || *v >= 1<<63 {
		return 0, fmt.Errorf("Tcp CurrEstab %v", *v)
	}
	return uint64(*v), nil
}

// hostLoad returns the 1, 5 and 15 minute load averages of /proc/loadavg.
func hostLoad(fs procfs.FS) (l1, l5, l15 float64, err error) {
	l, err := fs.LoadAvg()
	if err != nil {
		return 0, 0, 0, err
	}
	for _, v := range [...]float64{l.Load1, l.Load5, l.Load15} {
		if bad(v) {
			return 0, 0, 0, fmt.Errorf("bad load average %v", v)
		}
	}
	return l.Load1, l.Load5, l.Load15, nil
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
