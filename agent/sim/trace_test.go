package sim

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sharedTraces is ../shared/traces from the repository root.
const sharedTraces = "../../../shared/traces"

func TestParseTrace(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" = valid
		times   []float64
		rates   []float64
		end     float64
	}{
		{name: "minute buckets", in: "t,rps\n0,1.5\n60,2\n120,0\n", times: []float64{0, 60, 120}, rates: []float64{1.5, 2, 0}, end: 180},
		{name: "one row lasts 1s", in: "t,rps\n0,7\n", times: []float64{0}, rates: []float64{7}, end: 1},
		{name: "CRLF and blank lines", in: "t,rps\r\n0,1\r\n\r\n10,2\r\n", times: []float64{0, 10}, rates: []float64{1, 2}, end: 20},
		{name: "bad header", in: "time,rate\n0,1\n", wantErr: "x.csv:1: header"},
		{name: "empty file", in: "", wantErr: "x.csv:1: trace has no data rows"},
		{name: "header only", in: "t,rps\n", wantErr: "x.csv:1: trace has no data rows"},
		{name: "negative rate", in: "t,rps\n0,1\n60,-3\n", wantErr: "x.csv:3: negative rate -3"},
		{name: "not a number", in: "t,rps\n0,abc\n", wantErr: "x.csv:2: bad rate"},
		{name: "NaN rate", in: "t,rps\n0,NaN\n", wantErr: "x.csv:2: bad rate"},
		{name: "three fields", in: "t,rps\n0,1,2\n", wantErr: "x.csv:2: want 2 fields"},
		{name: "time goes back", in: "t,rps\n0,1\n60,1\n30,1\n", wantErr: "x.csv:4: time 30 not after"},
		{name: "negative time", in: "t,rps\n-1,1\n", wantErr: "x.csv:2: negative time"},
		// Found by FuzzParseTrace in CI: 1e30 + 1 s is 1e30, a step ending where it starts.
		{name: "time beyond 10 years", in: "t,rps\n0,1\n1e30,3\n", wantErr: "x.csv:3: time 1e+30 s is beyond"},
		{name: "10 years is the limit", in: "t,rps\n315360000,2\n", times: []float64{315360000}, rates: []float64{2}, end: 315360001},
		// The last gap is half the last time's precision: the sum ties and
		// rounds back to the last time; the step ends one ulp after it.
		{name: "last gap below precision", in: "t,rps\n268435455.99999997,1\n268435456,1\n", times: []float64{268435455.99999997, 268435456}, rates: []float64{1, 1}, end: 268435456.00000006},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ParseTrace(strings.NewReader(tc.in), "x.csv")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slicesEqual(tr.Times, tc.times) || !slicesEqual(tr.Rates, tc.rates) || tr.End != tc.end {
				t.Errorf("got times %v rates %v end %v", tr.Times, tr.Rates, tr.End)
			}
		})
	}
	if _, err := ParseTrace(strings.NewReader("t,rps\n"), "x"); !errors.Is(err, ErrEmptyTrace) {
		t.Errorf("empty trace error %v is not ErrEmptyTrace", err)
	}
}

func slicesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTraceOps(t *testing.T) {
	tr := &Trace{Name: "x", Times: []float64{0, 60, 120}, Rates: []float64{10, 20, 30}, End: 180}
	if got := tr.Mean(); got != 20 {
		t.Errorf("mean %v, want 20", got)
	}
	if got := tr.RateAt(90); got != 20 {
		t.Errorf("rate at 90 s %v, want 20", got)
	}
	sl, err := tr.Slice(90*time.Second, 150*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(sl.Times, []float64{0, 30}) || !slicesEqual(sl.Rates, []float64{20, 30}) || sl.End != 60 {
		t.Errorf("slice [90s,150s): %+v", sl)
	}
	if _, err := tr.Slice(time.Hour, 0); !errors.Is(err, ErrEmptyTrace) {
		t.Errorf("slice past the end: %v", err)
	}
	if got := tr.Scaled(0.5).Peak(); got != 15 {
		t.Errorf("scaled peak %v, want 15", got)
	}
	if got := tr.Stretched(0.5).End; got != 90 {
		t.Errorf("stretched end %v, want 90", got)
	}
	syn := Synthetic("s", []Phase{{Duration: time.Minute, RPS: 5}, {Duration: time.Minute, RPS: 10}}, []Spike{{At: 30 * time.Second, Duration: 5 * time.Second, RPS: 100}})
	for _, c := range []struct{ at, want float64 }{{0, 5}, {31, 100}, {36, 5}, {61, 10}} {
		if got := syn.RateAt(c.at); got != c.want {
			t.Errorf("synthetic rate at %vs = %v, want %v", c.at, got, c.want)
		}
	}
}

// TestArrivalsFollowTrace checks the arrival process: Poisson counts
// within each step of a real trace slice.
func TestArrivalsFollowTrace(t *testing.T) {
	tr, err := ReadTraceFile(filepath.Join(sharedTraces, "worldcup98-1998-07-per-min.csv"))
	if err != nil {
		t.Fatalf("shared traces missing (%v): run from a checkout with ../shared beside the repo", err)
	}
	tr, _ = tr.Slice(0, 2*time.Hour)
	tr = tr.Scaled(0.1)
	s, err := New(Config{Seed: 9, Trace: tr, Pools: []PoolConfig{{Name: "p", Servers: 50, Classes: []Class{{Share: 1, Service: Dist{Mean: 0.01}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(tr.Duration() + time.Minute)
	var want float64
	for i, r := range tr.Rates {
		want += r * (tr.stepEnd(i) - tr.Times[i])
	}
	got := float64(s.Truth()[0].Completed)
	if math.Abs(got-want) > 4*math.Sqrt(want) {
		t.Errorf("%v arrivals, trace expects %.0f ± %.0f", got, want, 4*math.Sqrt(want))
	}
}

func FuzzParseTrace(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(sharedTraces, "*.csv"))
	for _, p := range files {
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		head := make([]byte, 2048)
		n, _ := io.ReadFull(fh, head)
		fh.Close()
		f.Add(string(head[:n]))
	}
	f.Add("t,rps\n0,1\n60,-2\n")
	f.Add("t,rps\n0,1e308\n1,1e-308\n")
	f.Fuzz(func(t *testing.T, in string) {
		tr, err := ParseTrace(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv:") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		if len(tr.Times) == 0 || len(tr.Times) != len(tr.Rates) || !(tr.End > tr.Times[len(tr.Times)-1]) {
			t.Fatalf("invalid trace accepted: %+v", tr)
		}
		for i, r := range tr.Rates {
			if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) || (i > 0 && tr.Times[i] <= tr.Times[i-1]) {
				t.Fatalf("invalid step %d accepted: t=%v rps=%v", i, tr.Times[i], r)
			}
		}
	})
}
