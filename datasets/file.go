package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// Format is the value of the header's "format" field.
const Format = "lbtune-dataset"

// FileVersion is the dataset file version this package writes and reads.
const FileVersion = 1

// ErrFormat is returned for a file that is not an lbtune dataset: no header,
// a header of another format, or a malformed line (the error names the line).
var ErrFormat = errors.New("not a valid lbtune dataset")

// ErrVersion is returned for a dataset file whose header version this
// package does not read.
var ErrVersion = errors.New("unsupported dataset version")

// maxLine bounds one line of a dataset file (a snapshot of thousands of
// servers is about 1 MB of JSON).
const maxLine = 256 << 20

// Header is the first line of a dataset file.
type Header struct {
	// Format is always "lbtune-dataset".
	Format string `json:"format"`
	// Version is the file version, FileVersion.
	Version int `json:"version"`
	// Source describes where the snapshots came from (a source URI, or
	// several separated by commas).
	Source string `json:"source"`
	// Description is free text: the testbed, the load, what happened.
	Description string `json:"description"`
	// Created is when the file was written, UTC.
	Created time.Time `json:"created"`
}

// Event is a scripted action that happened during a recording (a weight
// change, a backend killed, a reload, a load phase), written between the
// snapshots as a line {"event":{...}} so training can line actions up with
// the load they caused.
type Event struct {
	// Time is when the action was taken, UTC.
	Time time.Time `json:"time"`
	// Kind names the action: "weight", "drain", "kill", "start", "reload",
	// "restart", "load", or anything the recorder chooses.
	Kind string `json:"kind"`
	// Pool and Server name what the action touched, where it touched one.
	Pool   string `json:"pool,omitempty"`
	Server string `json:"server,omitempty"`
	// Value is the action's number, e.g. the new weight or the offered
	// load in requests per second; 0 when it has none.
	Value float64 `json:"value"`
	// Detail is free text.
	Detail string `json:"detail,omitempty"`
}

// Entry is one line after the header: exactly one of Snapshot and Event is
// set.
type Entry struct {
	Snapshot *collector.Snapshot
	Event    *Event
	// Line is the 1-based line number in the (uncompressed) file.
	Line int
}

// eventLine is the on-disk form of an event line.
type eventLine struct {
	Event *Event `json:"event"`
}

// Reader reads a dataset file line by line.
type Reader struct {
	sc     *bufio.Scanner
	name   string
	line   int
	header Header
	closer []io.Closer
}

// NewReader reads the header from r (plain or gzip, detected by its magic
// bytes) and returns a Reader positioned at the first entry. name is used in
// errors.
func NewReader(r io.Reader, name string) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	rd := &Reader{name: name}
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read dataset %s: gzip: %w", name, err)
		}
		rd.closer = append(rd.closer, zr)
		rd.sc = bufio.NewScanner(zr)
	} else {
		rd.sc = bufio.NewScanner(br)
	}
	rd.sc.Buffer(make([]byte, 0, 256<<10), maxLine)
	if err := rd.readHeader(); err != nil {
		return nil, err
	}
	return rd, nil
}

// OpenFile opens the dataset file at path (gzip or plain) and reads its
// header. Close it when done.
func OpenFile(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	rd, err := NewReader(f, path)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	rd.closer = append(rd.closer, f)
	return rd, nil
}

func (r *Reader) readHeader() error {
	if !r.sc.Scan() {
		if err := r.sc.Err(); err != nil {
			return fmt.Errorf("read dataset %s: line 1: %w", r.name, err)
		}
		return fmt.Errorf("read dataset %s: empty file, no header: %w", r.name, ErrFormat)
	}
	r.line = 1
	var h Header
	if err := json.Unmarshal(r.sc.Bytes(), &h); err != nil {
		return fmt.Errorf("read dataset %s: line 1: header: %v: %w", r.name, err, ErrFormat)
	}
	if h.Format != Format {
		return fmt.Errorf("read dataset %s: line 1: format %q, want %q: %w", r.name, h.Format, Format, ErrFormat)
	}
	if h.Version != FileVersion {
		return fmt.Errorf("read dataset %s: line 1: version %d, this lbtune reads %d: %w", r.name, h.Version, FileVersion, ErrVersion)
	}
	r.header = h
	return nil
}

// Header returns the file's header.
func (r *Reader) Header() Header { return r.header }

