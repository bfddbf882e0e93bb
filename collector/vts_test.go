package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// capturesDir holds the real captures shared by the project
// (/work/shared/captures), relative to this package directory.
const capturesDir = "../../shared/captures"

func captures(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(capturesDir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("captures missing: %v (the tests read the real captures in ../shared/captures from the repo root)", err)
	}
	return p
}

// scrapeAll drains a replay source.
func scrapeAll(t *testing.T, src Source) []Snapshot {
	t.Helper()
	var out []Snapshot
	for {
		s, err := src.Scrape(context.Background())
		if errors.Is(err, ErrExhausted) {
			return out
		}
		if err != nil {
			t.Fatalf("scrape %s after %d snapshots: %v", src, len(out), err)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("snapshot %d invalid: %v", len(out), err)
		}
		out = append(out, s)
	}
}

// assertRates checks that Rate between consecutive snapshots succeeds and
// yields no negative value, and returns the rates.
func assertRates(t *testing.T, snaps []Snapshot) []Rates {
	t.Helper()
	var out []Rates
	for i := 1; i < len(snaps); i++ {
		r, err := Rate(&snaps[i-1], &snaps[i])
		if err != nil {
			t.Fatalf("rate %d->%d: %v", i-1, i, err)
		}
		for _, p := range r.Pools {
			for _, s := range p.Servers {
				vals := append([]float64{s.Requests, s.BytesIn, s.BytesOut, s.Errors, s.MeanLatencyMs}, s.Responses[:]...)
				for _, v := range vals {
					if v < 0 || bad(v) {
						t.Fatalf("rate %d->%d pool %s server %s: bad value %v in %+v", i-1, i, p.Name, s.Name, v, s)
					}
				}
			}
		}
		out = append(out, r)
	}
	return out
}

func TestVTSCaptures(t *testing.T) {
	dir := captures(t, "vts")
	src, err := Open("vts+file:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	snaps := scrapeAll(t, src)
	// 0001.json ... 0064.json; the other files of the directory are not vts JSON snapshots.
	if len(snaps) != 64 {
		t.Fatalf("got %d snapshots, want 64 (one per NNNN.json capture)", len(snaps))
	}
	rates := assertRates(t, snaps)
	reset := func(t *testing.T, i int, pool, server string) bool {
		t.Helper()
		p := rates[i-1].Pool(pool)
		if p == nil {
			t.Fatalf("snapshot %04d: no pool %s", i+1, pool)
		}
		for _, s := range p.Servers {
			if s.Name == server {
				return s.Reset
			}
		}
		t.Fatalf("snapshot %04d: no server %s in %s", i+1, server, pool)
		return false
	}
	tests := []struct {
		name      string
		snap      int // 1-based capture number; rates[snap-2] is the interval ending there
		pool      string
		server    string
		wantReset bool
	}{
		{"reload with same config keeps counters", 10, "app", "127.0.0.1:18081", false},
		{"weight-change reload keeps counters", 19, "app", "127.0.0.1:18083", false},
		{"dead peer keeps frozen counters", 40, "app", "127.0.0.1:18083", false},
		{"restart resets counters", 55, "app", "127.0.0.1:18081", true},
		{"restart resets every peer", 55, "legacy", "127.0.0.1:18081", true},
		{"counters grow again after restart", 57, "app", "127.0.0.1:18081", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := reset(t, tc.snap-1, tc.pool, tc.server); got != tc.wantReset {
				t.Errorf("Reset = %v, want %v", got, tc.wantReset)
			}
		})
	}
	// State and weight changes seen in the captures.
	states := []struct {
		name   string
		snap   int
		pool   string
		server string
		state  State
		weight int
	}{
		{"weights 5/3/1 at start", 1, "app", "127.0.0.1:18081", StateUp, 5},
		{"weights 1/3/5 after reload", 19, "app", "127.0.0.1:18081", StateUp, 1},
		{"killed peer is down", 40, "app", "127.0.0.1:18083", StateDown, 5},
		{"peer up again", 52, "app", "127.0.0.1:18083", StateUp, 5},
		{"backup peer", 30, "app", "127.0.0.1:18084", StateBackup, 1},
		{"configured down peer", 30, "legacy", "127.0.0.1:18082", StateDown, 1},
	}
	for _, tc := range states {
		t.Run(tc.name, func(t *testing.T) {
			p := snaps[tc.snap-1].Pool(tc.pool)
			if p == nil {
				t.Fatalf("no pool %s", tc.pool)
			}
			s := p.Server(tc.server)
			if s == nil {
				t.Fatalf("no server %s", tc.server)
			}
			if s.State != tc.state || s.Weight != tc.weight {
				t.Errorf("state %s weight %d, want %s %d", s.State, s.Weight, tc.state, tc.weight)
			}
		})
	}
	// Under load the app pool has a positive request rate.
	if r := rates[2].Pool("app").Requests(); r <= 0 {
		t.Errorf("app request rate under load = %v, want > 0", r)
	}
}

func TestVTSGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(captures(t, "vts"), "0040.json"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ParseVTS(data, "vts+file:0040.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "vts_0040.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestVTSGolden -update)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("parsed 0040.json differs from %s (rerun with -update if the change is intended):\n%s", golden, got)
	}
}

func TestVTSBadInput(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(captures(t, "vts"), "0030.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"truncated", string(good[:len(good)/2]), "unexpected end of document"},
		{"truncated in a skipped ring", string(good[:800]), "unexpected end of document"},
		{"empty", "", "unexpected end of document"},
		{"not json", "<html>502 Bad Gateway</html>", "invalid character"},
		{"no nowMsec", `{"upstreamZones":{}}`, "no nowMsec"},
		{"negative counter", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","requestCounter":-1}]}}`, "unsigned integer"},
		{"counter over 2^64-1", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","requestCounter":18446744073709551616}]}}`, "unsigned integer"},
		{"string weight", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","weight":"5"}]}}`, "want an integer"},
		{"peers not an array", `{"nowMsec":1795856378579,"upstreamZones":{"a":{"server":"x:1"}}}`, "want '['"},
		{"peer without server", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"requestCounter":1}]}}`, "without server"},
		{"trailing garbage", `{"nowMsec":1795856378579} {}`, "trailing data"},
		{"prometheus text", "# HELP nginx_vts_info\n", "invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := ParseVTS([]byte(tc.doc), "vts+file:bad.json")
			if err == nil {
				t.Fatalf("no error, snapshot %+v", snap)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), "vts+file:bad.json") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the source and %q", err, tc.want)
			}
		})
	}
}

// TestVTSScannerMatchesEncodingJSON decodes every vts document of the
// captures with the fast scanner and with encoding/json into the same
// struct: they must agree exactly.
func TestVTSScannerMatchesEncodingJSON(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(captures(t, "vts"), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	control, _ := filepath.Glob(filepath.Join(capturesDir, "vts", "control", "*.json"))
	files = append(files, control...)
	files = append(files, "bench:100x20")
	for _, f := range files {
		var data []byte
		if f == "bench:100x20" {
			data = vtsDocument(100, 20)
		} else if data, err = os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
		var want, got vtsDoc
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%s: encoding/json: %v", f, err)
		}
		sc := vtsScanner{data: data}
		if err := sc.document(&got); err != nil {
			t.Fatalf("%s: scanner: %v", f, err)
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if !bytes.Equal(wj, gj) {
			t.Errorf("%s: scanner read\n%s\nencoding/json read\n%s", f, gj, wj)
		}
	}
}

// TestVTSHTTPLoop serves real captures over HTTP, one per request, and runs
// the scrape Loop against vts+http: every capture is stored once, an HTTP
// error status is a counted failure naming the source, and rates are
// positive under load.
func TestVTSHTTPLoop(t *testing.T) {
	var docs [][]byte
	for i := 30; i <= 34; i++ {
		data, err := os.ReadFile(filepath.Join(captures(t, "vts"), fmt.Sprintf("%04d.json", i)))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, data)
	}
	var mu sync.Mutex
	served := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		served++
		switch {
		case served == 3: // one failed scrape in the middle
			http.Error(w, "upstream busy", http.StatusServiceUnavailable)
		case len(docs) > 0:
			_, _ = w.Write(docs[0])
			docs = docs[1:]
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	src, err := Open("vts+" + srv.URL + "/status/format/json")
	if err != nil {
		t.Fatal(err)
	}
	app := &memAppender{}
	l := &Loop{Source: src, Interval: 20 * time.Millisecond, Appender: app}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	for l.Stats().Appended < 5 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Appended != 5 || st.Errors == 0 {
		t.Fatalf("stats %+v: want the 5 captures stored and the 503 counted", st)
	}
	if msg := fmt.Sprint(st.LastError); !strings.Contains(msg, src.String()) || !(strings.Contains(msg, "503") || strings.Contains(msg, "404")) {
		t.Errorf("last error %q does not name the source and the HTTP status", msg)
	}
	rates := assertRates(t, app.snaps)
	for _, r := range rates {
		if r.Pool("app").Requests() <= 0 {
			t.Errorf("app rate %v at %v, want > 0", r.Pool("app").Requests(), r.End)
		}
	}
}
