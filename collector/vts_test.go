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
		// vts never writes null: read as 0 it would fake a counter reset.
		{"null counter", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","requestCounter":null}]}}`, `unsigned integer, got "null"`},
		{"null response class", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","responses":{"2xx":null}}]}}`, `unsigned integer, got "null"`},
		{"null responses", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","responses":null}]}}`, "want '{'"},
		{"null weight", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","weight":null}]}}`, `want an integer, got "null"`},
		{"null down", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","down":null}]}}`, "want true or false"},
		{"null requestMsec", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","requestMsec":null}]}}`, "non-negative number"},
		{"null server", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":null}]}}`, `want '"'`},
		{"null peers", `{"nowMsec":1795856378579,"upstreamZones":{"a":null}}`, "want '['"},
		{"null upstreamZones", `{"nowMsec":1795856378579,"upstreamZones":null}`, "want '{'"},
		{"null nowMsec", `{"nowMsec":null,"upstreamZones":{}}`, `unsigned integer, got "null"`},
		{"negative weight", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","weight":-5}]}}`, "weight -5 out of range"},
		{"weight above MaxWeight", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","weight":1048577}]}}`, "weight 1048577 out of range"},
		// 2^64-1 parses as a uint64 but is vts's overflow sentinel, not a count.
		{"counter 2^64-1", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","requestCounter":18446744073709551615}]}}`, "counter requests 18446744073709551615 above"},
		{"bytes 2^63", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","outBytes":9223372036854775808}]}}`, "counter bytes_out 9223372036854775808 above"},
		{"latency sum 2^63", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","requestMsecCounter":9223372036854775808}]}}`, "counter latency_sum_ms"},
		{"5xx 2^63", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","responses":{"5xx":9223372036854775808}}]}}`, "counter responses 5xx"},
		{"1M-deep array under an unknown key", `{"nowMsec":1795856378579,"x":` + strings.Repeat("[", 1e6) + strings.Repeat("]", 1e6) + `}`, "nesting deeper than 1000 levels"},
		{"1M-deep object under an unknown key", `{"nowMsec":1795856378579,"x":` + strings.Repeat(`{"a":`, 1e6) + "1" + strings.Repeat("}", 1e6) + `}`, "nesting deeper than 1000 levels"},
		{"deep in a peer", `{"nowMsec":1795856378579,"upstreamZones":{"a":[{"server":"x:1","ring":` + strings.Repeat("[", 1e4) + strings.Repeat("]", 1e4) + `}]}}`, "nesting deeper than 1000 levels"},
		{"deep and truncated", `{"nowMsec":1795856378579,"x":` + strings.Repeat("[", 500), "unexpected end of document in skipped value"},
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
	// Skipped values that bracket matching must get right: brackets and
	// escaped quotes in strings, flat and nested arrays side by side, and
	// nesting up to the limit.
	synthetic := map[string]string{
		"synthetic:strings": `{"a":["]","[",["\"]"],{"}":"{"}],"nowMsec":7,"b":{"x":"\\","y":[1,"\\\""]},"upstreamZones":{"g":[{"server":"s:1","z":[[1,2],[3],[],"]"],"requestCounter":5}]}}`,
		"synthetic:rings":   `{"nowMsec":9,"r":[[1,2,3],[4,5],[[6],[7,[8]]],{"a":[9]}],"upstreamZones":{"g":[{"server":"s:1","requestMsecs":{"times":[1,2],"msecs":[3,4]},"weight":3}]}}`,
		"synthetic:deep":    `{"nowMsec":1,"x":` + strings.Repeat(`[{"k":`, (MaxVTSDepth-2)/2) + "[]" + strings.Repeat("}]", (MaxVTSDepth-2)/2) + `,"upstreamZones":{}}`,
	}
	for name := range synthetic {
		files = append(files, name)
	}
	for _, f := range files {
		var data []byte
		if f == "bench:100x20" {
			data = vtsDocument(100, 20)
		} else if doc, ok := synthetic[f]; ok {
			data = []byte(doc)
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

// deepVTS returns a vts document whose unknown key "x" holds a value
// nested depth levels deep (open is the opening of one level, closing its
// end), followed by nowMsec: finding nowMsec needs the whole value skipped.
func deepVTS(open, closing string, depth int) []byte {
	return []byte(`{"x":` + strings.Repeat(open, depth) + strings.Repeat(closing, depth) + `,"nowMsec":1795856378579}`)
}

// TestVTSDeepDocuments: a document nested past MaxVTSDepth is refused at
// once however deep it goes (1M levels in well under a second; the
// quadratic skip took 10 s to accept them); up to the limit it parses; and
// with the limit lifted skipping stays one pass.
func TestVTSDeepDocuments(t *testing.T) {
	shapes := []struct {
		name, open, closing string
	}{
		{"arrays", "[", "]"},
		{"objects", `{"a":`, "}"},
		{"arrays of objects", `[{"a":`, "}]"},
		{"rings", "[1,2,", "]"},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			// The document is depth 1; each level of "x" adds one (two for
			// arrays of objects).
			per := strings.Count(sh.open, "[") + strings.Count(sh.open, "{")
			atLimit := (MaxVTSDepth - 1) / per
			if _, err := ParseVTS(deepVTS(sh.open, sh.closing, atLimit), "deep"); err != nil {
				t.Errorf("depth %d (within %d) refused: %v", 1+atLimit*per, MaxVTSDepth, err)
			}
			_, err := ParseVTS(deepVTS(sh.open, sh.closing, atLimit+1), "deep")
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nesting deeper than 1000 levels") {
				t.Errorf("depth %d: err = %v, want nesting deeper than 1000 levels", 1+(atLimit+1)*per, err)
			}

			doc := deepVTS(sh.open, sh.closing, 1_000_000)
			start := time.Now()
			_, err = ParseVTS(doc, "deep")
			if took := time.Since(start); took > 500*time.Millisecond {
				t.Errorf("refusing a 1M-deep document took %v", took)
			}
			if err == nil || !strings.Contains(err.Error(), "nesting deeper") {
				t.Errorf("1M-deep: err = %v, want the depth limit", err)
			}

			// With the limit lifted the skip still makes one pass: the ranges
			// its flat-array probes search add up to at most the document
			// (the quadratic skip searched depth^2/2 bytes: 5e11 here).
			// BenchmarkVTSSkipDeep times it.
			sc := vtsScanner{data: doc, maxDepth: 3_000_000, ctx: context.Background()}
			var got vtsDoc
			err = sc.document(&got)
			if err != nil || got.NowMsec == nil || *got.NowMsec != 1795856378579 {
				t.Errorf("skipping 1M levels with the limit lifted: err %v, nowMsec %v", err, got.NowMsec)
			}
			if sc.probed > len(doc) {
				t.Errorf("skipping a %d-byte document probed %d bytes: not one pass", len(doc), sc.probed)
			}
		})
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
