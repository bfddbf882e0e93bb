package dist

import (
	"math"
	"testing"
)

func TestDescribe(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want Description
	}{
		{name: "empty", xs: nil, want: Description{}},
		{name: "one", xs: []float64{4}, want: Description{N: 1, Mean: 4, Min: 4, Max: 4, P50: 4, P90: 4, P95: 4, P99: 4, P999: 4}},
		// 1..10: mean 5.5, population variance 8.25, SCV 8.25/30.25.
		{name: "one to ten", xs: []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, want: Description{
			N: 10, Mean: 5.5, Variance: 8.25, Min: 1, Max: 10, SCV: 8.25 / 30.25, P50: 5, P90: 9, P95: 10, P99: 10, P999: 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Describe(tc.xs)
			if got.N != tc.want.N || !near(got.Mean, tc.want.Mean) || !near(got.Variance, tc.want.Variance) ||
				!near(got.SCV, tc.want.SCV) || got.Min != tc.want.Min || got.Max != tc.want.Max ||
				got.P50 != tc.want.P50 || got.P90 != tc.want.P90 || got.P95 != tc.want.P95 || got.P99 != tc.want.P99 || got.P999 != tc.want.P999 {
				t.Fatalf("Describe = %+v\nwant       %+v", got, tc.want)
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
