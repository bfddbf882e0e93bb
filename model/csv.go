package model

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"
)

// ErrBadCSV is returned by ReadCSV for input that is not a numeric CSV with
// a header row.
var ErrBadCSV = errors.New("bad numeric csv")

// ReadCSV reads a numeric CSV: one header row naming the columns, then one
// sample per row, every field a finite float. Blank lines are skipped. Errors
// wrap ErrBadCSV and name the line.
func ReadCSV(r io.Reader) (names []string, x *mat.Dense, err error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("line 1: no header: %w", ErrBadCSV)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%v: %w", err, ErrBadCSV)
	}
	names = make([]string, len(header))
	for j, h := range header {
		names[j] = strings.TrimSpace(h)
	}
	d := len(names)
	var data []float64
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// csv.ParseError carries the line; its message names it.
			return nil, nil, fmt.Errorf("%v: %w", err, ErrBadCSV)
		}
		line, _ := cr.FieldPos(0)
		for j, f := range rec {
			v, perr := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if perr != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("line %d column %d (%s): %q is not a finite number: %w", line, j+1, names[j], f, ErrBadCSV)
			}
			data = append(data, v)
		}
	}
	n := len(data) / d
	if n == 0 {
		return nil, nil, fmt.Errorf("no data rows after the header: %w", ErrBadCSV)
	}
	return names, mat.NewDense(n, d, data), nil
}
