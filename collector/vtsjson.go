package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// vtsScanner reads the few fields lbtune needs from a vts JSON document
// without building the rest. A vts document is dominated by what lbtune
// does not read (per-zone latency rings and histograms: about 3 KB per
// upstream peer), and encoding/json spends most of its time there; the
// scanner skips those values by bracket matching instead.
//
// What it reads it checks fully (types, unsigned ranges, string escapes);
// null is refused there (vts never writes null, and a null counter read as
// 0 would fake a counter reset). What it skips it checks only for balanced
// brackets and terminated strings, so a truncated document is always an
// error. Duplicate keys: the last one wins, as with encoding/json.
//
// Every step is linear in the document's size: a value nested deeper than
// maxDepth is refused, and ctx is checked every ctxCheckSteps values,
// object keys or brackets, so a hostile document cannot hold a scrape past
// its deadline.
type vtsScanner struct {
	data []byte
	pos  int
	// ctx is checked every ctxCheckSteps steps; nil means never.
	ctx   context.Context
	steps int
	// depth is the nesting of the object or array being read.
	depth int
	// maxDepth bounds depth; 0 means MaxVTSDepth (tests lift it to time
	// skip on deeper documents).
	maxDepth int
	// Where the last flat-array probe stopped (see flatArray), and the
	// total length of the ranges the probes searched (at most the
	// document's: tests check that skip stays linear).
	flatClose, flatLast, probed int
}

// MaxVTSDepth is the deepest nesting of objects and arrays ParseVTS accepts;
// a deeper document is refused as malformed. A real vts document nests 6
// levels (document, upstreamZones, group, peer, latency ring, its times).
const MaxVTSDepth = 1000

// ctxCheckSteps is how many units of parsing work (vts values, object keys
// and brackets; CSV rows; log lines) pass between two checks of the
// scrape's context: a few microseconds to a millisecond of work.
const ctxCheckSteps = 1 << 10

// step counts one unit of work and, every ctxCheckSteps of them, returns
// the context's error if it is done.
func (s *vtsScanner) step() error {
	s.steps++
	if s.ctx == nil || s.steps%ctxCheckSteps != 0 {
		return nil
	}
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("stopped at offset %d of %d: %w", s.pos, len(s.data), err)
	}
	return nil
}

// enter goes one level deeper, refusing to pass the depth limit.
func (s *vtsScanner) enter() error {
	s.depth++
	if limit := s.limit(); s.depth > limit {
		return s.errAt("nesting deeper than %d levels", limit)
	}
	return nil
}

func (s *vtsScanner) limit() int {
	if s.maxDepth > 0 {
		return s.maxDepth
	}
	return MaxVTSDepth
}

// errAt returns a malformed-document error at the current offset.
func (s *vtsScanner) errAt(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrMalformed, s.pos, fmt.Sprintf(format, args...))
}

func (s *vtsScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *vtsScanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *vtsScanner) expect(c byte) error {
	if got := s.peek(); got != c {
		if got == 0 {
			return s.errAt("unexpected end of document, want %q", c)
		}
		return s.errAt("invalid character %q, want %q", got, c)
	}
	s.pos++
	return nil
}

// object calls field for each key of the object at the current position;
// field must consume the value.
func (s *vtsScanner) object(field func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if err := s.step(); err != nil {
			return err
		}
		key, err := s.rawStr()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		case 0:
			return s.errAt("unexpected end of document in object")
		default:
			return s.errAt("invalid character %q after object value", s.data[s.pos])
		}
	}
}

// array calls elem for each element of the array at the current position.
func (s *vtsScanner) array(elem func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.step(); err != nil {
			return err
		}
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		case 0:
			return s.errAt("unexpected end of document in array")
		default:
			return s.errAt("invalid character %q after array element", s.data[s.pos])
		}
	}
}

// str reads a JSON string.
func (s *vtsScanner) str() (string, error) {
	b, err := s.rawStr()
	return string(b), err
}

