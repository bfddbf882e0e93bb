package model

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantRows int
		wantCols int
		wantErr  string // substring; "" means success
	}{
		{name: "plain", in: "a,b\n1,2\n3,4.5e1\n", wantRows: 2, wantCols: 2},
		{name: "spaces and blank lines", in: " a , b \n 1 , 2 \n\n-3,4\n", wantRows: 2, wantCols: 2},
		{name: "no trailing newline", in: "x\n1\n2", wantRows: 2, wantCols: 1},
		{name: "empty", in: "", wantErr: "line 1: no header"},
		{name: "header only", in: "a,b\n", wantErr: "no data rows"},
		{name: "text in a field", in: "a,b\n1,2\n3,abc\n", wantErr: `line 3 column 2 (b): "abc"`},
		{name: "short row", in: "a,b\n1,2\n3\n", wantErr: "line 3"},
		{name: "NaN", in: "a\n1\nNaN\n", wantErr: "line 3 column 1"},
		{name: "infinity", in: "a\n+Inf\n", wantErr: "line 2 column 1"},
		{name: "bad quote", in: "a\n\"1\n", wantErr: "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, x, err := ReadCSV(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrBadCSV) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrBadCSV mentioning %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, c := x.Dims()
			if r != tc.wantRows || c != tc.wantCols || len(names) != c {
				t.Fatalf("got %dx%d with %d names, want %dx%d", r, c, len(names), tc.wantRows, tc.wantCols)
			}
		})
	}
}

// FuzzReadCSV: no panic, and either an error wrapping ErrBadCSV or a matrix
// of finite values whose width is the header's.
func FuzzReadCSV(f *testing.F) {
	for _, p := range []string{
		// Real CSVs from the shared captures (HAProxy show stat, mostly not
		// numeric: exercises the error path with long, quoted headers).
		"../../shared/captures/haproxy/captures/02-load-baseline/show_stat.csv",
		"../../shared/captures/haproxy/captures/02-load-baseline/http_stats.csv",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatalf("seed %s: %v", p, err)
		}
		f.Add(string(b))
	}
	f.Add("a,b\n1,2\n3,4\n")
	f.Add("x\n1e308\n-1e-308\n")
	f.Add("a,b\n\"1\",2\n")
	f.Fuzz(func(t *testing.T, in string) {
		names, x, err := ReadCSV(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadCSV) {
				t.Fatalf("error %v does not wrap ErrBadCSV", err)
			}
			return
		}
		r, c := x.Dims()
		if r == 0 || c != len(names) {
			t.Fatalf("%dx%d matrix, %d names", r, c, len(names))
		}
		for _, v := range x.RawMatrix().Data {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("non-finite value %v", v)
			}
		}
	})
}
