// Package analyze is the testbed's log analyser (lbtune analyze): it reads
// lbtune load records or HAProxy HTTP logs and reports, in total and per
// backend server, the mean, variance, min, max, squared coefficient of
// variation and percentiles of response and service times, and errors by
// kind. It checks what a run did from the outside, independently of the
// collector's own statistics.
package analyze

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/testbed/dist"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

// Formats Analyze recognises.
const (
	FormatLoadgen = "loadgen"
	FormatHAProxy = "haproxy"
)

// Group is the statistics of a set of requests (all, or one server's).
type Group struct {
	// Name is "all" or the server ("backend/server" for HAProxy logs).
	Name         string         `json:"name"`
	Requests     int            `json:"requests"`
	Errors       int            `json:"errors"`
	ErrorsByKind map[string]int `json:"errors_by_kind"`
	// Response is the response time in ms (loadgen latency; HAProxy Ta).
	Response dist.Description `json:"response_ms"`
	// Service is the server's service time in ms (X-Lbtune-Service-Ms;
	// HAProxy Tr), over requests that have one.
	Service dist.Description `json:"service_ms"`
	// Wait is the queueing time in ms (HAProxy Tw), over requests that have one.
	Wait *dist.Description `json:"wait_ms,omitempty"`

	resp, svc, wait []float64
}

// Report is the result of Analyze.
type Report struct {
	Format string `json:"format"`
	// Lines is how many lines were read; Skipped how many were not
	// requests (HAProxy notices, stats page hits).
	Lines   int     `json:"lines"`
	Skipped int     `json:"skipped"`
	Total   Group   `json:"total"`
	Servers []Group `json:"servers"`
}

// folder accumulates groups.
type folder struct {
	total   *Group
	servers map[string]*Group
}

func newFolder() *folder {
	return &folder{total: &Group{Name: "all", ErrorsByKind: map[string]int{}}, servers: map[string]*Group{}}
}

func (f *folder) add(server string, kind string, resp float64, svc, wait float64, hasSvc, hasWait bool) {
	g := f.servers[server]
	if g == nil {
		g = &Group{Name: server, ErrorsByKind: map[string]int{}}
		f.servers[server] = g
	}
	for _, g := range []*Group{f.total, g} {
		g.Requests++
		if kind != "" {
			g.Errors++
			g.ErrorsByKind[kind]++
		}
		if resp >= 0 {
			g.resp = append(g.resp, resp)
		}
		if hasSvc {
			g.svc = append(g.svc, svc)
		}
		if hasWait {
			g.wait = append(g.wait, wait)
		}
	}
}

func (f *folder) report(format string, lines, skipped int) Report {
	r := Report{Format: format, Lines: lines, Skipped: skipped}
	finish := func(g *Group) Group {
		g.Response = dist.Describe(g.resp)
		g.Service = dist.Describe(g.svc)
		if format == FormatHAProxy {
			w := dist.Describe(g.wait)
			g.Wait = &w
		}
		g.resp, g.svc, g.wait = nil, nil, nil
		return *g
	}
	r.Total = finish(f.total)
	names := make([]string, 0, len(f.servers))
	for n := range f.servers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.Servers = append(r.Servers, finish(f.servers[n]))
	}
	return r
}

// ErrNoRequests is returned by Analyze and AnalyzeHAProxy for input with
// no usable line (no request record, every line skipped): there is nothing
// to report on, and a wrong file must not pass for an empty run.
var ErrNoRequests = errors.New("no usable line")

// Analyze reads a loadgen record file (CSV or JSONL) or an HAProxy HTTP log,
// detected from its first line, and returns its Report. Input without one
// request is an error wrapping ErrNoRequests that says how many lines were
// read and skipped (the Report is returned with it).
func Analyze(r io.Reader) (Report, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(64)
	first := strings.TrimLeft(string(head), " \t\r\n")
	if strings.HasPrefix(first, "{") || strings.HasPrefix(first, "time,target") {
		return analyzeLoadgen(br)
	}
	return AnalyzeHAProxy(br)
}

// noRequests is the error of a report without requests, else nil.
func noRequests(r Report) error {
	if r.Total.Requests > 0 {
		return nil
	}
	if r.Format == FormatLoadgen {
		return fmt.Errorf("%w: no lbtune load record (a header at most)", ErrNoRequests)
	}
	return fmt.Errorf("%w: %d lines read, %d skipped (no HAProxy HTTP log request line; lbtune load records are CSV with a time,target,... header, or JSONL)", ErrNoRequests, r.Lines, r.Skipped)
}

func analyzeLoadgen(r io.Reader) (Report, error) {
	f := newFolder()
	n := 0
	err := loadgen.ReadRecords(r, func(rec loadgen.Record) error {
		n++
		server := rec.Server
		if server == "" {
			server = "-"
		}
		f.add(server, loadgen.FailureKind(rec.Status, rec.Error), rec.LatencyMs, rec.ServiceMs, 0, rec.ServiceMs > 0, false)
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("loadgen records: %w", err)
	}
	rep := f.report(FormatLoadgen, n, 0)
	return rep, noRequests(rep)
}

// AnalyzeHAProxy reads an HAProxy HTTP log. Lines that are not request logs,
// and requests HAProxy answered itself (<STATS>), are counted as skipped; a
// malformed request line is an error naming it, and a log with no request
// an error wrapping ErrNoRequests.
func AnalyzeHAProxy(r io.Reader) (Report, error) {
	f := newFolder()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lines, skipped := 0, 0
	for sc.Scan() {
		lines++
		line := string(bytes.TrimSpace(sc.Bytes()))
		e, err := collector.ParseHAProxyLogLine(line)
		if errors.Is(err, collector.ErrNotHAProxyRequest) {
			skipped++
			continue
		}
		if err != nil {
			return Report{}, fmt.Errorf("haproxy log line %d: %w", lines, err)
		}
		if e.Server == "<STATS>" || e.Server == "<CACHE>" || e.Server == "<PROMEX>" {
			skipped++
			continue
		}
		f.add(e.Backend+"/"+e.Server, haproxyKind(e), float64(e.Ta), float64(e.Tr), float64(e.Tw), e.Tr >= 0, e.Tw >= 0)
	}
	if err := sc.Err(); err != nil {
		return Report{}, fmt.Errorf("read haproxy log: %w", err)
	}
	rep := f.report(FormatHAProxy, lines, skipped)
	return rep, noRequests(rep)
}
