package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestNodeAddChecksAddress: node add refuses an address that is not
// HOST:PORT with a valid host and port as a usage error (exit 2), without
// calling the daemon; a valid one is sent.
func TestNodeAddChecksAddress(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"result":"pool web: added"}`))
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr     string
		wantCode int
		want     string // substring of stdout+stderr
	}{
		{"127.0.0.1:8080", 0, "pool web: added"},
		{"web-1.internal:80", 0, "pool web: added"},
		{"[::1]:80", 0, "pool web: added"},
		{"<<", 2, `address "<<": want HOST:PORT`},
		{"<<:80", 2, `host "<<" is neither`},
		{"host\v:80", 2, "is neither an IP address nor a DNS name"},
		{"host:0", 2, "want 1..65535"},
		{"host:65536", 2, "want 1..65535"},
		{"host", 2, "want HOST:PORT"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			before := calls.Load()
			var out, errb bytes.Buffer
			code := runMain(context.Background(), []string{"node", "--addr", strings.TrimPrefix(srv.URL, "http://"), "--token-file", tok, "add", "web", tc.addr}, &out, &errb)
			got := out.String() + errb.String()
			if code != tc.wantCode || !strings.Contains(got, tc.want) {
				t.Fatalf("exit %d, output %q; want %d containing %q", code, got, tc.wantCode, tc.want)
			}
			if sent := calls.Load() - before; (tc.wantCode == 0) != (sent == 1) {
				t.Errorf("%d requests sent to the daemon", sent)
			}
		})
	}
}

// TestAnalyzeNoUsableLineExits1: analyze of a file with no usable line
// exits 1 naming the file and the lines skipped.
func TestAnalyzeNoUsableLineExits1(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("a,b,c\n1,2,3\n4,5,6\nx,y,z\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(good, []byte("time,target,status,latency_ms,bytes,error,server,service_ms\n2026-11-28T09:25:50.666146011Z,http://h/light,200,8.436,30,,s1,7.172\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"analyze", bad}, 1, "lbtune analyze: " + bad + ": no usable line: 4 lines read, 4 skipped"},
		{[]string{"analyze", "--json", bad}, 1, bad + ": no usable line: 4 lines read, 4 skipped"},
		{[]string{"analyze", empty}, 1, empty + ": no usable line: 0 lines read"},
		{[]string{"analyze", good}, 0, "loadgen: 1 lines, 0 skipped"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := runMain(context.Background(), tc.args, &out, &errb)
		if got := out.String() + errb.String(); code != tc.wantCode || !strings.Contains(got, tc.want) {
			t.Errorf("%v: exit %d, output %q; want %d containing %q", tc.args, code, got, tc.wantCode, tc.want)
		}
	}
}
