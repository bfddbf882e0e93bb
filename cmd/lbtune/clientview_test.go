package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tolerances of the client-view check (issue 14): lbtune's per-pool mean
// must be within 25% or 2 ms of the load generator's, its p95 within 35% or
// 3 ms. The absolute margins grow by the floor measured through the same
// balancer in the same run (see clientFloor).
const (
	clientViewMeanRel, clientViewMeanAbs = 0.25, 2.0
	clientViewP95Rel, clientViewP95Abs   = 0.35, 3.0
	// clientViewImputedP95Rel is the p95 tolerance of a source without
	// percentiles (the HAProxy stats socket), whose p95 is imputed as
	// collector.P95PerMean (ln 20) x its mean: the mean's own 25% and the
	// shape's (an exponential's p95/mean against the testbed's, 2.7 in the
	// CI run that failed at 1.37 on light) compound.
	clientViewImputedP95Rel = 0.45
)

// clientViewRow is one line of the client-view table in docs/RESULTS.md.
type clientViewRow struct {
	source, pool                    string
	clientMean, clientP95           float64
	lbtuneMean, lbtuneP95, requests float64
	meanOK, p95OK                   bool
	clientNote                      string
}

// clientFloor is what the clients see and no balancer does: the time before
// the balancer takes a request in and after it has written the response
// (the load generator's own scheduling, syscalls, the balancer's worker
// waiting for a core). It is measured per balancer on a pool whose servers
// do no work (the testbed's heavy pool at speed 1000: 0.08 ms jobs), as the
// clients' mean and p95 minus lbtune's for that pool. Under 0.5 ms on a quiet
// machine; a loaded 2-core CI machine once put 2.2-2.4 ms of it into the
// clients' mean of the 5 ms pool, failing the bare 2 ms margin.
type clientFloor struct{ mean, p95 float64 }

func (r clientViewRow) String() string {
	return fmt.Sprintf("| %s | %s | %.2f / %.2f%s | %.2f / %.2f | %.2f / %.2f |",
		r.source, r.pool, r.clientMean, r.clientP95, r.clientNote, r.lbtuneMean, r.lbtuneP95,
		r.lbtuneMean/r.clientMean, r.lbtuneP95/r.clientP95)
}

// within reports whether got is within rel (relative) or abs (ms) of want.
func within(got, want, rel, abs float64) bool {
	d := math.Abs(got - want)
	return d <= abs || d <= rel*want
}

