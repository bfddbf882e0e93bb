package chart

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lbtune/lbtune/collector"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// History is everything charted for one pool.
type History struct {
	// Pool is the pool's name.
	Pool string
	// Points are the per-interval states, in time order.
	Points []collector.PoolPoint
	// Metric are the decision metric values, in time order.
	Metric []MetricPoint
	// Target is the response-time target; 0 when unknown.
	Target time.Duration
	// Phases are load phases to shade, when known.
	Phases []Phase
}

// Series is one line of a chart. Its points are split into segments
// wherever there is nothing to draw: an interval without requests has no
// response time, and a stretch without snapshots (the recorder stopped)
// has no values at all.
type Series struct {
	// Name is the legend entry.
	Name string
	// Segments are the runs of points drawn as one line each, X in the
	// chart's time unit from the first point.
	Segments []plotter.XYs
	// Colour indexes the palette.
	Colour int
	// Dashed draws a dashed line (the target).
	Dashed bool
	// Step draws a step function (counts).
	Step bool
}

// Points counts the points of every segment.
func (s Series) Points() int {
	n := 0
	for _, seg := range s.Segments {
		n += len(seg)
	}
	return n
}

// Chart is the content of one PNG file.
type Chart struct {
	// File is the file name (no directory).
	File string
	// Title is the chart's title, XLabel and YLabel its axis labels.
	Title, XLabel, YLabel string
	// Series are the lines, in legend order.
	Series []Series
	// Phases are labelled vertical lines (X in the chart's time unit).
	Phases []PhaseMark
	// XMax is the time of the last point: every chart of a pool spans 0..XMax.
	XMax float64
}

// PhaseMark is a phase start drawn on a chart.
type PhaseMark struct {
	X     float64
	Label string
}

// gapFactor: consecutive points further apart than gapFactor times the
// usual interval are not joined (no snapshots were taken in between).
const gapFactor = 3

// timeUnit picks the x axis unit for a span: seconds up to 20 minutes,
// minutes up to 10 hours, hours beyond.
func timeUnit(span time.Duration) (time.Duration, string) {
	switch {
	case span <= 20*time.Minute:
		return time.Second, "seconds"
	case span <= 10*time.Hour:
		return time.Minute, "minutes"
	}
	return time.Hour, "hours"
}

// FileName makes a pool name safe and readable as the start of a file
// name: characters other than letters, digits, '-' and '.' become '_', and
// leading or trailing '_' and '.' are dropped ("::nogroups" -> "nogroups").
func FileName(pool string) string {
	s := strings.Trim(safeName(pool), "_.")
	if s == "" {
		return "pool"
	}
	return s
}

