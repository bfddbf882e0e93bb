package dist

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDrawMeanAndSCV(t *testing.T) {
	tests := []struct {
		name    string
		kind    Kind
		scv     float64 // expected squared coefficient of variation
		scvTol  float64
		meanTol float64 // relative
	}{
		{name: "exponential", kind: Exponential, scv: 1, scvTol: 0.1, meanTol: 0.02},
		{name: "fixed", kind: Fixed, scv: 0, scvTol: 1e-9, meanTol: 1e-9},
		{name: "normal", kind: Normal, scv: 1.0 / 16, scvTol: 0.01, meanTol: 0.02},
		{name: "lognormal", kind: LogNormal, scv: math.E - 1, scvTol: 0.5, meanTol: 0.05},
		// zipf's SCV is large and noisy; only require it to exceed exponential's.
		{name: "zipf", kind: Zipf, scv: 20, scvTol: 19, meanTol: 0.1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.kind, rand.NewPCG(1, 2))
			const n, mean = 200000, 10.0
			var sum, sq float64
			for range n {
				v := s.Draw(mean)
				if v < 0 {
					t.Fatalf("negative sample %v", v)
				}
				sum += v
				sq += v * v
			}
			m := sum / n
			variance := sq/n - m*m
			scv := variance / (m * m)
			if math.Abs(m-mean)/mean > tc.meanTol {
				t.Errorf("mean = %.4f, want %.1f ± %.0f%%", m, mean, tc.meanTol*100)
			}
			if math.Abs(scv-tc.scv) > tc.scvTol {
				t.Errorf("scv = %.4f, want %.4f ± %.4f", scv, tc.scv, tc.scvTol)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Kind
		wantErr bool
	}{
		{in: "exponential", want: Exponential},
		{in: "Poisson", want: Exponential},
		{in: "fixed", want: Fixed},
		{in: "normal", want: Normal},
		{in: "lognormal", want: LogNormal},
		{in: "zipf", want: Zipf},
		{in: "pareto", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("Parse(%q) = %q, %v; want %q, err=%v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestDrawZeroMean(t *testing.T) {
	if v := New(Exponential, rand.NewPCG(1, 1)).Draw(0); v != 0 {
		t.Fatalf("Draw(0) = %v, want 0", v)
	}
}
