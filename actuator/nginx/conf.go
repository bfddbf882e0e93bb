package nginx

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// errSyntax marks NGINX configuration text this package cannot tokenize.
var errSyntax = errors.New("nginx config syntax")

// tokKind is the kind of one configuration token.
type tokKind int

const (
	tokWord    tokKind = iota // a bare or quoted word
	tokSemi                   // ;
	tokLBrace                 // {
	tokRBrace                 // }
	tokComment                // # to the end of the line (text without the '#')
)

// token is one configuration token: its kind, its value (quotes removed,
// escapes applied as NGINX applies them) and its byte span in the source.
type token struct {
	kind       tokKind
	text       string
	start, end int
}

// lexConf splits NGINX configuration text into tokens the way NGINX's own
// reader (ngx_conf_read_token) does: words end at whitespace, ';' or '{'
// ("${" and '}' stay inside a word), quoted words run to the matching
// quote, a '#' at the start of a token comments out the rest of the line,
// and a backslash escapes the next byte. Comments are kept as tokComment.
func lexConf(src []byte) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '#':
			start := i
			for i < len(src) && src[i] != '\n' {
				i++
			}
			toks = append(toks, token{kind: tokComment, text: string(src[start+1 : i]), start: start, end: i})
		case c == ';':
			toks = append(toks, token{kind: tokSemi, text: ";", start: i, end: i + 1})
			i++
		case c == '{':
			toks = append(toks, token{kind: tokLBrace, text: "{", start: i, end: i + 1})
			i++
		case c == '}':
			toks = append(toks, token{kind: tokRBrace, text: "}", start: i, end: i + 1})
			i++
		case c == '"' || c == '\'':
			start := i
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, fmt.Errorf("%w: unterminated %c quote at byte %d", errSyntax, c, start)
				}
				if src[i] == '\\' && i+1 < len(src) {
					b.WriteString(unescape(src[i+1]))
					i += 2
					continue
				}
				if src[i] == c {
					i++
					break
				}
				b.WriteByte(src[i])
				i++
			}
			// NGINX wants a separator after a closing quote.
			if i < len(src) && !strings.ContainsRune(" \t\r\n;{})", rune(src[i])) {
				return nil, fmt.Errorf("%w: unexpected %q after quoted word at byte %d", errSyntax, src[i], i)
			}
			toks = append(toks, token{kind: tokWord, text: b.String(), start: start, end: i})
		default:
			start := i
			var b strings.Builder
			variable := false
			for i < len(src) {
				d := src[i]
				if d == '{' && variable {
					b.WriteByte(d)
					variable = false
					i++
					continue
				}
				variable = false
				if d == ' ' || d == '\t' || d == '\r' || d == '\n' || d == ';' || d == '{' {
					break
				}
				if d == '\\' && i+1 < len(src) {
					b.WriteString(unescape(src[i+1]))
					i += 2
					continue
				}
				if d == '$' {
					variable = true
				}
				b.WriteByte(d)
				i++
			}
			toks = append(toks, token{kind: tokWord, text: b.String(), start: start, end: i})
		}
	}
	return toks, nil
}

// unescape returns what NGINX makes of a backslash followed by c.
func unescape(c byte) string {
	switch c {
	case '"', '\'', '\\':
		return string(c)
	case 't':
		return "\t"
	case 'r':
		return "\r"
	case 'n':
		return "\n"
	}
	return "\\" + string(c)
}

// directive is one simple directive (name, arguments, ';') of a file.
type directive struct {
	name       string
	args       []string
	start, end int // byte span from the name to the ';'
}

// directives lists the simple directives of toks (those ending in ';', at
// any nesting depth), in order.
func directives(toks []token) []directive {
	var out []directive
	var cur []token
	for _, t := range toks {
		switch t.kind {
		case tokWord:
			cur = append(cur, t)
		case tokComment: // a comment may sit inside a directive; it is no part of it
		case tokSemi:
			if len(cur) > 0 {
				d := directive{name: cur[0].text, start: cur[0].start, end: t.end}
				for _, a := range cur[1:] {
					d.args = append(d.args, a.text)
				}
				out = append(out, d)
			}
			cur = cur[:0]
		default: // a block opens or closes: a new statement starts
			cur = cur[:0]
		}
	}
	return out
}

