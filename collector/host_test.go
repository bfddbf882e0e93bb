package collector

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testHost is what HostReader reads from testdata/proc.
var testHost = Host{
	// cpu line: sum of the first 8 columns / 100, busy without idle+iowait.
	CPUBusySeconds: 135327.63, CPUTotalSeconds: 603779.29,
	MemTotalBytes: 24564492 * 1024, MemAvailableBytes: 18345180 * 1024,
	// eth0 + veth1a2b (written without a space after the colon); lo left out.
	NetRxBytes: 1000000 + 2345, NetTxBytes: 500000 + 6789,
	TCPEstablished: 37,
	Load1:          1.52, Load5: 0.87, Load15: 0.59,
}

func TestHostReaderTestdata(t *testing.T) {
	h, err := HostReader{Root: "testdata/proc"}.Read()
	if err != nil {
		t.Fatal(err)
	}
	if h != testHost {
		t.Fatalf("got  %+v\nwant %+v", h, testHost)
	}
}

// TestHostReaderReal reads this machine's /proc: every value present and
// plausible, and a second read later shows cumulative CPU time growing.
func TestHostReaderReal(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Fatalf("no /proc on this machine: %v (the host reader is Linux-only)", err)
	}
	var r HostReader // Root "" is /proc
	a, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.CPUTotalSeconds <= 0 || a.MemTotalBytes < 1<<26 || a.MemAvailableBytes > a.MemTotalBytes {
		t.Errorf("implausible host signals: %+v", a)
	}
	time.Sleep(50 * time.Millisecond)
	b, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if b.CPUTotalSeconds < a.CPUTotalSeconds || b.NetRxBytes < a.NetRxBytes {
		t.Errorf("cumulative signals went back: %+v then %+v", a, b)
	}
	rt, err := Rate(&Snapshot{Time: time.Unix(1, 0), Host: &a}, &Snapshot{Time: time.Unix(2, 0), Host: &b})
	if err != nil || rt.Host == nil || rt.Host.CPUBusy < 0 || rt.Host.CPUBusy > 1 {
		t.Errorf("rate of two real readings: %+v, %v", rt.Host, err)
	}
}

// TestHostReaderBad breaks one file of the testdata tree at a time: the
// error names the file, content errors wrap ErrMalformed.
func TestHostReaderBad(t *testing.T) {
	tests := []struct {
		name, file, content string
		malformed           bool // false: the file is missing
		want                string
	}{
		{"stat missing", "stat", "", false, "no such file"},
		{"stat without cpu line", "stat", "cpu0 1 2 3 4\n", true, "no cpu line"},
		{"stat not a number", "stat", "cpu  1 2 x 4 5\n", true, "cpu"},
		{"stat bad cpu id", "stat", "cpuX 1 2 3 4 5\n", true, "cpu"},
		{"meminfo without MemAvailable", "meminfo", "MemTotal: 100 kB\n", true, "MemAvailable"},
		{"meminfo bad unit", "meminfo", "MemTotal: 100 MB\nMemAvailable: 1 kB\n", true, "unit"},
		{"meminfo bad number", "meminfo", "MemTotal: -1 kB\nMemAvailable: 1 kB\n", true, "-1"},
		// procfs v0.16 indexes the value field unchecked: a panic, caught.
		{"meminfo line without value", "meminfo", "MemTotal:\nMemAvailable: 1 kB\n", true, "procfs could not parse"},
		{"meminfo overflow", "meminfo", "MemTotal: 18446744073709551615 kB\nMemAvailable: 1 kB\n", true, "overflows"},
		{"net/dev short line", "net/dev", "a|b\nc|d\neth0: 1 2 3\n", true, "procfs could not parse"},
		{"net/dev no name", "net/dev", "a|b\nc|d\n1 2 3\n", true, "colon"},
		{"net/snmp no Tcp", "net/snmp", "Udp: A\nUdp: 1\n", true, "CurrEstab"},
		{"net/snmp no CurrEstab", "net/snmp", "Tcp: A B\nTcp: 1 2\n", true, "CurrEstab"},
		{"net/snmp ragged", "net/snmp", "Tcp: A CurrEstab\nTcp: 1\n", true, "mismatch"},
		{"net/snmp fractional", "net/snmp", "Tcp: A CurrEstab\nTcp: 1 2.5\n", true, "CurrEstab"},
		{"net/snmp missing", "net/snmp", "", false, "no such file"},
		{"loadavg short", "loadavg", "1.0 2.0\n", true, "Malformed"},
		{"loadavg negative", "loadavg", "-1.0 2.0 3.0 1/2 3\n", true, "bad load"},
		{"loadavg NaN", "loadavg", "NaN 2.0 3.0 1/2 3\n", true, "bad load"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := copyProc(t)
			path := filepath.Join(root, tc.file)
			if tc.malformed {
				if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			h, err := HostReader{Root: root}.Read()
			if err == nil {
				t.Fatalf("no error, host %+v", h)
			}
			if h != (Host{}) {
				t.Errorf("partial host returned with the error: %+v", h)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s and %q", err, path, tc.want)
			}
			if got := errors.Is(err, ErrMalformed); got != tc.malformed {
				t.Errorf("errors.Is(err, ErrMalformed) = %v, want %v", got, tc.malformed)
			}
		})
	}
}