// Next returns the next entry, or io.EOF after the last one. Blank lines
// are skipped. A malformed line or an invalid snapshot is an error naming
// the line; the Reader cannot continue past it.
func (r *Reader) Next() (Entry, error) {
	for r.sc.Scan() {
		r.line++
		b := bytes.TrimSpace(r.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		return r.decode(b)
	}
	if err := r.sc.Err(); err != nil {
		return Entry{}, fmt.Errorf("read dataset %s: line %d: %w", r.name, r.line+1, err)
	}
	return Entry{}, io.EOF
}

func (r *Reader) decode(b []byte) (Entry, error) {
	fail := func(format string, a ...any) (Entry, error) {
		return Entry{}, fmt.Errorf("read dataset %s: line %d: %s: %w", r.name, r.line, fmt.Sprintf(format, a...), ErrFormat)
	}
	if b[0] != '{' {
		return fail("not a JSON object")
	}
	// One decode serves both kinds: an event line has the "event" key,
	// a snapshot line the snapshot's own keys.
	var v struct {
		Event *Event `json:"event"`
		collector.Snapshot
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fail("%v", err)
	}
	if v.Event != nil {
		if v.Event.Time.IsZero() || v.Event.Kind == "" {
			return fail("event without time or kind")
		}
		return Entry{Event: v.Event, Line: r.line}, nil
	}
	sn := v.Snapshot
	if err := sn.Validate(); err != nil {
		return fail("%v", err)
	}
	return Entry{Snapshot: &sn, Line: r.line}, nil
}

// Close releases the file (if opened by OpenFile) and the gzip stream.
func (r *Reader) Close() error {
	var errs []error
	for _, c := range r.closer {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Writer writes a dataset file: the header, then one line per snapshot or
// event in the order written.
type Writer struct {
	bw  *bufio.Writer
	zw  *gzip.Writer
	enc *json.Encoder
	// set by CreateFile: the temporary file renamed to path on Close.
	f    *os.File
	path string
	err  error
}

// NewWriter writes h (Format and Version filled in) to w and returns a
// Writer for the entries. With compress the output is gzip. Close flushes;
// it does not close w.
func NewWriter(w io.Writer, h Header, compress bool) (*Writer, error) {
	wr := &Writer{}
	if compress {
		wr.zw = gzip.NewWriter(w)
		w = wr.zw
	}
	wr.bw = bufio.NewWriterSize(w, 256<<10)
	wr.enc = json.NewEncoder(wr.bw)
	wr.enc.SetEscapeHTML(false)
	h.Format, h.Version = Format, FileVersion
	if !h.Created.IsZero() {
		h.Created = h.Created.UTC()
	}
	if err := wr.enc.Encode(h); err != nil {
		return nil, fmt.Errorf("write dataset header: %w", err)
	}
	return wr, nil
}

// CreateFile starts a dataset file at path, gzip if path ends in ".gz". The
// data goes to a temporary file in the same directory that Close syncs and
// renames to path, so a reader never sees a half-written dataset.
func CreateFile(path string, h Header) (*Writer, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create dataset %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; a dataset is ordinary data.
	err = f.Chmod(0o644)
	var w *Writer
	if err == nil {
		w, err = NewWriter(f, h, strings.HasSuffix(path, ".gz"))
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("create dataset %s: %w", path, err)
	}
	w.f, w.path = f, path
	return w, nil
}

// WriteSnapshot validates sn and writes it as one line.
func (w *Writer) WriteSnapshot(sn collector.Snapshot) error {
	if w.err != nil {
		return w.err
	}
	if err := sn.Validate(); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	if err := w.enc.Encode(&sn); err != nil {
		w.err = fmt.Errorf("write dataset: %w", err)
	}
	return w.err
}

// WriteEvent writes ev as one line.
func (w *Writer) WriteEvent(ev Event) error {
	if w.err != nil {
		return w.err
	}
	if ev.Time.IsZero() || ev.Kind == "" {
		return fmt.Errorf("write dataset: event without time or kind")
	}
	if err := w.enc.Encode(eventLine{&ev}); err != nil {
		w.err = fmt.Errorf("write dataset: %w", err)
	}
	return w.err
}

// Close flushes the data; for CreateFile it syncs the temporary file and
// renames it into place (or removes it after an earlier error).
func (w *Writer) Close() error {
	err := w.err
	if ferr := w.bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write dataset: %w", ferr)
	}
	if w.zw != nil {
		if zerr := w.zw.Close(); err == nil && zerr != nil {
			err = fmt.Errorf("write dataset: gzip: %w", zerr)
		}
	}
	if w.f == nil {
		return err
	}
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		_ = os.Remove(w.f.Name())
		return fmt.Errorf("write dataset %s: %w", w.path, err)
	}
	return nil
}

// Abort discards a file started by CreateFile.
func (w *Writer) Abort() {
	if w.f != nil {
		_ = w.f.Close()
		_ = os.Remove(w.f.Name())
	}
}

// IsStore reports whether path names a bbolt store rather than a dataset
// file, by its content (bbolt's magic number in the first meta page) with
// the name (".db", ".bolt") as a fallback for files that cannot be read.
func IsStore(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		ext := filepath.Ext(path)
		return ext == ".db" || ext == ".bolt"
	}
	defer f.Close()
	var page [32]byte
	if _, err := io.ReadFull(f, page[:]); err != nil {
		return false
	}
	// bbolt page header (16 bytes) then meta: magic 0xED0CDAED little-endian.
	return page[16] == 0xED && page[17] == 0xDA && page[18] == 0x0C && page[19] == 0xED
}

// Load returns every snapshot in path, a bbolt store or a .jsonl /
// .jsonl.gz dataset file, in time order (ties keep file order). Events in a
// dataset file are skipped; use OpenFile to read them.
func Load(path string) ([]collector.Snapshot, error) {
	var out []collector.Snapshot
	if IsStore(path) {
		s, err := OpenReadOnly(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		defer s.Close()
		err = s.Range("", time.Time{}, time.Time{}, func(sn collector.Snapshot) error {
			out = append(out, sn)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		return out, nil
	}
	r, err := OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer r.Close()
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if e.Snapshot != nil {
			out = append(out, *e.Snapshot)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