// quoteConf renders s as one double-quoted NGINX word.
func quoteConf(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// checkFilePattern names the configuration copies written for nginx -t; it
// starts with a dot so that no glob include ("conf.d/*.conf", "sites-enabled/*")
// picks them up.
const checkFilePattern = ".lbtune-check-*.conf"

// stager builds, for nginx -t, a copy of the configuration tree in which
// every include of the managed file reads the staged file instead.
type stager struct {
	confPrefix string // directory of the main config: NGINX resolves relative paths from it
	include    string // absolute path of the managed include
	staged     string // absolute path of its staged replacement
	written    []string
	found      bool
}

// maxIncludeDepth bounds include nesting (NGINX itself has no bound; a
// cycle would otherwise never end).
const maxIncludeDepth = 16

// stageConfig writes a copy of mainConf (and of every file on the way to
// the managed include) into mainConf's directory, so relative paths still
// resolve the same, with include pointing at staged. It returns the copy
// of the main config and every file written (for the caller to remove).
func stageConfig(mainConf, include, staged string) (string, []string, error) {
	main, err := filepath.Abs(mainConf)
	if err != nil {
		return "", nil, fmt.Errorf("main config path: %w", err)
	}
	inc, err := filepath.Abs(include)
	if err != nil {
		return "", nil, fmt.Errorf("include path: %w", err)
	}
	s := &stager{confPrefix: filepath.Dir(main), include: inc, staged: staged}
	out, err := s.rewrite(main, 0)
	if err == nil && !s.found {
		err = fmt.Errorf("%s never includes %s (directly or through its includes)", mainConf, include)
	}
	if err != nil {
		s.cleanup()
		return "", nil, err
	}
	if out == main { // cannot happen when found; keep nginx -t off the live tree anyway
		s.cleanup()
		return "", nil, fmt.Errorf("%s: include of %s not rewritten", mainConf, include)
	}
	return out, s.written, nil
}

func (s *stager) cleanup() {
	for _, p := range s.written {
		_ = os.Remove(p)
	}
	s.written = nil
}

// rewrite returns the file nginx -t should read in place of file: file
// itself when nothing it includes (transitively) is the managed include,
// else a rewritten copy.
func (s *stager) rewrite(file string, depth int) (string, error) {
	if depth > maxIncludeDepth {
		return "", fmt.Errorf("includes nested deeper than %d at %s", maxIncludeDepth, file)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	toks, err := lexConf(src)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	var out bytes.Buffer
	last := 0
	changed := false
	for _, d := range directives(toks) {
		if d.name != "include" || len(d.args) != 1 {
			continue
		}
		paths, err := s.expand(d.args[0])
		if err != nil {
			return "", fmt.Errorf("%s: include %s: %w", file, d.args[0], err)
		}
		mapped := make([]string, len(paths))
		dirChanged := false
		for i, p := range paths {
			mapped[i] = p
			if samePath(p, s.include) {
				mapped[i], dirChanged, s.found = s.staged, true, true
				continue
			}
			if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
				continue // nginx -t reports it
			}
			sub, err := s.rewrite(p, depth+1)
			if err != nil {
				return "", err
			}
			if sub != p {
				mapped[i], dirChanged = sub, true
			}
		}
		if !dirChanged {
			continue
		}
		changed = true
		out.Write(src[last:d.start])
		for i, p := range mapped {
			if i > 0 {
				out.WriteByte(' ')
			}
			fmt.Fprintf(&out, "include %s;", quoteConf(p))
		}
		last = d.end
	}
	if !changed {
		return file, nil
	}
	out.Write(src[last:])
	f, err := os.CreateTemp(s.confPrefix, checkFilePattern)
	if err != nil {
		return "", fmt.Errorf("write config copy for nginx -t: %w", err)
	}
	s.written = append(s.written, f.Name())
	_, werr := f.Write(out.Bytes())
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", fmt.Errorf("write config copy for nginx -t: %w", werr)
	}
	return f.Name(), nil
}

// expand resolves an include argument as NGINX does: relative to the
// config prefix, and as a sorted glob when it holds '*', '?' or '['. The
// managed include counts as matched by a glob even before it exists.
func (s *stager) expand(arg string) ([]string, error) {
	p := arg
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.confPrefix, p)
	}
	if !strings.ContainsAny(p, "*?[") {
		return []string{filepath.Clean(p)}, nil
	}
	matches, err := filepath.Glob(p)
	if err != nil {
		return nil, fmt.Errorf("bad pattern: %w", err)
	}
	// glob(3), which NGINX uses, never lets a wildcard match a leading dot.
	matches = slices.DeleteFunc(matches, func(m string) bool { return hiddenMatch(p, m) })
	if ok, _ := filepath.Match(p, s.include); ok && !hiddenMatch(p, s.include) &&
		!slices.ContainsFunc(matches, func(m string) bool { return samePath(m, s.include) }) {
		matches = append(matches, s.include)
	}
	slices.Sort(matches)
	return matches, nil
}

// hiddenMatch reports whether path has an element starting with '.' where
// pattern's element does not: a match Go's Glob makes and glob(3) does not.
func hiddenMatch(pattern, path string) bool {
	pe := strings.Split(filepath.Clean(pattern), string(filepath.Separator))
	me := strings.Split(filepath.Clean(path), string(filepath.Separator))
	if len(pe) != len(me) {
		return false
	}
	for i := range pe {
		if strings.HasPrefix(me[i], ".") && !strings.HasPrefix(pe[i], ".") {
			return true
		}
	}
	return false
}

// samePath reports whether a and b name the same file, following symbolic
// links in their directories (b need not exist yet).
func samePath(a, b string) bool {
	a, b = filepath.Clean(a), filepath.Clean(b)
	if a == b {
		return true
	}
	if filepath.Base(a) != filepath.Base(b) {
		return false
	}
	da, err1 := filepath.EvalSymlinks(filepath.Dir(a))
	db, err2 := filepath.EvalSymlinks(filepath.Dir(b))
	return err1 == nil && err2 == nil && da == db
}
