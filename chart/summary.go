package chart

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/testbed/dist"
	"github.com/lbtune/lbtune/testbed/loadgen"
)

// ClientStats are what the load generator saw of one pool's requests.
type ClientStats struct {
	Requests int
	// Failed counts the requests loadgen.FailureKind calls failed.
	Failed int
	// P95Ms is the nearest-rank p95 of every request's latency, failed
	// ones included (as `lbtune load` reports it).
	P95Ms float64
	// done holds each request's completion time (sent + latency) and
	// latency, in record order: what Summarize needs to compute the
	// clients' figure over the balancer's own intervals.
	done []clientDone
}

// clientDone is one request as the clients saw it end.
type clientDone struct {
	at time.Time
	ms float64
}

// ReadClientStats reads `lbtune load --out` records (CSV or JSON lines)
// and returns the figures of each pool, a request's pool being the first
// segment of its URL's path: the testbed routes /POOL to pool POOL.
func ReadClientStats(r io.Reader) (map[string]ClientStats, error) {
	stats := map[string]ClientStats{}
	lat := map[string][]float64{}
	err := loadgen.ReadRecords(r, func(rec loadgen.Record) error {
		pool := targetPool(rec.Target)
		s := stats[pool]
		s.Requests++
		if loadgen.FailureKind(rec.Status, rec.Error) != "" {
			s.Failed++
		}
		s.done = append(s.done, clientDone{at: rec.Time.Add(time.Duration(rec.LatencyMs * float64(time.Millisecond))), ms: rec.LatencyMs})
		stats[pool] = s
		lat[pool] = append(lat[pool], rec.LatencyMs)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client stats: %w", err)
	}
	for pool, s := range stats {
		s.P95Ms = dist.Describe(lat[pool]).P95
		stats[pool] = s
	}
	return stats, nil
}

// targetPool is the first path segment of a target URL ("" for none).
func targetPool(target string) string {
	p := target
	if u, err := url.Parse(target); err == nil {
		p = u.Path
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return first
}

// ScaleChange is one applied decision that changed a pool's server count.
type ScaleChange struct {
	// At is the decision's time from the start of the run.
	At       time.Duration
	From, To int
	Policy   string
}

// PoolSummary is one pool's line of a run Summary.
type PoolSummary struct {
	Pool string
	// Client holds the load generator's figures; nil when there are none,
	// and then Requests and P95Ms are the balancer's.
	Client *ClientStats
	// Requests are the requests the balancer counted (rate x interval),
	// Failed those it counted as errors (error ratio x requests) and P95Ms
	// their request-weighted mean interval p95 estimate
	// (collector.PoolRates.P95Ms).
	Requests float64
	Failed   float64
	P95Ms    float64
	// ClientIntervalP95Ms is the clients' figure for the statistic P95Ms
	// is: over the same intervals (those with a balancer p95), the p95 of
	// the requests the clients saw end in each, weighted by their count.
	// A run's P95Ms (a mean of interval p95s) is below the p95 of all its
	// requests whenever the tail comes in bursts, so only this one tells
	// how well lbtune saw what the clients saw. 0 without client records.
	ClientIntervalP95Ms float64
	// InFlight is the pool's requests in flight (PoolPoint Active + Queue)
	// as lbtune saw them, weighted by interval length over the run, and
	// ClientInFlight the clients' own figure over the same span: each
	// request's time from sent to answered, summed, over the span's length.
	// ClientInFlight is 0 without client records.
	InFlight, ClientInFlight float64
	// Target is the pool's p95 target; 0 when unknown.
	Target time.Duration
	// ServerMinutes is the serving servers integrated over the run.
	ServerMinutes float64
	// MinServers and MaxServers are the least and most servers serving.
	MinServers, MaxServers int
	// Changes are the server-count changes, in time order.
	Changes []ScaleChange
	// Decisions counts the pool's decisions by policy, then outcome.
	Decisions map[string]map[agent.Outcome]int
}

// Summary is a run in a screen: per pool, requests, failures, p95 against
// the target, server-minutes, scaling and decisions.
type Summary struct {
	Start    time.Time
	Duration time.Duration
	// ClientSource says where the client figures come from ("" when the
	// balancer's figures stand in).
	ClientSource string
	Pools        []PoolSummary
}

// SummaryInput is what Summarize reads: each pool's points as one source
// reports them, every decision, the targets and the client figures (both
// by pool; either may be nil).
type SummaryInput struct {
	Points       map[string][]collector.PoolPoint
	Decisions    []agent.Decision
	Targets      map[string]time.Duration
	Clients      map[string]ClientStats
	ClientSource string
}

// Summarize computes a run's Summary. The run starts at the earliest
// point or decision and ends at the latest point. A pool's target is
// in.Targets's, else the last target_ms its decisions recorded.
func Summarize(in SummaryInput) Summary {
	var start, end time.Time
	see := func(t time.Time, isEnd bool) {
		if start.IsZero() || t.Before(start) {
			start = t
		}
		if isEnd && t.After(end) {
			end = t
		}
	}
	for _, pts := range in.Points {
		for _, p := range pts {
			see(p.Time, true)
		}
	}
	for _, d := range in.Decisions {
		see(d.Time, false)
	}
	s := Summary{Start: start, ClientSource: in.ClientSource}
	if end.After(start) {
		s.Duration = end.Sub(start)
	}
	names := map[string]bool{}
	for n := range in.Points {
		names[n] = true
	}
	for _, d := range in.Decisions {
		names[d.Pool] = true
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		s.Pools = append(s.Pools, summarizePool(n, start, in))
	}
	return s
}

func summarizePool(name string, start time.Time, in SummaryInput) PoolSummary {
	ps := PoolSummary{Pool: name, Target: in.Targets[name], Decisions: map[string]map[agent.Outcome]int{}}
	if c, ok := in.Clients[name]; ok {
		ps.Client = &c
	}
	pts := slices.Clone(in.Points[name])
	slices.SortStableFunc(pts, func(a, b collector.PoolPoint) int { return a.Time.Compare(b.Time) })
	var p95w, span float64
	for i, p := range pts {
		if i == 0 || p.Servers < ps.MinServers {
			ps.MinServers = p.Servers
		}
		ps.MaxServers = max(ps.MaxServers, p.Servers)
		if i == 0 {
			continue
		}
		// A point describes the interval ending at its time.
		dt := p.Time.Sub(pts[i-1].Time).Seconds()
		ps.ServerMinutes += float64(p.Servers) * dt / 60
		ps.InFlight += (p.Active + p.Queue) * dt
		span += dt
		n := p.Rate * dt
		ps.Requests += n
		ps.Failed += p.ErrorRatio * n
		if p.P95Ms > 0 {
			ps.P95Ms += p.P95Ms * n
			p95w += n
		}
	}
	if p95w > 0 {
		ps.P95Ms /= p95w
	}
	if span > 0 {
		ps.InFlight /= span
	}
	if ps.Client != nil {
		ps.ClientIntervalP95Ms = clientIntervalP95(pts, ps.Client.done)
		if span > 0 {
			ps.ClientInFlight = clientInFlight(pts[0].Time, pts[len(pts)-1].Time, ps.Client.done)
		}
	}
	ds := slices.Clone(in.Decisions)
	slices.SortStableFunc(ds, func(a, b agent.Decision) int { return a.Time.Compare(b.Time) })
	// servers is the count before a decision: the last one a decision
	// changed it to, else the last point at or before it.
	last := -1
	for _, d := range ds {
		if d.Pool != name {
			continue
		}
		pol := cmp.Or(d.Policy, "-")
		if ps.Decisions[pol] == nil {
			ps.Decisions[pol] = map[agent.Outcome]int{}
		}
		ps.Decisions[pol][cmp.Or(d.Outcome, "-")]++
		if v, ok := d.Metrics["target_ms"]; ok && in.Targets[name] == 0 && v > 0 {
			ps.Target = time.Duration(v * float64(time.Millisecond))
		}
		if d.Outcome != agent.OutcomeApplied || d.Servers <= 0 {
			continue
		}
		from := last
		if from < 0 {
			from = serversAt(pts, d.Time)
		}
		if from >= 0 && from != d.Servers {
			ps.Changes = append(ps.Changes, ScaleChange{At: d.Time.Sub(start), From: from, To: d.Servers, Policy: pol})
		}
		last = d.Servers
	}
	return ps
}

// clientIntervalP95 is the request-weighted mean, over the intervals
// (pts[i-1].Time, pts[i].Time] whose point has a p95, of the nearest-rank
// p95 of the client requests that ended in the interval; 0 when no such
// request ended in any of them.
func clientIntervalP95(pts []collector.PoolPoint, done []clientDone) float64 {
	done = slices.Clone(done)
	slices.SortFunc(done, func(a, b clientDone) int { return a.at.Compare(b.at) })
	var sum, w float64
	j := 0
	var lat []float64
	for i := 1; i < len(pts); i++ {
		lo, hi := pts[i-1].Time, pts[i].Time
		for j < len(done) && !done[j].at.After(lo) {
			j++
		}
		lat = lat[:0]
		for ; j < len(done) && !done[j].at.After(hi); j++ {
			lat = append(lat, done[j].ms)
		}
		if pts[i].P95Ms <= 0 || len(lat) == 0 {
			continue
		}
		n := float64(len(lat))
		sum += dist.Describe(lat).P95 * n
		w += n
	}
	if w == 0 {
		return 0
	}
	return sum / w
}

// clientInFlight is the clients' mean number of requests in flight over
// (lo, hi]: the summed overlap of each request's [sent, answered] with it
// over its length.
func clientInFlight(lo, hi time.Time, done []clientDone) float64 {
	var busy time.Duration
	for _, d := range done {
		start := d.at.Add(-time.Duration(d.ms * float64(time.Millisecond)))
		a, b := start, d.at
		if a.Before(lo) {
			a = lo
		}
		if b.After(hi) {
			b = hi
		}
		if b.After(a) {
			busy += b.Sub(a)
		}
	}
	return collector.InFlight(float64(busy)/float64(time.Millisecond), hi.Sub(lo))
}

// serversAt is the server count of the last point at or before t, or of
// the first point when none is; -1 without points.
func serversAt(pts []collector.PoolPoint, t time.Time) int {
	if len(pts) == 0 {
		return -1
	}
	n := pts[0].Servers
	for _, p := range pts {
		if p.Time.After(t) {
			break
		}
		n = p.Servers
	}
	return n
}

// Summary summarises the recording: each pool's points as its first source
// reports them, with the targets and client figures given (either may be
// nil; clientSource names the client figures).
func (r *Recording) Summary(targets map[string]time.Duration, clients map[string]ClientStats, clientSource string) Summary {
	in := SummaryInput{Points: map[string][]collector.PoolPoint{}, Decisions: r.decisions,
		Targets: targets, Clients: clients, ClientSource: clientSource}
	for _, k := range r.Pools("") {
		if _, ok := in.Points[k.Pool]; !ok {
			in.Points[k.Pool] = collector.PoolPoints(nil, r.snaps[k], k.Pool)
		}
	}
	return Summarize(in)
}

// maxChanges is how many server-count changes WriteText lists per pool
// (a pool out in three steps and back in in four, as in make demo, fits),
// so the summary stays on one screen.
const maxChanges = 8

// outcomes are the decision outcomes in the order WriteText shows them.
var outcomes = []agent.Outcome{agent.OutcomeApplied, agent.OutcomeNoop, agent.OutcomeRefused, agent.OutcomeFailed, agent.OutcomeDryRun}

// WriteText prints the summary on one screen: a line per pool (requests,
// failed, p95 against the target, server-minutes, servers), the
// server-count changes, and the decisions by policy and outcome.
func (s Summary) WriteText(w io.Writer) error {
	src := "client side (" + s.ClientSource + ")"
	if s.ClientSource == "" {
		src = "the balancer's counts and p95 estimate (no client records)"
	}
	var b strings.Builder
	if s.Start.IsZero() {
		b.WriteString("run: nothing recorded\n")
	} else {
		fmt.Fprintf(&b, "run: %s from %s UTC\n", fmtOffset(s.Duration), s.Start.UTC().Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintf(&b, "requests, failed, p95: %s\n\n", src)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\trequests\tfailed\tp95 ms\ttarget ms\tp95/target\tserver-min\tservers\t")
	for _, p := range s.Pools {
		req, failed, p95 := fmt.Sprintf("%.0f", p.Requests), fmt.Sprintf("%.0f", p.Failed), p.P95Ms
		if p.Client != nil {
			req, failed, p95 = fmt.Sprint(p.Client.Requests), fmt.Sprint(p.Client.Failed), p.Client.P95Ms
		}
		target, ratio := "-", "-"
		if p.Target > 0 {
			tms := float64(p.Target) / float64(time.Millisecond)
			target, ratio = fmt.Sprintf("%.0f", tms), fmt.Sprintf("%.2f", p95/tms)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%s\t%.1f\t%d..%d\t\n", p.Pool, req, failed, p95, target, ratio, p.ServerMinutes, p.MinServers, p.MaxServers)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	s.writeView(&b)

	b.WriteString("\nserver-count changes (applied decisions; time from the start):\n")
	listed := false
	for _, p := range s.Pools {
		for i, c := range p.Changes {
			if i == maxChanges {
				fmt.Fprintf(&b, "  %-8s ... %d more\n", p.Pool, len(p.Changes)-maxChanges)
				break
			}
			dir := "out"
			if c.To < c.From {
				dir = "in "
			}
			fmt.Fprintf(&b, "  %-8s %7s  %s %d -> %d  %s\n", p.Pool, "+"+fmtOffset(c.At), dir, c.From, c.To, c.Policy)
			listed = true
		}
	}
	if !listed {
		b.WriteString("  none\n")
	}

	b.WriteString("\ndecisions by policy and outcome:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "pool\tpolicy\t")
	for _, o := range outcomes {
		fmt.Fprintf(tw, "%s\t", o)
	}
	fmt.Fprintln(tw, "other\t")
	for _, p := range s.Pools {
		for _, pol := range slices.Sorted(maps.Keys(p.Decisions)) {
			byOutcome := p.Decisions[pol]
			fmt.Fprintf(tw, "%s\t%s\t", p.Pool, pol)
			known := 0
			for _, o := range outcomes {
				fmt.Fprintf(tw, "%d\t", byOutcome[o])
				known += byOutcome[o]
			}
			total := 0
			for _, n := range byOutcome {
				total += n
			}
			fmt.Fprintf(tw, "%d\t\n", total-known)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	return nil
}

// fmtOffset prints a duration as m:ss (h:mm:ss from an hour).
func fmtOffset(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, sec := int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	}
	return fmt.Sprintf("%d:%02d", m, sec)
}

// writeView prints, when client records are given, lbtune's p95 beside
// the clients' over the same intervals (PoolSummary.ClientIntervalP95Ms):
// how well the source it decided on saw the clients' latency.
func (s Summary) writeView(b *strings.Builder) {
	var rows []PoolSummary
	for _, p := range s.Pools {
		if p.Client != nil && p.P95Ms > 0 && p.ClientIntervalP95Ms > 0 {
			rows = append(rows, p)
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("\np95 as lbtune saw it against the clients, over the same intervals (request-weighted mean of interval p95s):\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\tlbtune ms\tclients ms\tlbtune/clients\t")
	for _, p := range rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t\n", p.Pool, p.P95Ms, p.ClientIntervalP95Ms, p.P95Ms/p.ClientIntervalP95Ms)
	}
	_ = tw.Flush()
	var busy []PoolSummary
	for _, p := range rows {
		if p.ClientInFlight > 0 {
			busy = append(busy, p)
		}
	}
	if len(busy) == 0 {
		return
	}
	b.WriteString("\nrequests in flight as lbtune saw them (active + queue) against the clients', over the same span (time-weighted mean):\n")
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\tlbtune\tclients\tlbtune/clients\t")
	for _, p := range busy {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t\n", p.Pool, p.InFlight, p.ClientInFlight, p.InFlight/p.ClientInFlight)
	}
	_ = tw.Flush()
}
