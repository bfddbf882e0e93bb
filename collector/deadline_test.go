package collector

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// expiringCtx is a context whose deadline passes while a parse is under
// way, without timing: Err reports context.DeadlineExceeded from its n-th
// call on.
type expiringCtx struct {
	context.Context
	n, calls int
}

func expireAt(n int) *expiringCtx { return &expiringCtx{Context: context.Background(), n: n} }

func (c *expiringCtx) Err() error {
	c.calls++
	if c.calls >= c.n {
		return context.DeadlineExceeded
	}
	return nil
}

// wideVTS is a vts document with n peers in one group, each with an
// unknown key holding a small nested value: many steps to parse.
func wideVTS(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"nowMsec":1795856378579,"serverZones":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"a":[1,{"b":"]"}]}`)
	}
	b.WriteString(`],"upstreamZones":{"g":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"server":"10.0.%d.%d:80","requestCounter":%d,"x":[[1],[2]]}`, i/250, i%250, i)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// TestParsersHonourDeadline: every source's parsing stops with the
// context's error when the scrape's deadline passes part way through a
// document (the context is checked every ctxCheckSteps items), and the log
// sources lose and double nothing: the next scrape carries on where the
// cut one stopped.
func TestParsersHonourDeadline(t *testing.T) {
	dir := t.TempDir()
	vtsDoc := wideVTS(5000)
	csvDoc := haproxyCSV(50, 100) // 5000 server rows
	vtsFile := filepath.Join(dir, "vts.json")
	csvFile := filepath.Join(dir, "show_stat.csv")
	for p, data := range map[string][]byte{vtsFile: vtsDoc, csvFile: csvDoc} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const lines = 5000
	nginxLines := func() string {
		var b strings.Builder
		for i := range lines {
			fmt.Fprintf(&b, `<190>Nov 28 09:00:15 nginx: lbtune=1 msec=1795856415.%03d pool=app status=200 rt=0.071 bytes=30 reqlen=80 ua="127.0.0.1:%d" us="200" urt="0.046"`+"\n", i%1000, 18080+i%4)
		}
		return b.String()
	}()
	haproxyLines := func() string {
		var b strings.Builder
		for i := range lines {
			fmt.Fprintf(&b, `127.0.0.1:40000 [02/Dec/2026:19:40:01.%03d] fe be/s%d 0/0/1/5/6 200 120 - - ---- 3/3/1/1/0 0/0 "GET / HTTP/1.1"`+"\n", i%1000, i%4)
		}
		return b.String()
	}()
	haproxyLog := filepath.Join(dir, "haproxy.log")
	if err := os.WriteFile(haproxyLog, []byte(haproxyLines), 0o644); err != nil {
		t.Fatal(err)
	}
	nginxLog := filepath.Join(dir, "access.log")
	if err := os.WriteFile(nginxLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	type scrapeFunc func(ctx context.Context) (Snapshot, error)
	open := func(t *testing.T, uri string) scrapeFunc {
		t.Helper()
		src, err := Open(uri)
		if err != nil {
			t.Fatal(err)
		}
		return src.Scrape
	}
	tests := []struct {
		name string
		// scrape returns the function to cut short (Scrape checks ctx once
		// on entry: skip is how many checks pass before the deadline).
		scrape func(t *testing.T) scrapeFunc
		skip   int
		// after, when set, is the total request count the next scrape
		// (uncut) must report: nothing lost or counted twice.
		after uint64
	}{
		{name: "vts document", scrape: func(*testing.T) scrapeFunc {
			return func(ctx context.Context) (Snapshot, error) { return parseVTS(ctx, vtsDoc, "vts") }
		}},
		{name: "vts+file", scrape: func(t *testing.T) scrapeFunc { return open(t, "vts+file:"+vtsFile) }, skip: 1},
		{name: "haproxy csv", scrape: func(*testing.T) scrapeFunc {
			return func(ctx context.Context) (Snapshot, error) {
				return parseHAProxyCSV(ctx, csvDoc, "csv", time.Unix(1, 0))
			}
		}},
		{name: "haproxy+file", scrape: func(t *testing.T) scrapeFunc { return open(t, "haproxy+file:"+csvFile) }, skip: 1},
		{name: "nginxlog+file tail", scrape: func(t *testing.T) scrapeFunc {
			scrape := open(t, "nginxlog+file://"+nginxLog)
			f, err := os.OpenFile(nginxLog, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(nginxLines); err != nil {
				t.Fatal(err)
			}
			return scrape
		}, skip: 1, after: lines},
		{name: "haproxylog+file replay", scrape: func(t *testing.T) scrapeFunc {
			return open(t, "haproxylog+file://"+haproxyLog+"?replay=1h")
		}, skip: 1, after: lines},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scrape := tc.scrape(t)
			ctx := expireAt(tc.skip + 1)
			snap, err := scrape(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, snapshot of %d pools; want the deadline", err, len(snap.Pools))
			}
			if errors.Is(err, ErrMalformed) {
				t.Errorf("a deadline is not malformed input: %v", err)
			}
			if !strings.Contains(err.Error(), "stopped") {
				t.Errorf("error %q does not say where the parse stopped", err)
			}
			if ctx.calls != tc.skip+1 {
				t.Errorf("context checked %d times, want %d: the parse went on after the deadline", ctx.calls, tc.skip+1)
			}
			if tc.after == 0 {
				return
			}
			snap, err = scrape(context.Background())
			if err != nil {
				t.Fatalf("next scrape: %v", err)
			}
			var total uint64
			for _, p := range snap.Pools {
				for _, s := range p.Servers {
					total += s.Counters.Requests
				}
			}
			if total != tc.after {
				t.Errorf("after the cut scrape and an uncut one: %d requests, want %d", total, tc.after)
			}
		})
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHAProxyCSVWorstCase: documents that made the CSV parser quadratic
// (every row quoted: the rest of the document was copied per row) or
// allocate per line (blank lines: a server slot each) parse with memory in
// proportion to their size.
func TestHAProxyCSVWorstCase(t *testing.T) {
	const header = "# pxname,svname,qcur,scur,stot,bin,bout,econ,eresp,status,weight,bck,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,ttime\n"
	var quoted strings.Builder
	quoted.WriteString(header)
	const rows = 40000
	for i := range rows {
		fmt.Fprintf(&quoted, "app,\"s%d, \"\"quoted\"\"\",0,0,%d,1,1,0,0,UP,1,0,0,1,0,0,0,1\n", i, i)
	}
	tests := []struct {
		name     string
		doc      string
		wantErr  string // "" parses
		servers  int
		maxAlloc uint64 // bytes; the quadratic versions took 30 GB and 2 GB
	}{
		// 1.8 MB: the old parser copied 36 GB and took 32 s.
		{name: "40000 quoted rows", doc: quoted.String(), servers: rows, maxAlloc: 64 << 20},
		// 16 MB of blank lines: the old parser allocated 4 GB of servers.
		{name: "16M blank lines", doc: header + strings.Repeat("\n", 16<<20), servers: 0, maxAlloc: 64 << 20},
		{name: "16M blank lines then garbage", doc: header + strings.Repeat("\r\n", 8<<20) + "x\n", wantErr: "fields", maxAlloc: 64 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var snap Snapshot
			var err error
			got := allocated(func() { snap, err = ParseHAProxyCSV([]byte(tc.doc), "csv", time.Unix(1, 0)) })
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			}
			if tc.wantErr == "" {
				n := 0
				for _, p := range snap.Pools {
					n += len(p.Servers)
				}
				if n != tc.servers {
					t.Errorf("%d servers, want %d", n, tc.servers)
				}
			}
			if got > tc.maxAlloc {
				t.Errorf("allocated %d MB parsing %d MB, want at most %d MB", got>>20, len(tc.doc)>>20, tc.maxAlloc>>20)
			}
		})
	}
	if s := "s39999, \"quoted\""; len(quoted.String()) > 0 {
		snap, err := ParseHAProxyCSV([]byte(quoted.String()), "csv", time.Unix(1, 0))
		if err != nil || snap.Pools[0].Server(s) == nil || snap.Pools[0].Server(s).Counters.Requests != 39999 {
			t.Errorf("quoted server %q not read back (err %v)", s, err)
		}
	}
}

// TestCSVQuotedRecords: the quoted-record splitter reads what encoding/csv
// reads (RFC 4180), and refuses what it refuses.
func TestCSVQuotedRecords(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr bool
	}{
		{name: "comma in quotes", data: "a,\"b,c\",d\nnext,row\n"},
		{name: "doubled quote", data: "\"x\"\"y\",z\n"},
		{name: "newline in quotes", data: "a,\"line1\nline2\",b\nnext\n"},
		{name: "empty quoted", data: "\"\",a,\"\"\n"},
		{name: "crlf", data: "a,\"b\"\r\nnext\r\n"},
		{name: "at end of data", data: "a,\"b\""},
		{name: "empty last field", data: "\"a\",\n"},
		{name: "unterminated", data: "a,\"b\nc\n", wantErr: true},
		{name: "bare quote", data: "a,b\"c\n", wantErr: true},
		{name: "text after quotes", data: "a,\"b\"c\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := csv.NewReader(strings.NewReader(tc.data))
			r.FieldsPerRecord = -1
			want, wantErr := r.Read()
			if (wantErr != nil) != tc.wantErr {
				t.Fatalf("encoding/csv: err %v, the table says %v", wantErr, tc.wantErr)
			}
			c := csvLines{data: []byte(tc.data)}
			n, err := c.next()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, %d fields", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, n)
			for i := range got {
				got[i] = string(c.field(i))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("fields %q, encoding/csv reads %q", got, want)
			}
			// The rest is the next record, as encoding/csv sees it.
			if rest := tc.data[r.InputOffset():]; !bytes.Equal(c.data, []byte(rest)) {
				t.Errorf("rest %q, want %q", c.data, rest)
			}
		})
	}
}