// Charts builds the charts WritePNGs draws for h: POOL-load (request rate
// and concurrent requests), POOL-latency (mean and p95 response time
// against the target), POOL-servers and, when there are decisions with
// metrics, POOL-decision-metric. Response times are not drawn for
// intervals without requests (gaps, not 0 ms), and no line crosses a
// stretch without snapshots. It returns nil when h has no points.
func Charts(h History) []Chart {
	if len(h.Points) == 0 {
		return nil
	}
	t0 := h.Points[0].Time
	span := h.Points[len(h.Points)-1].Time.Sub(t0)
	unit, unitName := timeUnit(span)
	x := func(t time.Time) float64 { return float64(t.Sub(t0)) / float64(unit) }
	maxStep := gapFactor * typicalStep(h.Points)
	// line splits the points into segments: a point is skipped when ok is
	// false, and a segment ends at a skipped point or a gap in time.
	line := func(f func(collector.PoolPoint) float64, ok func(collector.PoolPoint) bool) []plotter.XYs {
		var segs []plotter.XYs
		var cur plotter.XYs
		for i, p := range h.Points {
			v := f(p)
			if (ok != nil && !ok(p)) || math.IsNaN(v) || math.IsInf(v, 0) {
				if len(cur) > 0 {
					segs, cur = append(segs, cur), nil
				}
				continue
			}
			if i > 0 && len(cur) > 0 && maxStep > 0 && p.Time.Sub(h.Points[i-1].Time) > maxStep {
				segs, cur = append(segs, cur), nil
			}
			cur = append(cur, plotter.XY{X: x(p.Time), Y: v})
		}
		if len(cur) > 0 {
			segs = append(segs, cur)
		}
		return segs
	}
	served := func(p collector.PoolPoint) bool { return p.Rate > 0 }
	var phases []PhaseMark
	last := x(h.Points[len(h.Points)-1].Time)
	for _, ph := range h.Phases {
		if px := x(ph.Start); px >= 0 && px <= last {
			phases = append(phases, PhaseMark{X: px, Label: ph.Label})
		}
	}
	name := FileName(h.Pool)
	title := func(what string) string {
		return fmt.Sprintf("%s: %s from %s", h.Pool, what, t0.UTC().Format("2006-01-02 15:04:05Z"))
	}
	out := []Chart{{
		File: name + "-load.png", Title: title("load"), XLabel: unitName, YLabel: "requests/s, requests in progress", Phases: phases,
		Series: []Series{
			{Name: "request rate (req/s)", Segments: line(func(p collector.PoolPoint) float64 { return p.Rate }, nil), Colour: 0},
			{Name: "concurrent requests", Segments: line(func(p collector.PoolPoint) float64 { return p.Active }, nil), Colour: 1},
		},
	}}
	lat := Chart{File: name + "-latency.png", Title: title("response time"), XLabel: unitName, YLabel: "ms", Phases: phases,
		Series: []Series{{Name: "mean", Segments: line(func(p collector.PoolPoint) float64 { return p.MeanMs },
			func(p collector.PoolPoint) bool { return served(p) && p.MeanMs > 0 }), Colour: 0}}}
	if hasP95(h.Points) {
		lat.Series = append(lat.Series, Series{Name: "p95 (max over servers)", Segments: line(func(p collector.PoolPoint) float64 { return p.P95Ms },
			func(p collector.PoolPoint) bool { return served(p) && p.P95Ms > 0 }), Colour: 2})
	}
	if h.Target > 0 {
		target := float64(h.Target) / float64(time.Millisecond)
		lat.Series = append(lat.Series, Series{Name: fmt.Sprintf("target %s", h.Target), Dashed: true, Colour: 3,
			Segments: []plotter.XYs{{{X: 0, Y: target}, {X: last, Y: target}}}})
	}
	out = append(out, lat, Chart{File: name + "-servers.png", Title: title("servers"), XLabel: unitName, YLabel: "servers serving", Phases: phases,
		Series: []Series{{Name: "servers", Step: true, Segments: line(func(p collector.PoolPoint) float64 { return float64(p.Servers) }, nil), Colour: 4}}})
	if len(h.Metric) > 0 {
		c := Chart{File: name + "-decision-metric.png", Title: title("decision metric"), XLabel: unitName, YLabel: "value", Phases: phases}
		byName := map[string]plotter.XYs{}
		var names []string
		for _, m := range h.Metric {
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				continue
			}
			if _, ok := byName[m.Name]; !ok {
				names = append(names, m.Name)
			}
			byName[m.Name] = append(byName[m.Name], plotter.XY{X: x(m.Time), Y: m.Value})
		}
		for i, n := range names {
			c.Series = append(c.Series, Series{Name: n, Segments: []plotter.XYs{byName[n]}, Colour: i})
		}
		out = append(out, c)
	}
	for i := range out {
		out[i].XMax = last
	}
	return out
}

