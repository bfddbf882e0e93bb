package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lbtune/lbtune/agent"
)

// DecisionLog is an agent.Recorder that writes an evaluation run's
// decisions to a file as JSON lines.
type DecisionLog struct {
	f   *os.File
	w   *bufio.Writer
	enc *json.Encoder
	err error
}

// CreateDecisionLog creates (or truncates) the file at path.
func CreateDecisionLog(path string) (*DecisionLog, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	return &DecisionLog{f: f, w: w, enc: json.NewEncoder(w)}, nil
}

// Record appends d; the first write error is kept and returned by Close.
func (l *DecisionLog) Record(_ context.Context, d agent.Decision) error {
	if l.err == nil {
		l.err = l.enc.Encode(d)
	}
	return l.err
}

// Close flushes and closes the file. It returns the first error of a
// write, the flush or the close.
func (l *DecisionLog) Close() error {
	err := l.err
	if ferr := l.w.Flush(); err == nil {
		err = ferr
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ErrBadOffset is returned by ParseOffset for a malformed or negative
// offset.
var ErrBadOffset = errors.New("want a duration like 72h or 3d")

// ParseOffset parses an offset into a trace: a Go duration or a number of
// days such as "3d" or "1.5d". Empty is 0.
func ParseOffset(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.ParseFloat(d, 64)
		if err != nil || days < 0 {
			return 0, ErrBadOffset
		}
		return time.Duration(days * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, ErrBadOffset
	}
	return d, nil
}
