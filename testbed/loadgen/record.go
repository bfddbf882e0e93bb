package loadgen

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Record is what lbtune load writes per request (--out).
type Record struct {
	// Time is when the request was sent.
	Time time.Time `json:"time"`
	// Target is the URL requested.
	Target string `json:"target"`
	// Status is the HTTP status (0 when no response arrived).
	Status int `json:"status"`
	// LatencyMs is the time from send to the end of the response body.
	LatencyMs float64 `json:"latency_ms"`
	// Bytes is the response body size.
	Bytes uint64 `json:"bytes"`
	// Error is the transport error or non-2xx/3xx status text, "" on success.
	Error string `json:"error,omitempty"`
	// Server is the X-Lbtune-Server header of the backend that answered.
	Server string `json:"server,omitempty"`
	// ServiceMs is the backend's X-Lbtune-Service-Ms header (0 if absent).
	ServiceMs float64 `json:"service_ms,omitempty"`
}

// Format is a record file format.
type Format string

// Record file formats.
const (
	CSV   Format = "csv"
	JSONL Format = "jsonl"
)

// FormatOf picks the format from a file name: .csv is CSV, anything else JSONL.
func FormatOf(path string) Format {
	if strings.HasSuffix(strings.ToLower(path), ".csv") {
		return CSV
	}
	return JSONL
}

// csvHeader is the first line of a CSV record file.
var csvHeader = []string{"time", "target", "status", "latency_ms", "bytes", "error", "server", "service_ms"}

// RecordWriter writes records in one format.
type RecordWriter struct {
	bw  *bufio.Writer
	cw  *csv.Writer
	enc *json.Encoder
}

// NewRecordWriter returns a writer of f-format records to w; it writes the
// CSV header at once.
func NewRecordWriter(w io.Writer, f Format) (*RecordWriter, error) {
	rw := &RecordWriter{bw: bufio.NewWriterSize(w, 64<<10)}
	if f == CSV {
		rw.cw = csv.NewWriter(rw.bw)
		if err := rw.cw.Write(csvHeader); err != nil {
			return nil, fmt.Errorf("write csv header: %w", err)
		}
	} else {
		rw.enc = json.NewEncoder(rw.bw)
	}
	return rw, nil
}

// Write appends one record.
func (rw *RecordWriter) Write(r Record) error {
	if rw.cw != nil {
		return rw.cw.Write([]string{
			r.Time.UTC().Format(time.RFC3339Nano), r.Target, strconv.Itoa(r.Status),
			strconv.FormatFloat(r.LatencyMs, 'f', 3, 64), strconv.FormatUint(r.Bytes, 10), r.Error, r.Server,
			strconv.FormatFloat(r.ServiceMs, 'f', 3, 64),
		})
	}
	return rw.enc.Encode(r)
}

// Flush writes buffered records out.
func (rw *RecordWriter) Flush() error {
	if rw.cw != nil {
		rw.cw.Flush()
		if err := rw.cw.Error(); err != nil {
			return fmt.Errorf("flush records: %w", err)
		}
	}
	if err := rw.bw.Flush(); err != nil {
		return fmt.Errorf("flush records: %w", err)
	}
	return nil
}

// ReadRecords reads a record file in either format, detected from its first
// byte ('{' is JSONL), calling fn for each record. It stops at the first
// malformed line with an error naming it.
func ReadRecords(r io.Reader, fn func(Record) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.Peek(1)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	if first[0] == '{' {
		sc := bufio.NewScanner(br)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for line := 1; sc.Scan(); line++ {
			if len(strings.TrimSpace(sc.Text())) == 0 {
				continue
			}
			var rec Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				return fmt.Errorf("record line %d: %w", line, err)
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read records: %w", err)
		}
		return nil
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return fmt.Errorf("record header: %w", err)
	}
	if len(head) < 6 || head[0] != "time" || head[3] != "latency_ms" {
		return fmt.Errorf("record header %q: not an lbtune load CSV", strings.Join(head, ","))
	}
	for line := 2; ; line++ {
		f, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("record line %d: %w", line, err)
		}
		rec, err := parseCSVRecord(f)
		if err != nil {
			return fmt.Errorf("record line %d: %w", line, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

func parseCSVRecord(f []string) (Record, error) {
	if len(f) < 6 {
		return Record{}, fmt.Errorf("%d fields, want at least 6", len(f))
	}
	t, err := time.Parse(time.RFC3339Nano, f[0])
	if err != nil {
		return Record{}, fmt.Errorf("time: %w", err)
	}
	status, err := strconv.Atoi(f[2])
	if err != nil {
		return Record{}, fmt.Errorf("status: %w", err)
	}
	lat, err := strconv.ParseFloat(f[3], 64)
	if err != nil {
		return Record{}, fmt.Errorf("latency_ms: %w", err)
	}
	b, err := strconv.ParseUint(f[4], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("bytes: %w", err)
	}
	rec := Record{Time: t, Target: f[1], Status: status, LatencyMs: lat, Bytes: b, Error: f[5]}
	if len(f) > 6 {
		rec.Server = f[6]
	}
	if len(f) > 7 && f[7] != "" {
		if rec.ServiceMs, err = strconv.ParseFloat(f[7], 64); err != nil {
			return Record{}, fmt.Errorf("service_ms: %w", err)
		}
	}
	return rec, nil
}
