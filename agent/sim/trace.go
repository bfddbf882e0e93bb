package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrEmptyTrace is returned when a trace has no data rows.
var ErrEmptyTrace = errors.New("trace has no data rows")

// Trace is a piecewise-constant arrival rate: Rates[i] requests per second
// from Times[i] until Times[i+1] (the last step lasts End - Times[i]). Times
// are seconds from the trace start, strictly increasing, the first >= 0.
type Trace struct {
	// Name identifies the trace in errors and reports (usually its file).
	Name  string
	Times []float64
	Rates []float64
	// End is when the last step ends, in seconds.
	End float64
}

// ReadTraceFile parses the `t,rps` CSV file at path (see ParseTrace).
func ReadTraceFile(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read trace: %w", err)
	}
	defer f.Close()
	return ParseTrace(f, path)
}

// MaxTraceSeconds bounds a trace's times (10 years): far beyond any trace,
// and small enough that a step's end is past its start and every time is a
// valid time.Duration.
const MaxTraceSeconds = 10 * 365 * 24 * 3600.0

// ParseTrace parses a rate trace: a header line `t,rps`, then one row per
// step with t in seconds from the start (strictly increasing, >= 0, at most
// MaxTraceSeconds) and the mean rate rps (finite, >= 0) until the next row.
// The last step lasts as long as the one before it (1 s for a one-row trace).
// Errors name the trace and the line: "traces/x.csv:12: negative rate -3".
func ParseTrace(r io.Reader, name string) (*Trace, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	tr := &Trace{Name: name}
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
			if text != "t,rps" {
				return nil, fmt.Errorf("%s:%d: header is %q, want \"t,rps\"", name, line, text)
			}
			continue
		}
		if text == "" {
			continue
		}
		ts, rs, ok := strings.Cut(text, ",")
		if !ok || strings.Contains(rs, ",") {
			return nil, fmt.Errorf("%s:%d: want 2 fields t,rps, got %q", name, line, text)
		}
		t, err := strconv.ParseFloat(strings.TrimSpace(ts), 64)
		if err != nil || math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("%s:%d: bad time %q", name, line, ts)
		}
		rate, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
		if err != nil || math.IsNaN(rate) || math.IsInf(rate, 0) {
			return nil, fmt.Errorf("%s:%d: bad rate %q", name, line, rs)
		}
		if t < 0 {
			return nil, fmt.Errorf("%s:%d: negative time %v", name, line, t)
		}
		if t > MaxTraceSeconds {
			return nil, fmt.Errorf("%s:%d: time %v s is beyond %v s (10 years)", name, line, t, MaxTraceSeconds)
		}
		if rate < 0 {
			return nil, fmt.Errorf("%s:%d: negative rate %v", name, line, rate)
		}
		if n := len(tr.Times); n > 0 && t <= tr.Times[n-1] {
			return nil, fmt.Errorf("%s:%d: time %v not after previous time %v", name, line, t, tr.Times[n-1])
		}
		tr.Times = append(tr.Times, t)
		tr.Rates = append(tr.Rates, rate)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if line == 0 {
		return nil, fmt.Errorf("%s:1: %w (no header)", name, ErrEmptyTrace)
	}
	if len(tr.Times) == 0 {
		return nil, fmt.Errorf("%s:%d: %w", name, line, ErrEmptyTrace)
	}
	n := len(tr.Times)
	step := 1.0
	if n > 1 {
		step = tr.Times[n-1] - tr.Times[n-2]
	}
	tr.End = tr.Times[n-1] + step
	if !(tr.End > tr.Times[n-1]) {
		// The last gap is below the last time's precision (a tie that rounds
		// back to it): the step ends at the next representable time.
		tr.End = math.Nextafter(tr.Times[n-1], math.Inf(1))
	}
	return tr, nil
}

// Duration is the trace's length from t = 0.
func (t *Trace) Duration() time.Duration { return seconds(t.End) }

// Peak is the largest step rate.
func (t *Trace) Peak() float64 {
	var p float64
	for _, r := range t.Rates {
		p = math.Max(p, r)
	}
	return p
}

// Mean is the time-weighted mean rate over [Times[0], End).
func (t *Trace) Mean() float64 {
	var sum float64
	for i, r := range t.Rates {
		sum += r * (t.stepEnd(i) - t.Times[i])
	}
	if d := t.End - t.Times[0]; d > 0 {
		return sum / d
	}
	return 0
}

