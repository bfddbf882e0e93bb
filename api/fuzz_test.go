package api

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"0", "1", "1.5", "30m", "0s", "2026-11-28T09:00:00Z", "-1", "NaN", "Inf", "1e3", "99999999999", "9223372035.999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseSince(v, testNow)
		if err != nil {
			return
		}
		if isDecimal(v) && got.Before(testNow) && got.UnixNano() < 0 {
			t.Fatalf("ParseSince(%q) = %s: Unix seconds before 1970", v, got)
		}
	})
}

func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{`{"mode":"manual"}`, `{"Mode":"manual"}`, `{"mode":"a"}{"mode":"b"}`, `{"mode":"a","mode":"b"}`, `null`, `[]`, `{"mode":"a","pool":"web"} `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req modeRequest
		if err := DecodeStrict(strings.NewReader(body), &req); err != nil {
			return
		}
		// Accepted: re-decoding with case-folded keys must not find more.
		low := strings.ToLower(body)
		if strings.Contains(body, `"`) && low != body && strings.Contains(low, `"mode"`) && !strings.Contains(body, `"mode"`) {
			t.Fatalf("accepted %q with no exact \"mode\" key", body)
		}
	})
}

func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{"10.0.0.7:8080", "[::1]:80", "web-1.internal:80", "<<", "host\v:80", "host:0", "host:65536", "1.2.3:80", "[fe80::1%eth0]:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if CheckAddress(addr) != nil {
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("accepted %q: %v", addr, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("accepted %q with port %q", addr, port)
		}
		if host == "" || strings.ContainsAny(host, "<>%") || strings.IndexFunc(addr, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII }) >= 0 {
			t.Fatalf("accepted %q", addr)
		}
	})
}