// copyProc copies testdata/proc into a temporary directory, with the links
// procfs follows for /proc/self/net/snmp (self -> 1, 1/net -> ../net).
func copyProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Symlink("1", filepath.Join(root, "self")) != nil || os.Symlink("../net", filepath.Join(root, "1", "net")) != nil {
		t.Fatal("cannot link self and 1/net")
	}
	for _, name := range []string{"stat", "meminfo", "loadavg", "net/dev", "net/snmp"} {
		data, err := os.ReadFile(filepath.Join("testdata/proc", name))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestHostRates(t *testing.T) {
	base := Host{CPUBusySeconds: 100, CPUTotalSeconds: 400, NetRxBytes: 1000, NetTxBytes: 2000,
		MemTotalBytes: 8, MemAvailableBytes: 4, TCPEstablished: 3, Load1: 1, Load5: 2, Load15: 3}
	with := func(f func(h *Host)) Host { h := base; f(&h); return h }
	tests := []struct {
		name   string
		cur    Host
		reset  bool
		busy   float64
		rx, tx float64 // bytes/s over the 2 s interval
	}{
		// 2 s on 2 CPUs: 4 s of CPU time, 1 of them busy.
		{"quarter busy", with(func(h *Host) { h.CPUBusySeconds, h.CPUTotalSeconds = 101, 404; h.NetRxBytes = 3000 }), false, 0.25, 1000, 0},
		{"all busy", with(func(h *Host) { h.CPUBusySeconds, h.CPUTotalSeconds = 104, 404 }), false, 1, 0, 0},
		{"no CPU time passed", base, false, 0, 0, 0},
		// idle can go backwards on NO_HZ kernels: busy grows by more than
		// total; clamped to 1, never above.
		{"busy above total clamped", with(func(h *Host) { h.CPUBusySeconds, h.CPUTotalSeconds = 110, 402 }), false, 1, 0, 0},
		// An interface removed: the sum went down, the interval counts 0.
		{"interface removed", with(func(h *Host) { h.CPUTotalSeconds = 402; h.NetRxBytes, h.NetTxBytes = 500, 2100 }), false, 0, 0, 50},
		// A reboot: everything counts from zero (busy 1 of 2 s total).
		{"reboot", Host{CPUBusySeconds: 1, CPUTotalSeconds: 2, NetRxBytes: 600, NetTxBytes: 200}, true, 0.5, 300, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prev, cur := base, tc.cur
			r, err := Rate(&Snapshot{Time: time.Unix(10, 0), Host: &prev}, &Snapshot{Time: time.Unix(12, 0), Host: &cur})
			if err != nil {
				t.Fatal(err)
			}
			h := r.Host
			if h == nil {
				t.Fatal("no host rates")
			}
			if h.Reset != tc.reset || math.Abs(h.CPUBusy-tc.busy) > 1e-9 || h.NetRxBytes != tc.rx || h.NetTxBytes != tc.tx {
				t.Errorf("got reset %v busy %v rx %v tx %v, want %v %v %v %v", h.Reset, h.CPUBusy, h.NetRxBytes, h.NetTxBytes, tc.reset, tc.busy, tc.rx, tc.tx)
			}
			if h.MemTotalBytes != cur.MemTotalBytes || h.TCPEstablished != cur.TCPEstablished || h.Load15 != cur.Load15 {
				t.Errorf("gauges not the current ones: %+v", h)
			}
		})
	}
	// Host rates need a host reading at both ends.
	h := base
	r, err := Rate(&Snapshot{Time: time.Unix(10, 0)}, &Snapshot{Time: time.Unix(12, 0), Host: &h})
	if err != nil || r.Host != nil {
		t.Errorf("host rates from one reading: %+v, %v", r.Host, err)
	}
}

// fixedSource returns the same snapshot on every scrape, with a later time.
type fixedSource struct {
	snap Snapshot
	n    int
}