// rawStr reads a JSON string; without escapes the result aliases the
// document (object keys are compared without allocating).
func (s *vtsScanner) rawStr() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.pos
	escaped := false
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '\\':
			escaped = true
			s.pos += 2
			continue
		case c == '"':
			raw := s.data[start:s.pos]
			s.pos++
			if !escaped {
				return raw, nil
			}
			var out string
			if err := json.Unmarshal(s.data[start-1:s.pos], &out); err != nil {
				return nil, s.errAt("bad string: %v", err)
			}
			return []byte(out), nil
		case c < 0x20:
			return nil, s.errAt("control character in string")
		}
		s.pos++
	}
	return nil, s.errAt("unexpected end of document in string")
}

// literal returns the bytes of the number or literal at the current position.
func (s *vtsScanner) literal() []byte {
	s.ws()
	start := s.pos
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return s.data[start:s.pos]
		}
		s.pos++
	}
	return s.data[start:s.pos]
}

// uint reads an unsigned 64-bit integer (vts counters; 2^64-1 fits).
func (s *vtsScanner) uint(dst *uint64) error {
	lit := s.literal()
	v, err := strconv.ParseUint(string(lit), 10, 64)
	if err != nil {
		return s.errAt("want an unsigned integer, got %q", clip(string(lit)))
	}
	*dst = v
	return nil
}

// float reads a finite, non-negative number.
func (s *vtsScanner) float(dst *float64) error {
	lit := s.literal()
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || bad(v) || !jsonNumber(lit) {
		return s.errAt("want a non-negative number, got %q", clip(string(lit)))
	}
	*dst = v
	return nil
}

// jsonNumber reports whether lit uses only JSON number characters
// (ParseFloat also accepts "Inf", "0x1p3" and underscores).
func jsonNumber(lit []byte) bool {
	for _, c := range lit {
		if (c < '0' || c > '9') && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			return false
		}
	}
	return len(lit) > 0
}

// int reads an integer that fits an int.
func (s *vtsScanner) int(dst *int) error {
	lit := s.literal()
	v, err := strconv.Atoi(string(lit))
	if err != nil {
		return s.errAt("want an integer, got %q", clip(string(lit)))
	}
	*dst = v
	return nil
}

func (s *vtsScanner) bool(dst *bool) error {
	switch lit := string(s.literal()); lit {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return s.errAt("want true or false, got %q", clip(lit))
	}
	return nil
}

// flatArray reports whether the array opening at s.pos holds no nested
// array, object or string, and if so returns the offset of its ']'. It
// finds the next ']' and checks the bytes before it with IndexByte, much
// faster than stepping over a latency ring byte by byte. It also remembers
// the last structural byte before that ']': the arrays opening before it
// (the nested ones of a deep value) are answered from that without
// searching again, so the ranges searched do not overlap and skip stays
// linear.
func (s *vtsScanner) flatArray() (int, bool) {
	if s.pos < s.flatClose {
		return s.flatClose, s.pos == s.flatLast
	}
	end := bytes.IndexByte(s.data[s.pos:], ']')
	if end < 0 {
		s.probed += len(s.data) - s.pos
		s.flatClose, s.flatLast = len(s.data), len(s.data)
		return 0, false
	}
	s.flatClose = s.pos + end
	s.probed += end
	in := s.data[s.pos+1 : s.flatClose]
	if bytes.IndexByte(in, '[') < 0 && bytes.IndexByte(in, '{') < 0 && bytes.IndexByte(in, '"') < 0 && bytes.IndexByte(in, '}') < 0 {
		s.flatLast = s.pos
		return s.flatClose, true
	}
	// Not flat: the last '[', '{', '"' or '}' before the ']' (there is one,
	// at s.pos at the latest) is the only array opening here that is flat.
	last := s.flatClose - 1
	for !jsonStructural[s.data[last]] {
		last--
	}
	s.flatLast = last
	return s.flatClose, false
}

// jsonStructural marks the bytes skip must look at inside a container.
var jsonStructural = [256]bool{'{': true, '}': true, '[': true, ']': true, '"': true}

