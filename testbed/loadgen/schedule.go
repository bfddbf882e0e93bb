package loadgen

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lbtune/lbtune/testbed/dist"
)

// Phase is a stretch of the load schedule with one mean arrival rate and one
// inter-arrival distribution.
type Phase struct {
	// Duration is how long the phase lasts.
	Duration time.Duration
	// Rate is the mean arrival rate in requests per second (0 = idle).
	Rate float64
	// Dist is the inter-arrival distribution.
	Dist dist.Kind
}

// Schedule is the rate plan of a run: phases played in order. When Repeat is
// set the phases start over after the last one.
type Schedule struct {
	Phases []Phase
	Repeat bool
}

// Constant returns a one-phase schedule of rate req/s with inter-arrival
// distribution k, lasting d.
func Constant(rate float64, k dist.Kind, d time.Duration) Schedule {
	return Schedule{Phases: []Phase{{Duration: d, Rate: rate, Dist: k}}}
}

// Length is the duration of one pass over the phases.
func (s Schedule) Length() time.Duration {
	var t time.Duration
	for _, p := range s.Phases {
		t += p.Duration
	}
	return t
}

// At returns the phase in effect at elapsed time t and when it ends; ok is
// false once a non-repeating schedule is over.
func (s Schedule) At(t time.Duration) (p Phase, end time.Duration, ok bool) {
	n := s.Length()
	if n <= 0 || t < 0 {
		return Phase{}, 0, false
	}
	var base time.Duration
	if t >= n {
		if !s.Repeat {
			return Phase{}, 0, false
		}
		base = t / n * n
		t -= base
	}
	var start time.Duration
	for _, p := range s.Phases {
		if t < start+p.Duration {
			return p, base + start + p.Duration, true
		}
		start += p.Duration
	}
	return Phase{}, 0, false
}

// Expected returns the expected number of arrivals in [0, d): the integral
// of the rate.
func (s Schedule) Expected(d time.Duration) float64 {
	var n float64
	for t := time.Duration(0); t < d; {
		p, end, ok := s.At(t)
		if !ok {
			break
		}
		end = min(end, d)
		n += p.Rate * (end - t).Seconds()
		t = end
	}
	return n
}

// Validate reports every problem with s.
func (s Schedule) Validate() error {
	var errs []error
	if len(s.Phases) == 0 {
		errs = append(errs, errors.New("schedule has no phases"))
	}
	for i, p := range s.Phases {
		if p.Duration <= 0 {
			errs = append(errs, fmt.Errorf("phase %d: duration %v must be positive", i+1, p.Duration))
		}
		if p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0) {
			errs = append(errs, fmt.Errorf("phase %d: rate %v must be a finite non-negative number", i+1, p.Rate))
		}
		if _, err := dist.Parse(string(p.Dist)); err != nil {
			errs = append(errs, fmt.Errorf("phase %d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// phaseDoc is one entry of a phases file.
type phaseDoc struct {
	Duration     string  `yaml:"duration"`
	Rate         float64 `yaml:"rate"`
	Distribution string  `yaml:"distribution"`
}

// ParsePhases decodes a phases document: a YAML or JSON list of
// {duration, rate, distribution} (duration as "30s", distribution defaulting
// to def). Unknown keys are errors.
func ParsePhases(data []byte, def dist.Kind) (Schedule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var docs []phaseDoc
	if err := dec.Decode(&docs); err != nil {
		return Schedule{}, fmt.Errorf("decode phases: %w", err)
	}
	var s Schedule
	var errs []error
	for i, d := range docs {
		dur, err := time.ParseDuration(strings.TrimSpace(d.Duration))
		if err != nil {
			errs = append(errs, fmt.Errorf("phase %d: duration: %w", i+1, err))
		}
		k := def
		if d.Distribution != "" {
			if k, err = dist.Parse(d.Distribution); err != nil {
				errs = append(errs, fmt.Errorf("phase %d: %w", i+1, err))
			}
		}
		s.Phases = append(s.Phases, Phase{Duration: dur, Rate: d.Rate, Dist: k})
	}
	if err := errors.Join(errs...); err != nil {
		return Schedule{}, err
	}
	if err := s.Validate(); err != nil {
		return Schedule{}, err
	}
	return s, nil
}

// LoadPhases reads a phases file (see ParsePhases).
func LoadPhases(path string, def dist.Kind) (Schedule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Schedule{}, fmt.Errorf("read phases: %w", err)
	}
	s, err := ParsePhases(data, def)
	if err != nil {
		return Schedule{}, fmt.Errorf("phases %s: %w", path, err)
	}
	return s, nil
}

// ParseTrace decodes a `t,rps` rate trace (../shared/traces/README.md): t in
// integer seconds at a fixed bucket, rps the mean rate over the bucket. Each
// bucket becomes one phase lasting bucket/speedup with rate rps*scale: time
// is compressed, the rate shape kept.
func ParseTrace(r io.Reader, speedup, scale float64, k dist.Kind) (Schedule, error) {
	if !(speedup > 0) || !(scale > 0) {
		return Schedule{}, fmt.Errorf("speedup %v and scale %v must be positive", speedup, scale)
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 2
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return Schedule{}, fmt.Errorf("trace header: %w", err)
	}
	if strings.TrimSpace(head[0]) != "t" || strings.TrimSpace(head[1]) != "rps" {
		return Schedule{}, fmt.Errorf("trace header %q: want t,rps", strings.Join(head, ","))
	}
	var ts, rps []float64
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Schedule{}, fmt.Errorf("trace: %w", err)
		}
		t, err1 := strconv.ParseFloat(strings.TrimSpace(rec[0]), 64)
		v, err2 := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err := errors.Join(err1, err2); err != nil {
			return Schedule{}, fmt.Errorf("trace line %d: %w", line, err)
		}
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return Schedule{}, fmt.Errorf("trace line %d: rps %v must be finite and non-negative", line, v)
		}
		if n := len(ts); n > 0 && t <= ts[n-1] {
			return Schedule{}, fmt.Errorf("trace line %d: t %v does not increase", line, t)
		}
		ts, rps = append(ts, t), append(rps, v)
	}
	if len(ts) == 0 {
		return Schedule{}, errors.New("trace has no rows")
	}
	bucket := 1.0
	if len(ts) > 1 {
		bucket = ts[1] - ts[0]
	}
	d := time.Duration(bucket / speedup * float64(time.Second))
	if d <= 0 {
		return Schedule{}, fmt.Errorf("bucket %vs / speedup %v is below 1ns", bucket, speedup)
	}
	s := Schedule{Phases: make([]Phase, len(rps))}
	for i, v := range rps {
		s.Phases[i] = Phase{Duration: d, Rate: v * scale, Dist: k}
	}
	return s, nil
}

// LoadTrace reads a trace file (see ParseTrace).
func LoadTrace(path string, speedup, scale float64, k dist.Kind) (Schedule, error) {
	f, err := os.Open(path)
	if err != nil {
		return Schedule{}, fmt.Errorf("open trace: %w", err)
	}
	defer f.Close()
	s, err := ParseTrace(f, speedup, scale, k)
	if err != nil {
		return Schedule{}, fmt.Errorf("trace %s: %w", path, err)
	}
	return s, nil
}
