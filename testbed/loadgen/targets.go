package loadgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Weighted is one target URL with its share of the requests.
type Weighted struct {
	URL    string
	Weight float64
}

// ParseMix parses "/light=60,/medium=30,/heavy=10" against base
// ("http://127.0.0.1:8080") into weighted targets. Weights are relative.
func ParseMix(mix, base string) ([]Weighted, error) {
	b, err := url.Parse(base)
	if err != nil || b.Scheme == "" || b.Host == "" {
		return nil, fmt.Errorf("base %q: want http://host:port", base)
	}
	var out []Weighted
	for _, part := range strings.Split(mix, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		path, w, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix entry %q: want PATH=WEIGHT", part)
		}
		weight, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || !(weight >= 0) {
			return nil, fmt.Errorf("mix entry %q: weight must be a non-negative number", part)
		}
		ref, err := url.Parse(strings.TrimSpace(path))
		if err != nil {
			return nil, fmt.Errorf("mix entry %q: %w", part, err)
		}
		out = append(out, Weighted{URL: b.ResolveReference(ref).String(), Weight: weight})
	}
	if len(out) == 0 {
		return nil, errors.New("mix is empty")
	}
	return out, nil
}

// Mix picks targets at random in proportion to their weights.
type Mix struct {
	targets []Weighted
	cum     []float64
	mu      sync.Mutex
	rng     *rand.Rand
}

// NewMix returns a Mix over ts drawing from src.
func NewMix(ts []Weighted, src rand.Source) (*Mix, error) {
	if len(ts) == 0 {
		return nil, errors.New("no targets")
	}
	m := &Mix{targets: ts, rng: rand.New(src)}
	var sum float64
	for _, t := range ts {
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("target %q: want an http(s) URL", t.URL)
		}
		sum += t.Weight
		m.cum = append(m.cum, sum)
	}
	if !(sum > 0) {
		return nil, errors.New("target weights sum to zero")
	}
	return m, nil
}

// Pick returns the URL of one random target.
func (m *Mix) Pick() string {
	m.mu.Lock()
	x := m.rng.Float64() * m.cum[len(m.cum)-1]
	m.mu.Unlock()
	i := sort.SearchFloat64s(m.cum, x)
	if i >= len(m.targets) {
		i = len(m.targets) - 1
	}
	// Skip zero-weight targets SearchFloat64s may land on at a tie.
	for m.targets[i].Weight == 0 && i+1 < len(m.targets) {
		i++
	}
	return m.targets[i].URL
}

// Targeter returns a vegeta.Targeter issuing GETs to Pick.
func (m *Mix) Targeter() vegeta.Targeter {
	return func(t *vegeta.Target) error {
		*t = vegeta.Target{Method: http.MethodGet, URL: m.Pick()}
		return nil
	}
}
