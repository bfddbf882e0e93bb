package api

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"0", "1", "1.5", "30m", "0s", "2026-11-28T09:00:00Z", "-1", "NaN", "Inf", "1e3", "99999999999", "9223372035.999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseSince(v, testNow)
		if err != nil || !isDecimal(v) {
			return
		}
		// Unix seconds: at or after 1970, and a time the store can key.
		if got.Before(time.Unix(0, 0)) || !time.Unix(0, got.UnixNano()).Equal(got) {
			t.Fatalf("ParseSince(%q) = %s", v, got)
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
		// Accepted: one JSON object whose keys are exactly mode and pool.
		var m map[string]json.RawMessage
		if !json.Valid([]byte(body)) || json.Unmarshal([]byte(body), &m) != nil || m == nil {
			t.Fatalf("accepted %q: not one JSON object", body)
		}
		for k := range m {
			if k != "mode" && k != "pool" {
				t.Fatalf("accepted %q with key %q", body, k)
			}
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
