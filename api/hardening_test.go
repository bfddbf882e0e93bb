package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/internal/testkit"
)

func debugLogger(buf *testkit.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// do sends one request to h and returns the status and body.
func do(t *testing.T, srv *httptest.Server, method, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestParseSince(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "0", want: time.Unix(0, 0).UTC()},
		{in: "1", want: time.Unix(1, 0).UTC()},
		{in: "1764320400", want: time.Unix(1764320400, 0).UTC()},
		{in: "1.5", want: time.Unix(1, 5e8).UTC()},
		{in: "+2", want: time.Unix(2, 0).UTC()},
		{in: "0s", want: testNow},
		{in: "30m", want: testNow.Add(-30 * time.Minute)},
		{in: "1h30m", want: testNow.Add(-90 * time.Minute)},
		{in: "2026-11-28T09:00:00Z", want: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)},
		{in: "2026-11-28T09:00:00.25+01:00", want: time.Date(2026, 11, 28, 8, 0, 0, 25e7, time.UTC)},
		{in: "-1", wantErr: true},
		{in: "-5m", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "Inf", wantErr: true},
		{in: "1e3", wantErr: true},
		{in: "0x10", wantErr: true},
		{in: "99999999999", wantErr: true},
		{in: ".", wantErr: true},
		{in: "1000-01-01T00:00:00Z", wantErr: true},
		{in: "3000-01-01T00:00:00Z", wantErr: true},
		{in: "yesterday", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSince(tc.in, testNow)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseSince(%q) = %s, want an error", tc.in, got)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("ParseSince(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

// sinceRecorder records the since the API passed to Decisions.
type sinceRecorder struct {
	*fakeDaemon
	mu    sync.Mutex
	since time.Time
}

func (s *sinceRecorder) Decisions(ctx context.Context, pool string, since time.Time, limit int) ([]agent.Decision, error) {
	s.mu.Lock()
	s.since = since
	s.mu.Unlock()
	return s.fakeDaemon.Decisions(ctx, pool, since, limit)
}

// TestDecisionsSinceZero: since=0 is the Unix epoch (every decision), not
// a zero duration (none).
func TestDecisionsSinceZero(t *testing.T) {
	r := &sinceRecorder{fakeDaemon: newFake()}
	srv := httptest.NewServer(Handler(Options{Reader: r, Operator: r.fakeDaemon, Now: func() time.Time { return testNow }}))
	defer srv.Close()
	for _, tc := range []struct {
		query string
		want  time.Time
		n     int // decisions answered
	}{
		{"since=0", time.Unix(0, 0), 30},
		{"since=0&limit=1", time.Unix(0, 0), 1},
		{"since=1", time.Unix(1, 0), 30},
		{"since=0s", testNow, 0},
		{"since=10m", testNow.Add(-10 * time.Minute), 10},
	} {
		code, body := do(t, srv, "GET", "/v1/decisions?"+tc.query, "", "")
		r.mu.Lock()
		got := r.since
		r.mu.Unlock()
		if code != 200 || !got.Equal(tc.want) {
			t.Errorf("%s: status %d, since %s; want 200, %s", tc.query, code, got, tc.want)
		}
		if n := strings.Count(body, `"outcome"`); n != tc.n {
			t.Errorf("%s: %d decisions, want %d", tc.query, n, tc.n)
		}
	}
}

// TestStrictBodies: a JSON body is one object whose keys are the fields'
// exact names, each once; anything else is a 400 that never reaches the
// operator.
func TestStrictBodies(t *testing.T) {
	const auth = "Bearer s3cret"
	tests := []struct {
		name, path, body string
		wantCode         int
		wantBody         string
	}{
		{"plain", "/v1/mode", `{"mode":"manual"}`, 200, `"mode": "manual"`},
		{"trailing whitespace", "/v1/mode", "{\"mode\":\"manual\"}\n \t\n", 200, `"mode": "manual"`},
		{"second object", "/v1/mode", `{"mode":"manual"}{"mode":"auto"}`, 400, "data after the JSON object"},
		{"trailing garbage", "/v1/mode", `{"mode":"manual"} x`, 400, "after the JSON object"},
		{"trailing number", "/v1/scale", `{"pool":"web","delta":1}1`, 400, "data after the JSON object"},
		{"wrong-case key", "/v1/mode", `{"Mode":"manual"}`, 400, `unknown field \"Mode\"`},
		{"upper-case key", "/v1/scale", `{"pool":"web","DELTA":1}`, 400, `unknown field \"DELTA\"`},
		{"wrong-case optional key", "/v1/mode", `{"mode":"manual","POOL":"web"}`, 400, `unknown field \"POOL\"`},
		{"node wrong-case key", "/v1/nodes", `{"op":"launch","Pool":"web"}`, 400, `unknown field \"Pool\"`},
		{"duplicate key", "/v1/mode", `{"mode":"auto","mode":"manual"}`, 400, "given twice"},
		{"unknown key", "/v1/mode", `{"mood":"auto"}`, 400, "unknown field"},
		{"null", "/v1/mode", `null`, 400, "want a JSON object"},
		{"array", "/v1/mode", `[{"mode":"manual"}]`, 400, "want a JSON object"},
		{"empty", "/v1/mode", ``, 400, "decode request"},
		{"wrong type", "/v1/scale", `{"pool":"web","delta":"1"}`, 400, "decode request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.mode["web"] = "manual"
			srv := newTestServer(t, f)
			code, body := do(t, srv, "POST", tc.path, auth, tc.body)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("status %d body %s; want %d containing %q", code, body, tc.wantCode, tc.wantBody)
			}
			if calls := len(f.calls); (code == 200) != (calls == 1) {
				t.Errorf("operator saw %d calls %q for status %d", calls, f.calls, code)
			}
		})
	}
}

// TestAuthScheme: the scheme is case-insensitive (RFC 7235), the token is not.
func TestAuthScheme(t *testing.T) {
	tests := []struct {
		auth string
		want int
	}{
		{"Bearer s3cret", 200},
		{"bearer s3cret", 200},
		{"BEARER s3cret", 200},
		{"bEaReR s3cret", 200},
		{"Bearer   s3cret", 200},
		{"  Bearer s3cret  ", 200},
		{"Bearer S3CRET", 401},
		{"Bearer s3cre", 401},
		{"Bearer s3cret2", 401},
		{"Bearers3cret", 401},
		{"Basic s3cret", 401},
		{"Bearer", 401},
		{"s3cret", 401},
		{"", 401},
	}
	for _, tc := range tests {
		t.Run(tc.auth, func(t *testing.T) {
			f := newFake()
			srv := newTestServer(t, f)
			if code, body := do(t, srv, "POST", "/v1/pools/web/pause", tc.auth, ""); code != tc.want {
				t.Fatalf("Authorization %q: status %d (%s), want %d", tc.auth, code, body, tc.want)
			}
		})
	}
}

// TestUnauthorizedLogRateLimited: 500 refused requests from one client log
// one line; a minute later the next logs the count; another client gets
// its own line. Every one is still refused.
func TestUnauthorizedLogRateLimited(t *testing.T) {
	var buf testkit.SyncBuffer
	var mu sync.Mutex
	now := testNow
	f := newFake()
	h := Handler(Options{Reader: f, Operator: f, Token: "s3cret", Logger: debugLogger(&buf), Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	send := func(remote string, n int) {
		t.Helper()
		for range n {
			req := httptest.NewRequest("POST", "/v1/mode", strings.NewReader(`{"mode":"manual"}`))
			req.RemoteAddr = remote
			req.Header.Set("Authorization", "Bearer guess")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 401 {
				t.Fatalf("status %d, want 401", w.Code)
			}
		}
	}
	send("192.0.2.7:40000", 250)
	send("192.0.2.7:40001", 250) // same client, another port
	if got := buf.Lines("refused unauthenticated request"); len(got) != 1 {
		t.Fatalf("%d log lines after 500 refusals from one client, want 1:\n%s", len(got), buf.String())
	}
	mu.Lock()
	now = now.Add(30 * time.Second)
	mu.Unlock()
	send("192.0.2.7:40002", 10)
	send("198.51.100.1:5000", 3)
	if got := buf.Lines("refused unauthenticated request"); len(got) != 2 || !strings.Contains(got[1], "remote=198.51.100.1:5000") {
		t.Fatalf("want one more line for the second client only, got:\n%s", buf.String())
	}
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	send("192.0.2.7:40003", 1)
	got := buf.Lines("refused unauthenticated request", "remote=192.0.2.7")
	if len(got) != 2 || !strings.Contains(got[1], "refused_since_last_log=509") {
		t.Fatalf("after a minute want a line counting the 509 not logged, got:\n%s", buf.String())
	}
	if len(f.calls) != 0 {
		t.Errorf("operator saw %q", f.calls)
	}
}

func TestLogLimiterBoundsClients(t *testing.T) {
	var l logLimiter
	for i := range maxLimiterKeys + 100 {
		if _, ok := l.note(fmt.Sprintf("10.0.%d.%d", i/256, i%256), testNow); !ok && i < maxLimiterKeys {
			t.Fatalf("client %d: first refusal not logged", i)
		}
	}
	if n := len(l.keys); n > maxLimiterKeys+1 {
		t.Fatalf("%d keys kept, want at most %d", n, maxLimiterKeys+1)
	}
	// A minute later idle keys are dropped to make room.
	if _, ok := l.note("203.0.113.9", testNow.Add(time.Minute)); !ok {
		t.Fatal("new client after a minute not logged")
	}
	if n := len(l.keys); n != 1 {
		t.Errorf("%d keys after pruning, want 1", n)
	}
}

// blockingDaemon answers Decisions only when the request's context ends,
// and Series with a body too large for the socket buffers.
type blockingDaemon struct {
	*fakeDaemon
	entered chan struct{}
}

func (b *blockingDaemon) Decisions(ctx context.Context, _ string, _ time.Time, _ int) ([]agent.Decision, error) {
	close(b.entered)
	<-ctx.Done()
	return nil, fmt.Errorf("read decisions: %w", ctx.Err())
}

func (b *blockingDaemon) Series(context.Context, string, time.Time) ([]collector.PoolPoint, error) {
	pts := make([]collector.PoolPoint, 100_000)
	for i := range pts {
		pts[i] = collector.PoolPoint{Time: testNow, Rate: float64(i), Servers: 3, Weights: map[string]int{"s0": 1, "s1": 2}}
	}
	return pts, nil
}

// TestClientDisconnectLoggedAtDebug: a client leaving mid-request (the
// handler's context cancelled, or the response write failing) is logged
// at DEBUG, never WARN or ERROR.
func TestClientDisconnectLoggedAtDebug(t *testing.T) {
	tests := []struct {
		name string
		path string
		// leave makes the client leave during the request.
		leave func(t *testing.T, b *blockingDaemon, url string)
	}{
		{"cancelled while the handler reads", "/v1/decisions", func(t *testing.T, b *blockingDaemon, url string) {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-b.entered
				cancel()
			}()
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Fatal("request not cancelled")
			}
		}},
		{"closed while the response is written", "/v1/series?pool=web", func(t *testing.T, _ *blockingDaemon, url string) {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close() // unread: the transport closes the connection
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf testkit.SyncBuffer
			b := &blockingDaemon{fakeDaemon: newFake(), entered: make(chan struct{})}
			done := make(chan struct{}, 1)
			h := Handler(Options{Reader: b, Operator: b, Token: "s3cret", Logger: debugLogger(&buf)})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer func() { done <- struct{}{} }()
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			tc.leave(t, b, srv.URL+tc.path)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("handler did not return within 10 s of the client leaving")
			}
			if bad := append(buf.Lines("level=ERROR"), buf.Lines("level=WARN")...); len(bad) > 0 {
				t.Fatalf("client disconnect logged above DEBUG:\n%s", strings.Join(bad, "\n"))
			}
			if got := buf.Lines("level=DEBUG", "client left"); len(got) != 1 {
				t.Fatalf("want one DEBUG line for the disconnect, log:\n%s", buf.String())
			}
		})
	}
}