// skip consumes one value of any type in one pass. Containers are matched
// by bracket depth with strings stepped over, which is enough to find where
// the value ends and to reject truncation; nesting past the depth limit is
// refused.
func (s *vtsScanner) skip() error {
	switch c := s.peek(); c {
	case 0:
		return s.errAt("unexpected end of document, want a value")
	case '"':
		_, err := s.rawStr()
		return err
	case '{', '[':
		base := s.depth
		defer func() { s.depth = base }()
		data := s.data
		for s.pos < len(data) {
			// Fast-forward over numbers, commas and spaces (most of a
			// skipped latency ring) to the next bracket or quote.
			for s.pos < len(data) && !jsonStructural[data[s.pos]] {
				s.pos++
			}
			if s.pos >= len(data) {
				break
			}
			if err := s.step(); err != nil {
				return err
			}
			switch data[s.pos] {
			case '[':
				if err := s.enter(); err != nil {
					return err
				}
				// A flat array (a latency ring: numbers only) ends at the
				// next ']': jump there.
				if end, ok := s.flatArray(); ok {
					s.pos = end
					continue // at its ']', which closes it on the next pass
				}
			case '{':
				if err := s.enter(); err != nil {
					return err
				}
			case '}', ']':
				s.depth--
				if s.depth == base {
					s.pos++
					return nil
				}
			case '"':
				for s.pos++; s.pos < len(data) && data[s.pos] != '"'; s.pos++ {
					if data[s.pos] == '\\' {
						s.pos++
					}
				}
			}
			s.pos++
		}
		return s.errAt("unexpected end of document in skipped value")
	case '}', ']', ',', ':':
		return s.errAt("invalid character %q, want a value", c)
	default:
		if lit := s.literal(); len(lit) == 0 {
			return s.errAt("empty value")
		}
		return nil
	}
}

// document reads the whole vts document into doc.
func (s *vtsScanner) document(doc *vtsDoc) error {
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "nowMsec":
			var v uint64
			if err := s.uint(&v); err != nil {
				return err
			}
			doc.NowMsec = &v
			return nil
		case "upstreamZones":
			doc.UpstreamZones = map[string][]vtsPeer{}
			return s.object(func(key []byte) error {
				group := string(key)
				var peers []vtsPeer
				err := s.array(func() error {
					var p vtsPeer
					if err := s.peer(&p); err != nil {
						return err
					}
					peers = append(peers, p)
					return nil
				})
				if err != nil {
					return err
				}
				doc.UpstreamZones[group] = peers
				return nil
			})
		}
		return s.skip()
	})
	if err != nil {
		return err
	}
	if s.peek() != 0 {
		return s.errAt("trailing data after the JSON document")
	}
	return nil
}

func (s *vtsScanner) peer(p *vtsPeer) error {
	return s.object(func(key []byte) error {
		switch string(key) {
		case "server":
			v, err := s.str()
			p.Server = v
			return err
		case "requestCounter":
			return s.uint(&p.RequestCounter)
		case "inBytes":
			return s.uint(&p.InBytes)
		case "outBytes":
			return s.uint(&p.OutBytes)
		case "requestMsecCounter":
			return s.uint(&p.RequestMsecCounter)
		case "requestMsec":
			return s.float(&p.RequestMsec)
		case "weight":
			return s.int(&p.Weight)
		case "backup":
			return s.bool(&p.Backup)
		case "down":
			return s.bool(&p.Down)
		case "responses":
			return s.object(func(class []byte) error {
				switch string(class) {
				case "1xx":
					return s.uint(&p.Responses.R1xx)
				case "2xx":
					return s.uint(&p.Responses.R2xx)
				case "3xx":
					return s.uint(&p.Responses.R3xx)
				case "4xx":
					return s.uint(&p.Responses.R4xx)
				case "5xx":
					return s.uint(&p.Responses.R5xx)
				}
				return s.skip()
			})
		}
		return s.skip()
	})
}
