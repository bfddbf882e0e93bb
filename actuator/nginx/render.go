package nginx

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxWeight is the largest server weight NGINX accepts; weights are 1..MaxWeight.
const MaxWeight = 1000

// ErrInvalidUpstream marks an upstream definition NGINX would refuse (or that
// would not mean what the caller intended); RenderUpstreams returns it wrapped
// with the upstream and server concerned.
var ErrInvalidUpstream = errors.New("invalid upstream")

// Upstream is one managed NGINX upstream block: a pool as NGINX sees it.
type Upstream struct {
	// Name is the upstream's name, referenced as proxy_pass http://<Name>.
	Name string
	// Zone is the size of the shared memory zone (e.g. "64k"); "" renders no
	// zone directive. A zone lets all workers share peer state (failures,
	// least_conn counts) and is what nginx-module-vts reports per group.
	Zone string
	// Method is the balancing method: "" (weighted round robin),
	// "least_conn", "random" or "random two". With Auto it is what lbtune
	// renders now.
	Method string
	// Auto hands the method to lbtune (`method: auto` in lbtune.yaml):
	// Method is "" (weighted round robin) until the agent advises least
	// connections, then "least_conn" until it advises round robin back
	// (SetBalance). The block carries the comment AutoComment so that an
	// adopted include file stays auto.
	Auto bool
	// Servers are the upstream's servers, rendered in this order.
	Servers []UpstreamServer
}

// UpstreamServer is one server line of an upstream block.
type UpstreamServer struct {
	// Address is host:port (or unix:/path).
	Address string
	// Name optionally names the server for lbtune (e.g. an instance id); it
	// is rendered as a trailing comment when it differs from Address. NGINX
	// itself knows servers only by address.
	Name string
	// Weight is the server's weight, 1..MaxWeight.
	Weight int
	// Down marks the server permanently unavailable: NGINX sends it no new
	// requests. lbtune marks a server Down before removing it.
	Down bool
	// Backup makes the server receive requests only when all primary
	// servers are unavailable (not allowed with the random method).
	Backup bool
	// MaxFails is the number of failed attempts within FailTimeout after
	// which the server counts as unavailable; 0 renders nothing (NGINX
	// default 1).
	MaxFails int
	// FailTimeout is the failure window and the time a failed server stays
	// unavailable; 0 renders nothing (NGINX default 10s). NGINX takes whole
	// seconds here, so it is rounded up to the next second.
	FailTimeout time.Duration
}

// methods maps an accepted Method to the directive it renders ("" = none).
var methods = map[string]string{
	"":           "",
	"least_conn": "least_conn;",
	"random":     "random;",
	"random two": "random two;",
}

// MethodAuto is the method an operator configures to let lbtune choose
// between weighted round robin and least_conn (Upstream.Auto).
const MethodAuto = "auto"

// AutoComment is the comment RenderUpstreams writes in an Auto upstream's
// block, and ParseUpstreams reads back as Auto.
const AutoComment = "lbtune: method auto"

// NewUpstream returns the upstream name with method as configured:
// MethodAuto is Auto, rendering weighted round robin to start with.
func NewUpstream(name, method string) Upstream {
	if method == MethodAuto {
		return Upstream{Name: name, Auto: true}
	}
	return Upstream{Name: name, Method: method}
}

// RenderUpstreams writes the upstream blocks ups to w, in the given order,
// as an NGINX include file for the http context. The output depends only on
// ups (no timestamps), so equal inputs give byte-identical files. It
// validates everything first and writes nothing when ups is invalid; the
// error wraps ErrInvalidUpstream and joins every problem found.
func RenderUpstreams(w io.Writer, ups []Upstream) error {
	if err := ValidateUpstreams(ups); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# Managed by lbtune: this file is rewritten on every change, do not edit it.")
	for _, u := range ups {
		fmt.Fprintf(bw, "\nupstream %s {\n", u.Name)
		if u.Zone != "" {
			fmt.Fprintf(bw, "    zone %s %s;\n", u.Name, u.Zone)
		}
		if u.Auto {
			fmt.Fprintf(bw, "    # %s\n", AutoComment)
		}
		if d := methods[u.Method]; d != "" {
			fmt.Fprintf(bw, "    %s\n", d)
		}
		for _, s := range u.Servers {
			comment := ""
			if s.Name != "" && s.Name != s.Address {
				comment = " # " + s.Name
			}
			fmt.Fprintf(bw, "    server %s%s;%s\n", s.Address, serverParams(s), comment)
		}
		fmt.Fprintln(bw, "}")
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write upstreams: %w", err)
	}
	return nil
}

