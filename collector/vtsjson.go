package collector

import (
	"bytes"
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
// What it reads it checks fully (types, unsigned ranges, string escapes).
// What it skips it checks only for balanced brackets and terminated
// strings, so a truncated document is always an error. Duplicate keys: the
// last one wins, as with encoding/json; null leaves a field at zero.
type vtsScanner struct {
	data []byte
	pos  int
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
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
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
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
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

// null consumes a null literal if one is next.
func (s *vtsScanner) null() bool {
	if s.peek() == 'n' && len(s.data)-s.pos >= 4 && string(s.data[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
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
	if s.null() {
		return nil
	}
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
	if s.null() {
		return nil
	}
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
	if s.null() {
		return nil
	}
	lit := s.literal()
	v, err := strconv.Atoi(string(lit))
	if err != nil {
		return s.errAt("want an integer, got %q", clip(string(lit)))
	}
	*dst = v
	return nil
}

func (s *vtsScanner) bool(dst *bool) error {
	if s.null() {
		return nil
	}
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

// flatArrayEnd returns the offset of the ']' closing the array that starts
// at a[0] when the array holds no nested array, object or string; 0
// otherwise.
func flatArrayEnd(a []byte) int {
	end := bytes.IndexByte(a, ']')
	if end <= 0 {
		return 0
	}
	in := a[1:end]
	if bytes.IndexByte(in, '[') >= 0 || bytes.IndexByte(in, '{') >= 0 || bytes.IndexByte(in, '"') >= 0 || bytes.IndexByte(in, '}') >= 0 {
		return 0
	}
	return end
}

// jsonStructural marks the bytes skip must look at inside a container.
var jsonStructural = [256]bool{'{': true, '}': true, '[': true, ']': true, '"': true}

// skip consumes one value of any type. Containers are matched by bracket
// depth with strings stepped over, which is enough to find where the value
// ends and to reject truncation.
func (s *vtsScanner) skip() error {
	switch c := s.peek(); c {
	case 0:
		return s.errAt("unexpected end of document, want a value")
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
		depth := 0
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
			switch data[s.pos] {
			case '[':
				// A flat array (a latency ring: numbers only) ends at the
				// next ']' when no bracket or quote comes before it; find
				// both with IndexByte, which is much faster than stepping.
				depth++
				if end := flatArrayEnd(data[s.pos:]); end > 0 {
					s.pos += end
					continue // at its ']', which closes it on the next pass
				}
			case '{':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.pos++
					return nil
				}
			case '"':
				for s.pos++; s.pos < len(s.data) && s.data[s.pos] != '"'; s.pos++ {
					if s.data[s.pos] == '\\' {
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
			if s.null() {
				return nil
			}
			doc.UpstreamZones = map[string][]vtsPeer{}
			return s.object(func(key []byte) error {
				group := string(key)
				var peers []vtsPeer
				if !s.null() {
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
			if s.null() {
				return nil
			}
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
			if s.null() {
				return nil
			}
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