// typicalStep is the median time between consecutive points (0 for fewer
// than two).
func typicalStep(pts []collector.PoolPoint) time.Duration {
	if len(pts) < 2 {
		return 0
	}
	d := make([]time.Duration, 0, len(pts)-1)
	for i := 1; i < len(pts); i++ {
		d = append(d, pts[i].Time.Sub(pts[i-1].Time))
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// WritePNGs writes the pool's charts (see Charts) into dir and returns the
// files written. File names start with FileName(h.Pool).
func WritePNGs(dir string, h History) ([]string, error) {
	if len(h.Points) == 0 {
		return nil, fmt.Errorf("chart pool %s: no data points", h.Pool)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chart pool %s: %w", h.Pool, err)
	}
	var written []string
	for _, c := range Charts(h) {
		path := filepath.Join(dir, c.File)
		if err := c.save(path); err != nil {
			return written, fmt.Errorf("chart pool %s: save %s: %w", h.Pool, path, err)
		}
		written = append(written, path)
	}
	return written, nil
}

// Size of every PNG, and the blank margin around the drawing.
const (
	pngWidth  = 20 * vg.Centimeter
	pngHeight = 9 * vg.Centimeter
	pngMargin = 6 // points
)

// save draws c: the plot on the left, its legend in a column on the right
// (never over the lines), with a margin so that nothing is clipped.
func (c Chart) save(path string) error {
	p := plot.New()
	p.Title.Text = c.Title
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = c.XLabel
	p.Y.Label.Text = c.YLabel
	p.X.Tick.Marker = ticker{}
	p.Y.Tick.Marker = ticker{}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	legend := plot.NewLegend()
	legend.Left, legend.Top = true, true
	legend.Padding = vg.Points(4)
	for _, s := range c.Series {
		var first *plotter.Line
		for _, seg := range s.Segments {
			l, err := plotter.NewLine(seg)
			if err != nil {
				return fmt.Errorf("series %s: %w", s.Name, err)
			}
			l.Color = palette[s.Colour%len(palette)]
			l.Width = vg.Points(1.5)
			if s.Dashed {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			}
			if s.Step {
				l.StepStyle = plotter.PostStep
			}
			p.Add(l)
			if first == nil {
				first = l
			}
		}
		if first != nil {
			legend.Add(s.Name, first)
		} else {
			legend.Add(s.Name+" (no data)", &plotter.Line{LineStyle: draw.LineStyle{Color: palette[s.Colour%len(palette)], Width: vg.Points(1.5)}})
		}
	}
	// Every chart of the pool spans the same time.
	p.X.Min, p.X.Max = 0, max(p.X.Max, c.XMax)
	// Headroom above the highest value for the phase labels.
	p.Y.Max *= 1.08
	if p.Y.Max <= p.Y.Min {
		p.Y.Max = p.Y.Min + 1
	}
	for _, ph := range c.Phases {
		l, err := plotter.NewLine(plotter.XYs{{X: ph.X, Y: 0}, {X: ph.X, Y: p.Y.Max}})
		if err != nil {
			continue
		}
		l.Color = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 255}
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(l)
		labels, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: ph.X, Y: p.Y.Max}}, Labels: []string{ph.Label}})
		if err == nil {
			labels.Offset = vg.Point{X: vg.Points(2), Y: -vg.Points(10)}
			p.Add(labels)
		}
	}

	cw, err := draw.NewFormattedCanvas(pngWidth, pngHeight, "png")
	if err != nil {
		return err
	}
	dc := draw.New(cw)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	m := vg.Points(pngMargin)
	dc = draw.Crop(dc, m, -m, m, -m)
	lw := legend.Rectangle(dc).Size().X + vg.Points(8)
	p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
	titleH := p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
	legend.Draw(draw.Crop(dc, dc.Size().X-lw+vg.Points(8), 0, 0, -titleH))

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := cw.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ticker is gonum's default tick placement with short labels: "25" and
// "2500" rather than "25.00" and "2500.00", "25k" for 25000.
type ticker struct{}

// Ticks implements plot.Ticker.
func (ticker) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	labelled := 0
	for _, t := range ts {
		if t.Label != "" {
			labelled++
		}
	}
	// Fewer than 4 labels (gonum aims at 3): label the minor ticks too
	// when that makes at most 10.
	all := labelled < 4 && len(ts) <= 10
	for i := range ts {
		if ts[i].Label != "" || all {
			ts[i].Label = TickLabel(ts[i].Value)
		}
	}
	return ts
}

// TickLabel formats an axis value with at most 4 significant digits and
// no trailing zeros: 25, 2500, 0.25, 25k, 1.2M.
func TickLabel(v float64) string {
	a := math.Abs(v)
	suffix := ""
	switch {
	case a >= 1e6:
		v, suffix = v/1e6, "M"
	case a >= 1e4:
		v, suffix = v/1e3, "k"
	}
	if math.Abs(v) < 1e-9 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + suffix
}

var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 255},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 255},
	{R: 0xd6, G: 0x27, B: 0x28, A: 255},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 255},
	{R: 0x94, G: 0x67, B: 0xbd, A: 255},
}

func hasP95(pts []collector.PoolPoint) bool {
	for _, p := range pts {
		if p.P95Ms > 0 {
			return true
		}
	}
	return false
}
