package chart

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"time"

	"github.com/lbtune/lbtune/collector"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
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

// WritePNGs writes the pool's charts into dir and returns the files written:
// POOL-load.png (request rate and concurrent requests), POOL-latency.png
// (response time against the target), POOL-servers.png and, when there are
// decisions with metrics, POOL-decision-metric.png. Times are seconds from
// the first point.
func WritePNGs(dir string, h History) ([]string, error) {
	if len(h.Points) == 0 {
		return nil, fmt.Errorf("chart pool %s: no data points", h.Pool)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chart pool %s: %w", h.Pool, err)
	}
	t0 := h.Points[0].Time
	sec := func(t time.Time) float64 { return t.Sub(t0).Seconds() }
	xy := func(f func(collector.PoolPoint) float64) plotter.XYs {
		out := make(plotter.XYs, len(h.Points))
		for i, p := range h.Points {
			out[i] = plotter.XY{X: sec(p.Time), Y: f(p)}
		}
		return out
	}
	var written []string
	save := func(name string, p *plot.Plot) error {
		path := filepath.Join(dir, h.Pool+"-"+name+".png")
		if err := p.Save(20*vg.Centimeter, 9*vg.Centimeter, path); err != nil {
			return fmt.Errorf("chart pool %s: save %s: %w", h.Pool, path, err)
		}
		written = append(written, path)
		return nil
	}

	// Load: request rate and concurrency.
	p := newPlot(h, "load", "requests/s, requests in progress")
	addLine(p, "request rate (req/s)", xy(func(p collector.PoolPoint) float64 { return p.Rate }), 0)
	addLine(p, "concurrent requests", xy(func(p collector.PoolPoint) float64 { return p.Active }), 1)
	h.shade(p, sec)
	if err := save("load", p); err != nil {
		return written, err
	}

	// Latency against the target.
	p = newPlot(h, "response time", "ms")
	addLine(p, "mean", xy(func(p collector.PoolPoint) float64 { return p.MeanMs }), 0)
	if hasP95(h.Points) {
		addLine(p, "p95 (max over servers)", xy(func(p collector.PoolPoint) float64 { return p.P95Ms }), 2)
	}
	if h.Target > 0 {
		target := float64(h.Target) / float64(time.Millisecond)
		addLine(p, "target", plotter.XYs{{X: 0, Y: target}, {X: sec(h.Points[len(h.Points)-1].Time), Y: target}}, 3)
	}
	h.shade(p, sec)
	if err := save("latency", p); err != nil {
		return written, err
	}

	// Servers.
	p = newPlot(h, "servers", "servers serving")
	addLine(p, "servers", xy(func(p collector.PoolPoint) float64 { return float64(p.Servers) }), 4)
	h.shade(p, sec)
	if err := save("servers", p); err != nil {
		return written, err
	}

	// The metric each decision used.
	if len(h.Metric) > 0 {
		p = newPlot(h, "decision metric", "value")
		byName := map[string]plotter.XYs{}
		var names []string
		for _, m := range h.Metric {
			if _, ok := byName[m.Name]; !ok {
				names = append(names, m.Name)
			}
			byName[m.Name] = append(byName[m.Name], plotter.XY{X: sec(m.Time), Y: m.Value})
		}
		for i, n := range names {
			addLine(p, n, byName[n], i)
		}
		h.shade(p, sec)
		if err := save("decision-metric", p); err != nil {
			return written, err
		}
	}
	return written, nil
}

func newPlot(h History, what, unit string) *plot.Plot {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %s from %s", h.Pool, what, h.Points[0].Time.UTC().Format("2006-01-02 15:04:05Z"))
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = unit
	p.Y.Min = 0
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 255},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 255},
	{R: 0xd6, G: 0x27, B: 0x28, A: 255},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 255},
	{R: 0x94, G: 0x67, B: 0xbd, A: 255},
}

func addLine(p *plot.Plot, name string, pts plotter.XYs, colour int) {
	l, err := plotter.NewLine(pts)
	if err != nil {
		// NewLine fails only on NaN/Inf values, which Points never produces.
		panic("chart: " + err.Error())
	}
	l.Color = palette[colour%len(palette)]
	l.Width = vg.Points(1.5)
	if name == "target" {
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
}

// shade marks each phase start with a labelled vertical line.
func (h History) shade(p *plot.Plot, sec func(time.Time) float64) {
	if len(h.Phases) == 0 {
		return
	}
	top := p.Y.Max
	if top <= 0 {
		top = 1
	}
	last := sec(h.Points[len(h.Points)-1].Time)
	for _, ph := range h.Phases {
		x := sec(ph.Start)
		if x < 0 || x > last {
			continue // outside the charted time
		}
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}})
		if err != nil {
			continue
		}
		l.Color = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 255}
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(l)
		labels, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: top}}, Labels: []string{ph.Label}})
		if err == nil {
			p.Add(labels)
		}
	}
}

func hasP95(pts []collector.PoolPoint) bool {
	for _, p := range pts {
		if p.P95Ms > 0 {
			return true
		}
	}
	return false
}