func (s *fixedSource) String() string { return "fixed://" }

func (s *fixedSource) Scrape(context.Context) (Snapshot, error) {
	s.n++
	sn := s.snap
	sn.Time = sn.Time.Add(time.Duration(s.n) * time.Second)
	return sn, nil
}

// TestWithHost: host signals are attached when readable; a failing read
// keeps the balancer's snapshot (without Host) and is logged once per
// failure streak.
func TestWithHost(t *testing.T) {
	root := copyProc(t)
	var log bytes.Buffer
	src := WithHost(&fixedSource{snap: Snapshot{Time: time.Unix(100, 0), Source: "fixed://",
		Pools: []Pool{{Name: "app", Servers: []Server{{Name: "s1", State: StateUp}}}}}},
		HostReader{Root: root}, slog.New(slog.NewTextHandler(&log, nil)))
	steps := []struct {
		name     string
		breakIt  bool
		wantHost bool
		wantWarn int // WARN lines logged so far
	}{
		{"good", false, true, 0},
		{"broken", true, false, 1},
		{"still broken: not logged again", true, false, 1},
		{"good again", false, true, 1},
		{"broken again: logged", true, false, 2},
	}
	for _, st := range steps {
		stat := filepath.Join(root, "stat")
		if st.breakIt {
			if err := os.WriteFile(stat, []byte("garbage\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if data, err := os.ReadFile("testdata/proc/stat"); err != nil || os.WriteFile(stat, data, 0o644) != nil {
			t.Fatal(err)
		}
		sn, err := src.Scrape(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if sn.Pool("app") == nil {
			t.Fatalf("%s: balancer data lost: %+v", st.name, sn)
		}
		if (sn.Host != nil) != st.wantHost {
			t.Errorf("%s: host %+v, want present=%v", st.name, sn.Host, st.wantHost)
		}
		if sn.Host != nil && *sn.Host != testHost {
			t.Errorf("%s: host %+v", st.name, *sn.Host)
		}
		if n := strings.Count(log.String(), "level=WARN"); n != st.wantWarn {
			t.Errorf("%s: %d warnings logged, want %d:\n%s", st.name, n, st.wantWarn, log.String())
		}
	}
	if !strings.Contains(log.String(), filepath.Join(root, "stat")) {
		t.Errorf("warning does not name the file:\n%s", log.String())
	}
	if src.String() != "fixed://" {
		t.Errorf("String() = %q, want the wrapped source's", src.String())
	}
}

func TestPoolCost(t *testing.T) {
	up := func(active, queue float64) ServerRates {
		return ServerRates{State: StateUp, Gauges: Gauges{Active: active, Queue: queue}}
	}
	tests := []struct {
		name     string
		pool     PoolRates
		inSystem float64
		up       int
		cost     float64 // c1 = 2, c2 = 10
	}{
		{"empty", PoolRates{}, 0, 0, 0},
		{"three up", PoolRates{Servers: []ServerRates{up(3, 0), up(1, 2), up(0, 0)}}, 6, 3, 2*6 + 10*3},
		{"pool queue counts", PoolRates{Queue: 4, Servers: []ServerRates{up(2, 0)}}, 6, 1, 2*6 + 10*1},
		// In-flight requests on a draining or down server are in the
		// system; the server is not "on" for the cost.
		{"drain, down, maint not on", PoolRates{Servers: []ServerRates{up(1, 0),
			{State: StateDrain, Gauges: Gauges{Active: 5}}, {State: StateDown}, {State: StateMaint}}}, 6, 1, 2*6 + 10*1},
		// Backup servers are not counted, in use (StateBackup) or not.
		{"backups not on", PoolRates{Servers: []ServerRates{up(1, 0),
			{State: StateBackup, Backup: true, Gauges: Gauges{Active: 2}}, {State: StateUp, Backup: true}}}, 3, 1, 2*3 + 10*1},
		{"fractional gauges (simulator means)", PoolRates{Queue: 0.5, Servers: []ServerRates{up(1.25, 0.25)}}, 2, 1, 2*2 + 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.pool.InSystem(); got != tc.inSystem {
				t.Errorf("InSystem = %v, want %v", got, tc.inSystem)
			}
			if got := tc.pool.ServersUp(); got != tc.up {
				t.Errorf("ServersUp = %v, want %v", got, tc.up)
			}
			if got := tc.pool.Cost(2, 10); got != tc.cost {
				t.Errorf("Cost(2, 10) = %v, want %v", got, tc.cost)
			}
		})
	}
}
