package nginx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrUnsupported marks an include file that holds something RenderUpstreams
// cannot write back (another directive, a server parameter such as
// max_conns, a keepalive): adopting it would silently drop that part.
var ErrUnsupported = errors.New("not supported in a managed include")

// maxIncludeSize bounds what ParseUpstreams reads (a managed include of a
// few hundred servers is a few tens of kilobytes).
const maxIncludeSize = 4 << 20

// ReadUpstreams parses the include file at path (see ParseUpstreams): the
// upstreams a running NGINX was started or last reloaded with, to pass to
// New so that lbtune adopts them instead of rewriting the file.
func ReadUpstreams(path string) ([]Upstream, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read upstreams: %w", err)
	}
	defer f.Close()
	ups, err := ParseUpstreams(f)
	if err != nil {
		return nil, fmt.Errorf("read upstreams from %s: %w", path, err)
	}
	return ups, nil
}

// ParseUpstreams reads an include file of upstream blocks, as
// RenderUpstreams writes them or as written by hand in the same subset:
// "upstream NAME { zone NAME SIZE; least_conn|random|random two; server
// ADDR [weight=N] [max_fails=N] [fail_timeout=T] [backup] [down]; }",
// with a comment after a server line read as the server's Name and the
// comment AutoComment in the block as Auto. Anything
// else is an error wrapping ErrUnsupported (so nothing is dropped
// silently); the upstreams returned pass ValidateUpstreams, and
// RenderUpstreams(ParseUpstreams(RenderUpstreams(x))) is byte-identical.
func ParseUpstreams(r io.Reader) ([]Upstream, error) {
	src, err := io.ReadAll(io.LimitReader(r, maxIncludeSize+1))
	if err != nil {
		return nil, fmt.Errorf("parse upstreams: %w", err)
	}
	if len(src) > maxIncludeSize {
		return nil, fmt.Errorf("parse upstreams: larger than %d bytes", maxIncludeSize)
	}
	toks, err := lexConf(src)
	if err != nil {
		return nil, fmt.Errorf("parse upstreams: %w", err)
	}
	p := &upParser{src: src, toks: toks}
	var ups []Upstream
	for {
		p.skipComments()
		if p.i >= len(p.toks) {
			break
		}
		u, err := p.upstream()
		if err != nil {
			return nil, fmt.Errorf("parse upstreams: %w", err)
		}
		ups = append(ups, u)
	}
	if err := ValidateUpstreams(ups); err != nil {
		return nil, fmt.Errorf("parse upstreams: %w", err)
	}
	return ups, nil
}

// upParser walks the tokens of an include file.
type upParser struct {
	src  []byte
	toks []token
	i    int
}

func (p *upParser) skipComments() {
	for p.i < len(p.toks) && p.toks[p.i].kind == tokComment {
		p.i++
	}
}

// line returns the 1-based line of byte offset off, for error messages.
func (p *upParser) line(off int) int {
	return 1 + strings.Count(string(p.src[:min(off, len(p.src))]), "\n")
}

// statement reads words up to ';' or '{' (comments skipped) and returns
// them with the terminator's kind; ok is false at a '}' or the end.
func (p *upParser) statement() (words []token, end tokKind, ok bool, err error) {
	for ; p.i < len(p.toks); p.i++ {
		t := p.toks[p.i]
		switch t.kind {
		case tokComment:
		case tokWord:
			words = append(words, t)
		case tokRBrace:
			if len(words) > 0 {
				return nil, 0, false, fmt.Errorf("line %d: missing ';' after %q", p.line(t.start), words[0].text)
			}
			return nil, tokRBrace, false, nil
		default:
			p.i++
			if len(words) == 0 {
				return nil, 0, false, fmt.Errorf("line %d: unexpected %q", p.line(t.start), t.text)
			}
			return words, t.kind, true, nil
		}
	}
	if len(words) > 0 {
		return nil, 0, false, fmt.Errorf("line %d: %q not terminated", p.line(words[0].start), words[0].text)
	}
	return nil, 0, false, nil
}

