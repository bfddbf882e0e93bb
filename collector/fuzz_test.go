package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every parser of outside input has a fuzz target seeded with the real
// captures and with the synthetic seed corpus checked in under
// testdata/fuzz/<Target>/ (go test replays it; scripts/fuzz.sh --keep adds
// the inputs a run found that add coverage). The property: no panic, and
// either an error or a snapshot that passes Validate. Run them with
// scripts/fuzz.sh DURATION (make fuzz-ci: 3 s each, in make test).

func seedFiles(f *testing.F, pattern string) {
	f.Helper()
	m, err := filepath.Glob(filepath.Join(capturesDir, pattern))
	if err != nil {
		f.Fatal(err)
	}
	if len(m) == 0 {
		f.Fatalf("no captures match %s under %s", pattern, capturesDir)
	}
	for _, p := range m {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzParseVTS is seeded with small real documents: large seeds (a full
// capture is 36 KB) slow every execution. The full captures are covered by
// TestVTSCaptures.
func FuzzParseVTS(f *testing.F) {
	seedFiles(f, "vts/0001.json") // 5 KB: right after start
	seedFiles(f, "vts/control/control_*.json")
	f.Add(compactVTS(f, "vts/0040.json")) // dead peer, rings and other zones removed
	f.Add([]byte(`{"nowMsec":1,"upstreamZones":{"a":[{"server":"x:1","requestCounter":18446744073709551615}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseVTS(data, "fuzz")
		if err == nil {
			if verr := s.Validate(); verr != nil {
				t.Fatalf("ParseVTS returned an invalid snapshot: %v", verr)
			}
		}
		cs, cerr := parseVTS(expireAt(1), data, "fuzz")
		sameOrDeadline(t, s, err, cs, cerr)
	})
}

func FuzzParseHAProxyCSV(f *testing.F) {
	seedFiles(f, "haproxy/captures/0[479]-*/show_stat.csv") // drain, "* L7OK" check in progress, down (L4CON)
	seedFiles(f, "haproxy/captures/11-*/http_stats.csv")    // dynamic server in MAINT
	f.Add([]byte("# pxname,svname,qcur,scur,stot,bin,bout,econ,eresp,status,weight,bck,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,ttime\na,s,0,0,1,1,1,0,0,UP,1,0,0,1,0,0,0,1\n"))
	at := time.Unix(1795856495, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseHAProxyCSV(data, "fuzz", at)
		cs, cerr := parseHAProxyCSV(expireAt(1), data, "fuzz", at)
		sameOrDeadline(t, s, err, cs, cerr)
		if err != nil {
			return
		}
		if verr := s.Validate(); verr != nil {
			t.Fatalf("ParseHAProxyCSV returned an invalid snapshot: %v", verr)
		}
		for _, p := range s.Pools {
			for _, sv := range p.Servers {
				if strings.HasPrefix(sv.CheckStatus, "* ") {
					t.Fatalf("server %s/%s: check status %q keeps the in-progress prefix", p.Name, sv.Name, sv.CheckStatus)
				}
				if g := sv.Gauges; g.AvgResponseMs != g.TotalTimeMs && g.AvgResponseMs != g.QueueTimeMs+g.ConnectTimeMs+g.ResponseTimeMs {
					t.Fatalf("server %s/%s: AvgResponseMs %v is neither qtime+ctime+rtime nor ttime %v", p.Name, sv.Name, g.AvgResponseMs, g.TotalTimeMs)
				}
			}
		}
	})
}

// fuzzHostFile fuzzes one file of a procfs tree read by HostReader (through
// github.com/prometheus/procfs), seeded with the testdata file and this
// machine's own: no panic, and an error or a Host that passes Validate.
func fuzzHostFile(f *testing.F, name string) {
	f.Helper()
	for _, p := range []string{filepath.Join("testdata/proc", name), filepath.Join("/proc", name)} {
		data, err := os.ReadFile(p)
		if err != nil {
			if p == filepath.Join("/proc", name) {
				continue // not Linux: the testdata seed is enough
			}
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root := copyProc(t)
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		h, err := HostReader{Root: root}.Read()
		if err != nil {
			if h != (Host{}) {
				t.Fatalf("partial host with the error: %+v", h)
			}
			return
		}
		if verr := h.Validate(); verr != nil && name != "stat" { // stat: busy > total is left to Validate
			t.Fatalf("host %+v: %v", h, verr)
		}
	})
}

// The /proc files the host reader reads.

func FuzzHostStat(f *testing.F)    { fuzzHostFile(f, "stat") }
func FuzzHostMeminfo(f *testing.F) { fuzzHostFile(f, "meminfo") }
func FuzzHostNetDev(f *testing.F)  { fuzzHostFile(f, "net/dev") }
func FuzzHostNetSNMP(f *testing.F) { fuzzHostFile(f, "net/snmp") }
func FuzzHostLoadavg(f *testing.F) { fuzzHostFile(f, "loadavg") }

func FuzzParseNginxLog(f *testing.F) {
	data, err := os.ReadFile(filepath.Join(capturesDir, "nginx-log/access.log"))
	if err != nil {
		f.Fatal(err)
	}
	lines := splitLines(data)
	for i := 0; i < len(lines); i += 97 { // a spread of single lines, incl. the multi-attempt ones
		f.Add([]byte(lines[i]))
	}
	f.Add([]byte(`<190>Nov 28 09:00:15 nginx: lbtune=1 msec=1795856415.123 pool=app status=200 rt=0.071 bytes=30 reqlen=80 ua="127.0.0.1:18083, 127.0.0.1:18082 : 10.0.0.1:80" us="502, 200 : 200" urt="0.046, 0.025 : 0.001"`))
	at := time.Unix(1795856495, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseNginxLog(data, "fuzz", at)
		if err == nil {
			if verr := s.Validate(); verr != nil {
				t.Fatalf("ParseNginxLog returned an invalid snapshot: %v", verr)
			}
		}
	})
}

// FuzzParseHAProxyLog: any input gives an error or a valid snapshot, and
// a request line that parses yields a non-negative Ta unless it is -1.
func FuzzParseHAProxyLog(f *testing.F) {
	data, err := os.ReadFile(filepath.Join(capturesDir, "haproxy/haproxy.log"))
	if err != nil {
		f.Fatal(err)
	}
	lines := splitLines(data)
	for i := 0; i < len(lines); i += 23 { // requests, stats hits, server-state notices
		f.Add([]byte(lines[i]))
	}
	f.Add([]byte(`<134>Dec  2 19:40:01 haproxy[1234]: 127.0.0.1:40000 [02/Dec/2026:19:40:01.123] fe~ be/s1 0/0/1/5/6 200 120 - - ---- 3/3/1/1/0 0/0 "GET / HTTP/1.1"`))
	f.Add([]byte(`127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`))
	at := time.Unix(1795856495, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseHAProxyLog(data, "fuzz", at)
		if err == nil {
			if verr := s.Validate(); verr != nil {
				t.Fatalf("ParseHAProxyLog returned an invalid snapshot: %v", verr)
			}
		}
		for _, line := range splitLines(data) {
			e, err := ParseHAProxyLogLine(line)
			if err == nil && (e.Ta < -1 || e.Tr < -1 || e.Bytes < 0 || e.Backend == "" || e.Server == "") {
				t.Fatalf("accepted an implausible entry %+v", e)
			}
		}
	})
}

// sameOrDeadline checks a parse cut short at its first context check
// (cs, cerr) against the uncut one (s, err): the deadline's error, or the
// same outcome; never a partial snapshot.
func sameOrDeadline(t *testing.T, s Snapshot, err error, cs Snapshot, cerr error) {
	t.Helper()
	if errors.Is(cerr, context.DeadlineExceeded) {
		if !reflect.DeepEqual(cs, Snapshot{}) {
			t.Fatalf("a snapshot with the deadline's error: %+v", cs)
		}
		return
	}
	if (err == nil) != (cerr == nil) || !reflect.DeepEqual(s, cs) {
		t.Fatalf("under a deadline: %v, %+v; without: %v, %+v", cerr, cs, err, s)
	}
}

// compactVTS returns a real capture without its latency rings, histograms
// and non-upstream zones: a small seed with every field the parser reads.
func compactVTS(f *testing.F, rel string) []byte {
	data, err := os.ReadFile(filepath.Join(capturesDir, rel))
	if err != nil {
		f.Fatal(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		f.Fatal(err)
	}
	for _, k := range []string{"serverZones", "filterZones", "cacheZones", "sharedZones"} {
		delete(doc, k)
	}
	for _, peers := range doc["upstreamZones"].(map[string]any) {
		for _, p := range peers.([]any) {
			for _, k := range []string{"requestMsecs", "responseMsecs", "requestBuckets", "responseBuckets"} {
				delete(p.(map[string]any), k)
			}
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		f.Fatal(err)
	}
	return out
}

func splitLines(data []byte) []string {
	var out []string
	start := 0
	for i, b := range data {
		if b == '\n' {
			out = append(out, string(data[start:i]))
			start = i + 1
		}
	}
	if start < len(data) {
		out = append(out, string(data[start:]))
	}
	return out
}