// TestClientGoneIsNarrow: a daemon failure while the client is still there
// is not mistaken for a disconnect.
func TestClientGoneIsNarrow(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if clientGone(r, errors.New("disk full")) || clientGone(r, context.Canceled) {
		t.Error("an error with the request's context alive taken for a disconnect")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = r.WithContext(ctx)
	if !clientGone(r, fmt.Errorf("range: %w", context.Canceled)) {
		t.Error("cancelled request's context.Canceled not taken for a disconnect")
	}
	if clientGone(r, errors.New("disk full")) {
		t.Error("a store error taken for a disconnect")
	}
}

// TestNodeAddAddress: the API refuses an add whose address is not
// HOST:PORT with a valid host and port, with 400, before the daemon.
func TestNodeAddAddress(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"10.0.0.7:8080", true},
		{"[::1]:80", true},
		{"[2001:db8::1]:65535", true},
		{"web-1.internal:80", true},
		{"web_1.internal.:80", true},
		{"localhost:1", true},
		{"<<", false},
		{"<<:80", false},
		{"a<b:80", false},
		{"host\v:80", false},
		{"\vhost:80", false},
		{"host:80\v", false},
		{"ho st:80", false},
		{"host :80", false},
		{"host:80 ", false},
		{"host\n:80", false},
		{"host\x00:80", false},
		{"host", false},
		{"host:", false},
		{":80", false},
		{"host:0", false},
		{"host:65536", false},
		{"host:-1", false},
		{"host:+80", false},
		{"host:http", false},
		{"host:0x50", false},
		{"::1:80", false},
		{"[fe80::1%eth0]:80", false},
		{"1.2.3:80", false},
		{"999.1.1.1:80", false},
		{"-web:80", false},
		{"web..internal:80", false},
		{strings.Repeat("a", 64) + ".x:80", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.addr), func(t *testing.T) {
			f := newFake()
			srv := newTestServer(t, f)
			addr, _ := json.Marshal(tc.addr)
			body := fmt.Sprintf(`{"op":"add","pool":"web","address":%s}`, addr)
			code, resp := do(t, srv, "POST", "/v1/nodes", "Bearer s3cret", body)
			switch {
			case tc.ok && (code != 200 || len(f.calls) != 1):
				t.Fatalf("status %d (%s), calls %q; want 200 and the add passed on", code, resp, f.calls)
			case !tc.ok && (code != 400 || len(f.calls) != 0 || !strings.Contains(resp, "address")):
				t.Fatalf("status %d (%s), calls %q; want 400 naming the address and no call", code, resp, f.calls)
			}
			if err := CheckAddress(tc.addr); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadRequest)) {
				t.Errorf("CheckAddress(%q) = %v", tc.addr, err)
			}
		})
	}
}

func TestNodeRequestValidate(t *testing.T) {
	tests := []struct {
		req  NodeRequest
		want string // "" = valid
	}{
		{NodeRequest{Op: "launch", Pool: "web"}, ""},
		{NodeRequest{Op: "rm", Pool: "web", Name: "s1"}, ""},
		{NodeRequest{Op: "add", Pool: "web", Address: "10.0.0.1:80"}, ""},
		{NodeRequest{Op: "reboot", Pool: "web"}, "want add, rm or launch"},
		{NodeRequest{Op: "launch"}, "pool is required"},
		{NodeRequest{Op: "add", Pool: "web"}, "want HOST:PORT"},
		{NodeRequest{Op: "rm", Pool: "web"}, "name is required"},
	}
	for _, tc := range tests {
		err := tc.req.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrBadRequest))) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.req, err, tc.want)
		}
	}
}