// serverParams renders the parameters of one server line, each with a
// leading space, in a fixed order.
func serverParams(s UpstreamServer) string {
	var b strings.Builder
	fmt.Fprintf(&b, " weight=%d", s.Weight)
	if s.MaxFails > 0 {
		fmt.Fprintf(&b, " max_fails=%d", s.MaxFails)
	}
	if s.FailTimeout > 0 {
		fmt.Fprintf(&b, " fail_timeout=%s", nginxDuration(s.FailTimeout))
	}
	if s.Backup {
		b.WriteString(" backup")
	}
	if s.Down {
		b.WriteString(" down")
	}
	return b.String()
}

// nginxDuration renders d as whole seconds, rounded up ("10s", 1.5s ->
// "2s"): the upstream server's fail_timeout refuses "ms" units.
func nginxDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", (d+time.Second-1)/time.Second)
}

// ValidateUpstreams reports every problem in ups that would make NGINX
// refuse the rendered file or change its meaning: bad or duplicate names,
// unknown methods, empty upstreams, weights outside 1..MaxWeight, backup
// servers with the random method, duplicate addresses, negative limits.
func ValidateUpstreams(ups []Upstream) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidUpstream}, args...)...))
	}
	names := make(map[string]bool, len(ups))
	for i, u := range ups {
		if !isToken(u.Name) {
			bad("upstream %d: name %q must be a non-empty word without spaces, quotes, ';', '{' or '}'", i, u.Name)
		}
		if names[u.Name] {
			bad("upstream %q defined twice", u.Name)
		}
		names[u.Name] = true
		if u.Zone != "" && !isSize(u.Zone) {
			bad("upstream %q: zone size %q must look like 64k, 1m or 32768", u.Name, u.Zone)
		}
		if _, ok := methods[u.Method]; !ok {
			bad("upstream %q: method %q is not one of \"\", least_conn, random, random two", u.Name, u.Method)
		}
		if u.Auto && u.Method != "" && u.Method != "least_conn" {
			bad("upstream %q: method auto renders \"\" or least_conn, not %q", u.Name, u.Method)
		}
		if len(u.Servers) == 0 {
			bad("upstream %q has no servers (nginx refuses an empty upstream)", u.Name)
		}
		addrs := make(map[string]bool, len(u.Servers))
		for _, s := range u.Servers {
			if !isToken(s.Address) {
				bad("upstream %q: server address %q must be a non-empty word without spaces, quotes, ';', '{' or '}'", u.Name, s.Address)
			}
			if addrs[s.Address] {
				bad("upstream %q: server %s listed twice", u.Name, s.Address)
			}
			addrs[s.Address] = true
			if s.Weight < 1 || s.Weight > MaxWeight {
				bad("upstream %q: server %s weight %d outside 1..%d (use Down to take a server out)", u.Name, s.Address, s.Weight, MaxWeight)
			}
			if s.Name != "" && strings.ContainsAny(s.Name, "\r\n") {
				bad("upstream %q: server %s name %q spans lines", u.Name, s.Address, s.Name)
			}
			if s.MaxFails < 0 {
				bad("upstream %q: server %s max_fails %d is negative", u.Name, s.Address, s.MaxFails)
			}
			if s.FailTimeout < 0 {
				bad("upstream %q: server %s fail_timeout %s is negative", u.Name, s.Address, s.FailTimeout)
			}
			if s.Backup && strings.HasPrefix(u.Method, "random") {
				bad("upstream %q: server %s is a backup, which nginx does not allow with method %q", u.Name, s.Address, u.Method)
			}
		}
	}
	return errors.Join(errs...)
}

// isToken reports whether s can be written unquoted as one NGINX config word:
// no space or control character (a form feed rendered as nothing), no
// quote, ';', braces, '#', backslash or '$'.
func isToken(s string) bool {
	if s == "" || strings.ContainsAny(s, ";{}\"'#\\$") {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// isSize reports whether s is an NGINX size: digits with an optional k/K/m/M suffix.
func isSize(s string) bool {
	n := strings.TrimRight(s, "kKmM")
	if len(s)-len(n) > 1 || n == "" {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
