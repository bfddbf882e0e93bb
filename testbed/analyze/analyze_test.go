package analyze

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

// sharedLog is the real HAProxy 2.6 log in ../shared/captures.
var sharedLog = filepath.Join("..", "..", "..", "shared", "captures", "haproxy", "haproxy.log")

// TestHAProxyKind classifies parsed HAProxy log lines by outcome (the
// parser itself is tested in collector).
func TestHAProxyKind(t *testing.T) {
	tests := []struct {
		name string
		line string
		kind string
	}{
		{"ok", `127.0.0.1:56822 [28/Nov/2026:09:01:35.757] fe_main app/s1 0/0/0/7/7 200 175 - - ---- 8/8/7/4/0 0/0 "GET /products HTTP/1.1"`, ""},
		{"5xx", `127.0.0.1:56830 [28/Nov/2026:09:01:36.180] fe_main app/s3 0/0/0/54/54 503 192 - - ---- 8/8/7/2/0 0/0 "GET /v2/items HTTP/1.1"`, "http_5xx"},
		{"4xx", `127.0.0.1:56830 [28/Nov/2026:09:01:36.180] fe_main app/s3 0/0/0/4/4 404 192 - - ---- 8/8/7/2/0 0/0 "GET /nope HTTP/1.1"`, "http_4xx"},
		{"connect refused", `Nov 28 09:01:35 localhost haproxy[42]: 10.0.0.1:4242 [28/Nov/2026:09:01:35.000] fe be/s2 1/20/-1/-1/3021 503 217 - - SCNN 1/1/0/0/3 0/0 "GET /heavy HTTP/1.1"`, "connection_error"},
		{"server timeout", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/-1/30001 504 194 - - sH-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, "timeout"},
		{"no server", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, "connection_error"},
		{"server reset", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/-1/3 502 194 - - SH-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, "connection_reset"},
		{"client abort", `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/-1/3 -1 0 - - CD-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, "client_abort"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := collector.ParseHAProxyLogLine(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if k := haproxyKind(e); k != tc.kind {
				t.Fatalf("kind = %q, want %q", k, tc.kind)
			}
		})
	}
}

// TestAnalyzeSharedHAProxyLog: the capture has 494 request lines, 5 of them
// stats page hits; app/s3 answered 41 requests, 20 with 503, Tr mean 51.49 ms.
func TestAnalyzeSharedHAProxyLog(t *testing.T) {
	f, err := os.Open(sharedLog)
	if err != nil {
		t.Fatalf("shared capture missing (../shared/captures): %v", err)
	}
	defer f.Close()
	r, err := Analyze(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format != FormatHAProxy || r.Lines != 518 || r.Skipped != 518-489 {
		t.Fatalf("format %s lines %d skipped %d", r.Format, r.Lines, r.Skipped)
	}
	if r.Total.Requests != 489 || r.Total.Errors != 20 || r.Total.ErrorsByKind["http_5xx"] != 20 {
		t.Fatalf("total %+v", r.Total)
	}
	if math.Abs(r.Total.Response.Mean-12.184) > 0.001 {
		t.Errorf("mean response %.4f, want 12.184", r.Total.Response.Mean)
	}
	var s3 *Group
	for i := range r.Servers {
		if r.Servers[i].Name == "app/s3" {
			s3 = &r.Servers[i]
		}
	}
	if len(r.Servers) != 6 || s3 == nil {
		t.Fatalf("servers %d, app/s3 %v", len(r.Servers), s3)
	}
	if s3.Requests != 41 || s3.Errors != 20 || math.Abs(s3.Service.Mean-51.4878) > 0.001 {
		t.Errorf("app/s3 %+v", s3)
	}
	if s3.Service.Min > s3.Service.P50 || s3.Service.P50 > s3.Service.Max || s3.Service.SCV <= 0 || s3.Wait == nil {
		t.Errorf("app/s3 service stats inconsistent: %+v", s3.Service)
	}
}

func TestAnalyzeLoadgenRecords(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	recs := []loadgen.Record{
		{Time: t0, Target: "http://h/light", Status: 200, LatencyMs: 2, Server: "a", ServiceMs: 1},
		{Time: t0, Target: "http://h/light", Status: 200, LatencyMs: 4, Server: "a", ServiceMs: 3},
		{Time: t0, Target: "http://h/heavy", Status: 503, LatencyMs: 6, Server: "b", Error: "503 Service Unavailable"},
		{Time: t0, Target: "http://h/heavy", Status: 0, LatencyMs: 10000, Error: "Client.Timeout exceeded"},
	}
	for _, format := range []loadgen.Format{loadgen.CSV, loadgen.JSONL} {
		t.Run(string(format), func(t *testing.T) {
			var buf bytes.Buffer
			w, _ := loadgen.NewRecordWriter(&buf, format)
			for _, r := range recs {
				_ = w.Write(r)
			}
			_ = w.Flush()
			r, err := Analyze(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if r.Format != FormatLoadgen || r.Total.Requests != 4 || r.Total.Errors != 2 ||
				r.Total.ErrorsByKind["http_5xx"] != 1 || r.Total.ErrorsByKind["timeout"] != 1 {
				t.Fatalf("total %+v", r.Total)
			}
			// Server a: latencies 2 and 4 -> mean 3, variance 1, SCV 1/9.
			a := r.Servers[1]
			if a.Name != "a" || a.Response.Mean != 3 || a.Response.Variance != 1 || math.Abs(a.Response.SCV-1.0/9) > 1e-12 || a.Service.Mean != 2 {
				t.Fatalf("server a %+v", a)
			}
			if len(r.Servers) != 3 || r.Servers[0].Name != "-" {
				t.Fatalf("servers %+v", r.Servers)
			}
		})
	}
}

func TestAnalyzeMalformed(t *testing.T) {
	bad := `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/s1 0/0/0/1 200 1 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`
	if _, err := Analyze(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v, want one naming line 1", err)
	}
	if _, err := Analyze(strings.NewReader("time,target,status,latency_ms,bytes,error\nnot-a-time,x,200,1,1,\n")); err == nil {
		t.Fatal("malformed loadgen CSV accepted")
	}
}

// TestAnalyzeNoUsableLine: input with no request is an error saying how
// many lines were read and skipped, not an empty report.
func TestAnalyzeNoUsableLine(t *testing.T) {
	stats := `127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe_main fe_main/<STATS> 0/-1/-1/-1/0 200 100 - - LR-- 1/1/0/0/0 0/0 "GET /stats HTTP/1.1"`
	tests := []struct {
		name, in, want string
	}{
		{"bad csv", "a,b,c\n1,2,3\n4,5,6\nx,y,z\n", "4 lines read, 4 skipped"},
		{"empty", "", "0 lines read, 0 skipped"},
		{"blank lines", "\n\n\n", "3 lines read, 3 skipped"},
		{"haproxy notices only", "Proxy fe_main started.\nServer app/s1 is DOWN\n", "2 lines read, 2 skipped"},
		{"stats page hits only", stats + "\n" + stats + "\n", "2 lines read, 2 skipped"},
		{"loadgen header only", "time,target,status,latency_ms,bytes,error\n", "no lbtune load record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Analyze(strings.NewReader(tc.in))
			if !errors.Is(err, ErrNoRequests) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (report %d lines, %d skipped), want ErrNoRequests saying %q", err, r.Lines, r.Skipped, tc.want)
			}
		})
	}
	// One usable line is enough.
	if _, err := Analyze(strings.NewReader("junk\n" + `127.0.0.1:56822 [28/Nov/2026:09:01:35.757] fe_main app/s1 0/0/0/7/7 200 175 - - ---- 8/8/7/4/0 0/0 "GET /products HTTP/1.1"` + "\n")); err != nil {
		t.Errorf("a log with one request: %v", err)
	}
}