// upstream parses one "upstream NAME { ... }" block.
func (p *upParser) upstream() (Upstream, error) {
	words, end, ok, err := p.statement()
	if err != nil {
		return Upstream{}, err
	}
	if !ok {
		return Upstream{}, fmt.Errorf("unexpected '}' or end of file")
	}
	if words[0].text != "upstream" || end != tokLBrace || len(words) != 2 {
		return Upstream{}, fmt.Errorf("line %d: %q: only upstream NAME { ... } blocks: %w", p.line(words[0].start), words[0].text, ErrUnsupported)
	}
	u := Upstream{Name: words[1].text}
	for {
		// RenderUpstreams' AutoComment, on a line of its own in the block.
		for ; p.i < len(p.toks) && p.toks[p.i].kind == tokComment; p.i++ {
			if strings.TrimSpace(p.toks[p.i].text) == AutoComment {
				u.Auto = true
			}
		}
		words, end, ok, err := p.statement()
		if err != nil {
			return Upstream{}, fmt.Errorf("upstream %q: %w", u.Name, err)
		}
		if !ok {
			if end != tokRBrace {
				return Upstream{}, fmt.Errorf("upstream %q: missing '}'", u.Name)
			}
			p.i++ // the '}'
			return u, nil
		}
		at := p.line(words[0].start)
		if end != tokSemi {
			return Upstream{}, fmt.Errorf("upstream %q line %d: block %q: %w", u.Name, at, words[0].text, ErrUnsupported)
		}
		args := texts(words[1:])
		switch d := words[0].text; {
		case d == "zone" && len(args) == 2:
			u.Zone = args[1]
		case d == "least_conn" && len(args) == 0 && u.Method == "":
			u.Method = "least_conn"
		case d == "random" && len(args) == 0 && u.Method == "":
			u.Method = "random"
		case d == "random" && len(args) == 1 && args[0] == "two" && u.Method == "":
			u.Method = "random two"
		case d == "server" && len(args) >= 1:
			s, err := parseServer(args)
			if err != nil {
				return Upstream{}, fmt.Errorf("upstream %q line %d: %w", u.Name, at, err)
			}
			// A comment on the same line, after the ';', names the server.
			if p.i < len(p.toks) && p.toks[p.i].kind == tokComment &&
				!strings.Contains(string(p.src[p.toks[p.i-1].end:p.toks[p.i].start]), "\n") {
				// RenderUpstreams writes "; # Name": undo exactly that.
				s.Name = strings.TrimSuffix(strings.TrimPrefix(p.toks[p.i].text, " "), "\r")
				p.i++
			}
			u.Servers = append(u.Servers, s)
		default:
			return Upstream{}, fmt.Errorf("upstream %q line %d: %q with %d arguments: %w", u.Name, at, d, len(args), ErrUnsupported)
		}
	}
}

func texts(ts []token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.text
	}
	return out
}

// parseServer parses the arguments of a server directive.
func parseServer(args []string) (UpstreamServer, error) {
	s := UpstreamServer{Address: args[0], Weight: 1}
	for _, a := range args[1:] {
		key, val, hasVal := strings.Cut(a, "=")
		var err error
		switch {
		case key == "weight" && hasVal:
			s.Weight, err = strconv.Atoi(val)
		case key == "max_fails" && hasVal:
			s.MaxFails, err = strconv.Atoi(val)
		case key == "fail_timeout" && hasVal:
			s.FailTimeout, err = parseNginxTime(val)
		case a == "backup":
			s.Backup = true
		case a == "down":
			s.Down = true
		default:
			return UpstreamServer{}, fmt.Errorf("server %s: parameter %q: %w", s.Address, a, ErrUnsupported)
		}
		if err != nil {
			return UpstreamServer{}, fmt.Errorf("server %s: parameter %q: %w", s.Address, a, err)
		}
	}
	return s, nil
}

// nginxTimeUnits are the units NGINX accepts in a time value.
var nginxTimeUnits = map[string]time.Duration{
	"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
	"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "M": 30 * 24 * time.Hour, "y": 365 * 24 * time.Hour,
}

// parseNginxTime parses an NGINX time such as "10", "10s", "1m30s" or
// "500ms" (a bare number is seconds).
func parseNginxTime(v string) (time.Duration, error) {
	if v == "" {
		return 0, fmt.Errorf("empty time")
	}
	var total time.Duration
	for v != "" {
		j := 0
		for j < len(v) && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		if j == 0 || j > 9 {
			return 0, fmt.Errorf("bad time %q", v)
		}
		num, _ := strconv.Atoi(v[:j])
		v = v[j:]
		k := 0
		for k < len(v) && (v[k] < '0' || v[k] > '9') {
			k++
		}
		unit := v[:k]
		v = v[k:]
		if unit == "" {
			if v != "" {
				return 0, fmt.Errorf("bad time unit")
			}
			unit = "s"
		}
		d, ok := nginxTimeUnits[unit]
		if !ok {
			return 0, fmt.Errorf("bad time unit %q", unit)
		}
		if time.Duration(num) > (1<<62)/d-total/d {
			return 0, fmt.Errorf("time too large")
		}
		total += time.Duration(num) * d
	}
	return total, nil
}