// clientViewPools reads `dataset info --json`'s per-pool latency figures.
func clientViewPools(t *testing.T, bin, db string) map[string][3]float64 {
	t.Helper()
	code, out, stderr := recordExec(t, bin, "dataset", "info", db, "--json")
	if code != 0 {
		t.Fatalf("dataset info %s: exit %d: %s", db, code, stderr)
	}
	var sum struct {
		PoolStats []struct {
			Name     string   `json:"name"`
			MeanRate float64  `json:"mean_rate"`
			MeanMs   *float64 `json:"mean_ms"`
			P95Ms    *float64 `json:"p95_ms"`
		} `json:"pool_stats"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("dataset info %s: %v", db, err)
	}
	m := map[string][3]float64{}
	for _, p := range sum.PoolStats {
		if p.MeanMs == nil || p.P95Ms == nil {
			t.Fatalf("dataset info %s: pool %s has no mean_ms/p95_ms", db, p.Name)
		}
		m[p.Name] = [3]float64{*p.MeanMs, *p.P95Ms, p.MeanRate}
	}
	return m
}

// TestClientView records the testbed under load from every real source
// (HAProxy's stats socket, HAProxy's request log over UDP, NGINX's access
// log over UDP) and checks each pool's mean_ms and p95_ms from `lbtune
// dataset info` against what the load generator (`lbtune load --json`)
// measured for the same pool through the same balancer. vts, which the
// testbed does not run, is checked through its captures against wrk's
// figures of the same run. Run with -v to print the table of
// docs/RESULTS.md ("Client view per source").
func TestClientView(t *testing.T) {
	if _, err := os.Stat(recordCaptures); err != nil {
		t.Fatalf("shared captures missing: %v", err)
	}
	bin := lbtuneBinary(t)
	dir := t.TempDir()
	var rows []clientViewRow
	t.Run("vts captures", func(t *testing.T) {
		rows = append(rows, clientViewVTS(t, bin, dir))
	})
	t.Run("testbed", func(t *testing.T) {
		rows = append(rows, clientViewTestbed(t, bin, dir)...)
	})
	var b strings.Builder
	b.WriteString("\n| source | pool | client mean / p95 ms | lbtune mean / p95 ms | ratio mean / p95 |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(r.String() + "\n")
	}
	b.WriteString("\n(heavy: a pool of no-work servers, the client-side floor each balancer's rows are allowed on top of the margins)\n")
	t.Log(b.String())
	for _, r := range rows {
		if !r.meanOK || !r.p95OK {
			t.Errorf("%s pool %s: lbtune mean %.2f p95 %.2f ms, clients saw mean %.2f p95 %.2f ms (want mean within %.0f%% or %.0f ms + the source's heavy-pool floor, p95 within %.0f%% (%.0f%% when imputed) or %.0f ms + floor)",
				r.source, r.pool, r.lbtuneMean, r.lbtuneP95, r.clientMean, r.clientP95,
				100*clientViewMeanRel, clientViewMeanAbs, 100*clientViewP95Rel, 100*clientViewImputedP95Rel, clientViewP95Abs)
		}
	}
}

// clientViewVTS replays the vts captures of the first load phase
// (0002-0015: wrk -d16s on nginx, before it ended) and compares pool app
// with wrk's own latency figures of that phase (nginx-log/wrk/phaseA.txt:
// mean 17.17 ms, p90 40.64 ms, p99 60.03 ms). wrk reports no p95: the
// client p95 is interpolated between p90 and p99 on a log scale (an
// exponential tail's quantiles are linear in log(1-q)).
func clientViewVTS(t *testing.T, bin, dir string) clientViewRow {
	caps := filepath.Join(dir, "vts-phaseA")
	if err := os.MkdirAll(caps, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 15; i++ {
		name := fmt.Sprintf("%04d.json", i)
		data, err := os.ReadFile(filepath.Join(recordCaptures, "vts", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(caps, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(dir, "vts.db")
	if code, _, stderr := recordExec(t, bin, "record", "--source", "vts+file:"+caps, "--db", db); code != 0 {
		t.Fatalf("record vts captures: exit %d: %s", code, stderr)
	}
	wrk, err := os.ReadFile(filepath.Join(recordCaptures, "nginx-log", "wrk", "phaseA.txt"))
	if err != nil {
		t.Fatal(err)
	}
	mean, p90, p99 := wrkFigure(t, wrk, "Latency "), wrkFigure(t, wrk, "90% "), wrkFigure(t, wrk, "99% ")
	// log(1-q): q=0.90 -> log 0.10, 0.95 -> log 0.05, 0.99 -> log 0.01.
	f := (math.Log(0.05) - math.Log(0.10)) / (math.Log(0.01) - math.Log(0.10))
	p95 := p90 + f*(p99-p90)
	got := clientViewPools(t, bin, db)["app"]
	return clientViewRow{source: "vts+file (captures)", pool: "app", clientMean: mean, clientP95: p95, clientNote: " (wrk; p95 from p90/p99)",
		lbtuneMean: got[0], lbtuneP95: got[1], requests: got[2],
		meanOK: within(got[0], mean, clientViewMeanRel, clientViewMeanAbs), p95OK: within(got[1], p95, clientViewP95Rel, clientViewP95Abs)}
}

// wrkFigure returns the first value in ms on wrk's output line holding key.
func wrkFigure(t *testing.T, out []byte, key string) float64 {
	t.Helper()
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, key); i >= 0 {
			var v float64
			if _, err := fmt.Sscanf(strings.TrimSpace(line[i+len(key):]), "%fms", &v); err == nil {
				return v
			}
		}
	}
	t.Fatalf("wrk output has no %q line in ms", key)
	return 0
}

// clientViewLoad is one load generator run: a pool through a balancer.
type clientViewLoad struct {
	balancer, pool string
	rate           float64
	sum            struct {
		Requests int     `json:"requests"`
		Failures int     `json:"failures"`
		MeanMs   float64 `json:"mean_ms"`
		P95Ms    float64 `json:"p95_ms"`
	}
}

func clientViewTestbed(t *testing.T, bin, dir string) []clientViewRow {
	const loadFor = 20 * time.Second
	state := filepath.Join(dir, "tb")
	cfg := filepath.Join(dir, "testbed.yaml")
	// Two pools of the default testbed: 5 ms and 20 ms exponential jobs on
	// servers of mixed speeds; no queueing at these rates. The third does
	// no work (80 ms / 1000): the floor (clientFloor).
	yaml := "state_dir: " + state + `
pools:
  - {name: light,  min: 1, max: 5, servers: 3, concurrency: 8, speeds: [2, 1, 1],   weight: 10}
  - {name: medium, min: 1, max: 5, servers: 3, concurrency: 4, speeds: [2, 1, 0.5], weight: 10}
  - {name: heavy,  min: 1, max: 5, servers: 1, concurrency: 32, speeds: [1000],     weight: 10}
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := recordExec(t, bin, "testbed", "up", "--config", cfg); code != 0 {
		t.Fatalf("testbed up: exit %d: %s", code, stderr)
	}
	t.Cleanup(func() { recordExec(t, bin, "testbed", "down", "--config", cfg) })
	get := func(name string) string {
		code, out, stderr := recordExec(t, bin, "testbed", "status", "--config", cfg, "--get", name)
		if code != 0 {
			t.Fatalf("testbed status --get %s: exit %d: %s", name, code, stderr)
		}
		return strings.TrimSpace(out)
	}
	sources := map[string]string{ // source URI -> balancer whose clients it must match
		get("haproxy.source"):     "haproxy",
		get("haproxy.log_source"): "haproxy",
		get("nginx.source"):       "nginx",
	}
	addr := map[string]string{"haproxy": get("haproxy.addr"), "nginx": get("nginx.addr")}

	// 1. One recorder per source, each into its own store (dataset info
	// sums pools of the same name across sources).
	ctx, cancel := context.WithTimeout(context.Background(), 3*loadFor)
	defer cancel()
	type recorder struct {
		uri, db string
		cmd     *exec.Cmd
		stderr  bytes.Buffer
	}
	var recs []*recorder
	for uri := range sources {
		r := &recorder{uri: uri, db: filepath.Join(dir, strings.SplitN(uri, ":", 2)[0]+".db")}
		r.cmd = exec.CommandContext(ctx, bin, "record", "--source", uri, "--db", r.db, "--interval", "1s", "--duration", (loadFor + 15*time.Second).String())
		r.cmd.Stderr = &r.stderr
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].uri < recs[j].uri })
	time.Sleep(1500 * time.Millisecond) // listeners up, first snapshot taken

	// 2. The load generator, one run per pool and balancer, all at once.
	loads := []*clientViewLoad{
		{balancer: "haproxy", pool: "light", rate: 50}, {balancer: "haproxy", pool: "medium", rate: 20},
		{balancer: "nginx", pool: "light", rate: 50}, {balancer: "nginx", pool: "medium", rate: 20},
		{balancer: "haproxy", pool: "heavy", rate: 50}, {balancer: "nginx", pool: "heavy", rate: 50},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(loads))
	for i, l := range loads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, bin, "load", "--target", "http://"+addr[l.balancer]+"/"+l.pool,
				"--rate", fmt.Sprint(l.rate), "--duration", loadFor.String(), "--json", "--seed", fmt.Sprint(i+1))
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("load %s %s: %v: %s", l.balancer, l.pool, err, stderr.String())
				return
			}
			errs[i] = json.Unmarshal(out.Bytes(), &l.sum)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// 3. Let the last requests be logged and scraped, then stop recording.
	time.Sleep(2500 * time.Millisecond)
	for _, r := range recs {
		_ = r.cmd.Process.Signal(os.Interrupt)
		if err := r.cmd.Wait(); err != nil {
			t.Fatalf("record %s: %v: %s", r.uri, err, r.stderr.String())
		}
	}

	// 4. Compare, each source's absolute margins widened by its floor.
	var rows []clientViewRow
	for _, r := range recs {
		got := clientViewPools(t, bin, r.db)
		var floor clientFloor
		for _, l := range loads {
			if g, ok := got[l.pool]; ok && l.pool == "heavy" && l.balancer == sources[r.uri] {
				floor = clientFloor{mean: max(0, l.sum.MeanMs-g[0]), p95: max(0, l.sum.P95Ms-g[1])}
			}
		}
		for _, l := range loads {
			if l.balancer != sources[r.uri] {
				continue
			}
			if l.sum.Failures > 0 || float64(l.sum.Requests) < 0.8*l.rate*loadFor.Seconds() {
				t.Fatalf("load %s %s: %d requests, %d failures", l.balancer, l.pool, l.sum.Requests, l.sum.Failures)
			}
			g, ok := got[l.pool]
			if !ok {
				t.Fatalf("%s: no pool %s recorded", r.uri, l.pool)
			}
			scheme, _, _ := strings.Cut(r.uri, ":")
			p95Rel := clientViewP95Rel
			if scheme == "haproxy+unix" {
				p95Rel = clientViewImputedP95Rel
			}
			rows = append(rows, clientViewRow{source: scheme, pool: l.pool, clientMean: l.sum.MeanMs, clientP95: l.sum.P95Ms,
				lbtuneMean: g[0], lbtuneP95: g[1], requests: g[2],
				meanOK: within(g[0], l.sum.MeanMs, clientViewMeanRel, clientViewMeanAbs+floor.mean),
				p95OK:  within(g[1], l.sum.P95Ms, p95Rel, clientViewP95Abs+floor.p95)})
		}
	}
	return rows
}
