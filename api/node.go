package api

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Validate checks a node request before it reaches the daemon: a known op,
// a pool, for add an address CheckAddress accepts, for rm a name. Its errors wrap
// ErrBadRequest.
func (r NodeRequest) Validate() error {
	switch r.Op {
	case "add", "rm", "launch":
	default:
		return fmt.Errorf("node op %q: want add, rm or launch: %w", r.Op, ErrBadRequest)
	}
	if r.Pool == "" {
		return fmt.Errorf("node %s: pool is required: %w", r.Op, ErrBadRequest)
	}
	switch {
	case r.Op == "add":
		if err := CheckAddress(r.Address); err != nil {
			return fmt.Errorf("node add to pool %s: %w", r.Pool, err)
		}
	case r.Op == "rm" && r.Name == "":
		return fmt.Errorf("node rm from pool %s: name is required: %w", r.Pool, ErrBadRequest)
	}
	return nil
}

// CheckAddress checks a server address given to node add: HOST:PORT with
// the port a number in 1..65535 and the host an IP address (IPv6 in
// brackets, no zone) or a DNS name (letters, digits, '-', '_' and dots,
// labels of 1..63 characters, 253 characters at most). Anything else, a
// control character, whitespace or '<' included, would reach a balancer's
// configuration or runtime API verbatim; the error wraps ErrBadRequest.
func CheckAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: want HOST:PORT: %w", addr, ErrBadRequest)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("address %q: port %q: want 1..65535: %w", addr, port, ErrBadRequest)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("address %q: IPv6 zone %q not allowed: %w", addr, ip.Zone(), ErrBadRequest)
		}
		if ip.Is6() && !strings.HasPrefix(addr, "[") {
			return fmt.Errorf("address %q: an IPv6 host needs brackets: %w", addr, ErrBadRequest)
		}
		return nil
	}
	if !validDNSName(host) {
		return fmt.Errorf("address %q: host %q is neither an IP address nor a DNS name: %w", addr, host, ErrBadRequest)
	}
	return nil
}

// validDNSName reports whether host is a DNS name: dot-separated labels of
// 1..63 letters, digits, '-' or '_' (not starting or ending with '-'), at
// most 253 characters, an optional final dot, and not all digits and dots
// (which would be a malformed IPv4 address).
func validDNSName(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return false
	}
	numeric := true
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
				numeric = false
			default:
				return false
			}
		}
	}
	return !numeric
}