// RateAt is the rate at time s seconds; 0 before the first and after the
// last step.
func (t *Trace) RateAt(s float64) float64 {
	if s < t.Times[0] || s >= t.End {
		return 0
	}
	lo, hi := 0, len(t.Times)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if t.Times[mid] <= s {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return t.Rates[lo]
}

// MaxRate is the largest rate of any step overlapping [from, to) seconds.
func (t *Trace) MaxRate(from, to float64) float64 {
	var m float64
	for i := range t.Times {
		if t.Times[i] >= to {
			break
		}
		if t.stepEnd(i) > from {
			m = math.Max(m, t.Rates[i])
		}
	}
	return m
}

func (t *Trace) stepEnd(i int) float64 {
	if i+1 < len(t.Times) {
		return t.Times[i+1]
	}
	return t.End
}

// Scaled returns a copy with every rate multiplied by f (f >= 0).
func (t *Trace) Scaled(f float64) *Trace {
	c := t.clone()
	for i := range c.Rates {
		c.Rates[i] *= f
	}
	return c
}

// Stretched returns a copy whose time axis is multiplied by f > 0 (time
// scaling: f = 0.5 plays the trace twice as fast), rates unchanged.
func (t *Trace) Stretched(f float64) *Trace {
	c := t.clone()
	for i := range c.Times {
		c.Times[i] *= f
	}
	c.End *= f
	return c
}

// Slice returns the part of the trace in [from, to), shifted so that it
// starts at 0; to <= 0 means the end. It fails when the slice is empty.
func (t *Trace) Slice(from, to time.Duration) (*Trace, error) {
	f, e := from.Seconds(), to.Seconds()
	if to <= 0 || e > t.End {
		e = t.End
	}
	if f < 0 || f >= e {
		return nil, fmt.Errorf("slice %s [%v, %v) of a %v trace: %w", t.Name, from, to, t.Duration(), ErrEmptyTrace)
	}
	c := &Trace{Name: t.Name, End: e - f}
	for i := range t.Times {
		s, end := t.Times[i], t.stepEnd(i)
		if end <= f || s >= e {
			continue
		}
		c.Times = append(c.Times, math.Max(s, f)-f)
		c.Rates = append(c.Rates, t.Rates[i])
	}
	if len(c.Times) == 0 || c.Times[0] > 0 {
		// The slice starts in a gap before the first step: rate 0 there.
		c.Times = append([]float64{0}, c.Times...)
		c.Rates = append([]float64{0}, c.Rates...)
	}
	return c, nil
}

func (t *Trace) clone() *Trace {
	return &Trace{Name: t.Name, Times: append([]float64(nil), t.Times...), Rates: append([]float64(nil), t.Rates...), End: t.End}
}

// Phase is one stretch of a synthetic trace at a constant rate.
type Phase struct {
	Duration time.Duration
	RPS      float64
}

// Spike raises the rate to RPS during [At, At+Duration).
type Spike struct {
	At, Duration time.Duration
	RPS          float64
}

// Synthetic builds a trace from consecutive phases with spikes laid over
// them (a spike replaces the phase rate while it lasts). It panics on a
// non-positive phase duration or a negative rate (programmer error).
func Synthetic(name string, phases []Phase, spikes []Spike) *Trace {
	type edge struct{ t, rate float64 }
	var base []edge
	var t float64
	for _, p := range phases {
		if p.Duration <= 0 || p.RPS < 0 {
			panic("sim: synthetic phase with non-positive duration or negative rate")
		}
		base = append(base, edge{t, p.RPS})
		t += p.Duration.Seconds()
	}
	end := t
	bt := &Trace{Name: name, End: end}
	for _, e := range base {
		bt.Times = append(bt.Times, e.t)
		bt.Rates = append(bt.Rates, e.rate)
	}
	// Cut points: phase starts, spike starts and ends.
	cuts := append([]float64(nil), bt.Times...)
	for _, s := range spikes {
		if s.RPS < 0 {
			panic("sim: synthetic spike with negative rate")
		}
		cuts = append(cuts, s.At.Seconds(), (s.At + s.Duration).Seconds())
	}
	slices.Sort(cuts)
	out := &Trace{Name: name, End: end}
	for i, c := range cuts {
		if c >= end || (i > 0 && c == cuts[i-1]) {
			continue
		}
		r := bt.RateAt(c)
		for _, s := range spikes {
			if c >= s.At.Seconds() && c < (s.At+s.Duration).Seconds() {
				r = s.RPS
			}
		}
		out.Times = append(out.Times, c)
		out.Rates = append(out.Rates, r)
	}
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
