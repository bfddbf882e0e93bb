package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// DefaultWindow is how far back /v1/series and /v1/decisions look when
// since is not given: the dashboard's 30 minutes.
const DefaultWindow = 30 * time.Minute

//go:embed web
var webFS embed.FS

// Options configures Handler.
type Options struct {
	Reader   Reader
	Operator Operator
	// Token is the bearer token mutations need; empty refuses them all.
	Token string
	// Gatherer serves /metrics (the registry given to NewMetrics).
	Gatherer prometheus.Gatherer
	// Logger logs refused and failed requests; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Handler returns the API, /metrics, /healthz and the dashboard at /.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &server{Options: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	if o.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /v1/state", s.state)
	mux.HandleFunc("GET /v1/policy", s.policy)
	mux.HandleFunc("GET /v1/decisions", s.decisions)
	mux.HandleFunc("GET /v1/model", s.model)
	mux.HandleFunc("GET /v1/series", s.series)
	mux.HandleFunc("POST /v1/mode", s.auth(s.mode))
	mux.HandleFunc("POST /v1/scale", s.auth(s.scale))
	mux.HandleFunc("POST /v1/pools/{pool}/pause", s.auth(s.pause(true)))
	mux.HandleFunc("POST /v1/pools/{pool}/resume", s.auth(s.pause(false)))
	mux.HandleFunc("POST /v1/nodes", s.auth(s.node))
	mux.HandleFunc("POST /v1/templates/{op}", s.auth(s.template))
	// The Go runtime's profiles (heap, goroutines, CPU) behind the same
	// token as the mutations: a profile shows the process's internals and
	// a CPU profile costs CPU while it runs.
	mux.HandleFunc("GET /debug/pprof/", s.auth(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/cmdline", s.auth(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", s.auth(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", s.auth(pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", s.auth(pprof.Trace))
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		panic("api: embedded dashboard missing: " + err.Error())
	}
	mux.Handle("GET /", http.FileServerFS(web))
	return mux
}

// NewHTTPServer wraps h in an http.Server with timeouts, so a slow client
// cannot hold a connection or a goroutine forever.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

type server struct {
	Options
	refusals logLimiter
	// policies keeps encoded /v1/policy answers (policyTTL).
	policies responseCache
}

// auth refuses a mutation without the bearer token with 401. The scheme
// is matched case-insensitively (RFC 7235 section 2.1), the token in
// constant time. Refusals are logged once per client and minute, with the
// count of those not logged since, so a scanner cannot flood the log.
func (s *server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r.Header.Get("Authorization")) {
			if n, ok := s.refusals.note(clientHost(r.RemoteAddr), s.Now()); ok {
				s.Logger.Warn("refused unauthenticated request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "refused_since_last_log", n)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbtune"`)
			s.fail(w, r, http.StatusUnauthorized, errors.New("a valid bearer token is required (Authorization: Bearer <token from the token file>)"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next(w, r)
		s.policies.clear() // a change (mode, pause, template) shows at once
	}
}

// authorized reports whether the Authorization header value carries the
// configured bearer token. Both sides are hashed before the constant-time
// compare so its time does not reveal the token's length either.
func (s *server) authorized(header string) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if s.Token == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimLeft(token, " ")))
	want := sha256.Sum256([]byte(s.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// clientHost is the host of a request's remote address (the port changes
// with every connection).
func clientHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

func (s *server) state(w http.ResponseWriter, r *http.Request) {
	st, err := s.Reader.State(r.Context())
	s.reply(w, r, st, err)
}

func (s *server) policy(w http.ResponseWriter, r *http.Request) {
	variant := r.URL.Query().Get("clusters")
	switch variant {
	case "", "pool":
		variant = "pool"
	case "once":
	default:
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("clusters %q: want pool (the default: in every pool too) or once", variant))
		return
	}
	body, err := s.policies.get(variant, s.Now(), func() ([]byte, error) {
		p, err := s.Reader.Policy(r.Context())
		if err != nil || variant != "once" {
			return encodeJSON(p), err
		}
		out := policyOnce{Policy: p, Pools: make([]poolPolicyOnce, len(p.Pools))}
		for i := range p.Pools {
			out.Pools[i].PoolPolicy = p.Pools[i]
		}
		return encodeJSON(out), nil
	})
	if err != nil {
		s.reply(w, r, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(body); err != nil && !clientGone(r, err) {
		s.Logger.Warn("write response", "path", r.URL.Path, "err", err)
	}
}

// policyTTL is how long an encoded /v1/policy answer is served again: with
// hundreds of pools it is a megabyte of JSON, and many dashboards or
// clients asking at once would each encode it. Any change through the API
// (an authorised POST) drops it at once.
const policyTTL = time.Second

// responseCache keeps encoded answers by variant for policyTTL; a request
// that finds none encodes it while the others wait for it.
type responseCache struct {
	mu   sync.Mutex
	at   map[string]time.Time
	body map[string][]byte
}

func (c *responseCache) get(variant string, now time.Time, encode func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.body[variant]; ok && now.Sub(c.at[variant]) < policyTTL && !now.Before(c.at[variant]) {
		return b, nil
	}
	b, err := encode()
	if err != nil {
		return nil, err
	}
	if c.body == nil {
		c.body, c.at = map[string][]byte{}, map[string]time.Time{}
	}
	c.body[variant], c.at[variant] = b, now
	return b, nil
}

// clear drops every kept answer.
func (c *responseCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.body)
}

// encodeJSON is v as reply writes it (indented, a newline at the end).
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return []byte(`{"error": "` + strings.ReplaceAll(err.Error(), `"`, `'`) + `"}` + "\n")
	}
	return buf.Bytes()
}

// policyOnce is Policy with the clusters only at the top (?clusters=once):
// with many pools, the per-pool copies are most of the response. Its
// Pools hides the embedded Policy's (shallower wins in encoding/json), so
// every other top-level key of Policy is served as it is.
type policyOnce struct {
	Policy
	Pools []poolPolicyOnce `json:"pools"`
}

// poolPolicyOnce is a PoolPolicy without its clusters: this field, nil and
// shallower, hides the embedded one's "clusters" (encoding/json's rule).
type poolPolicyOnce struct {
	PoolPolicy
	Clusters []Cluster `json:"clusters,omitempty"`
}

func (s *server) model(w http.ResponseWriter, r *http.Request) {
	m, err := s.Reader.Model(r.Context())
	s.reply(w, r, m, err)
}

func (s *server) decisions(w http.ResponseWriter, r *http.Request) {
	since, err := s.since(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	limit := 200
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("limit %q: want 1..10000", v))
			return
		}
		limit = n
	}
	ds, err := s.Reader.Decisions(r.Context(), r.URL.Query().Get("pool"), since, limit)
	s.reply(w, r, ds, err)
}

func (s *server) series(w http.ResponseWriter, r *http.Request) {
	since, err := s.since(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	pool := r.URL.Query().Get("pool")
	if pool == "" {
		s.fail(w, r, http.StatusBadRequest, errors.New("pool is required"))
		return
	}
	pts, err := s.Reader.Series(r.Context(), pool, since)
	s.reply(w, r, pts, err)
}

// since parses ?since= (see ParseSince); absent means DefaultWindow back.
func (s *server) since(r *http.Request) (time.Time, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return s.Now().Add(-DefaultWindow), nil
	}
	return ParseSince(v, s.Now())
}

// maxUnixSeconds is the last whole Unix second whose every nanosecond
// fits an int64 (2262-04-11): the store keys records by UnixNano.
const maxUnixSeconds = math.MaxInt64/1_000_000_000 - 1

// ParseSince parses the since parameter of /v1/decisions and /v1/series,
// in this order:
//   - RFC 3339 (2026-11-28T09:00:00Z, fractional seconds allowed), within
//     the years 1678..2262 the store can key;
//   - Unix seconds, a non-negative decimal number (0 is 1970-01-01, 1.5
//     is allowed);
//   - a non-negative Go duration with a unit (30m, 1h30m): that long
//     before now.
//
// A bare number is always Unix seconds, never a duration: "0" is the
// Unix epoch (everything), not "now".
func ParseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
			return time.Time{}, fmt.Errorf("since %q: want a time between 1678 and 2262", v)
		}
		return t, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && isDecimal(v) {
		if f < 0 || f > maxUnixSeconds {
			return time.Time{}, fmt.Errorf("since %q: Unix seconds must be within 0..%d", v, maxUnixSeconds)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since %q: want RFC 3339, Unix seconds (0 = 1970) or a duration back from now like 30m", v)
}

// isDecimal reports whether v is digits with at most one decimal point and
// an optional leading sign: what ParseSince takes for Unix seconds (not
// NaN, Inf, hex or exponents).
func isDecimal(v string) bool {
	v = strings.TrimLeft(v, "+-")
	digits, dot := 0, false
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// modeRequest is the body of POST /v1/mode.
type modeRequest struct {
	Mode string `json:"mode"`
	Pool string `json:"pool,omitempty"`
}

func (s *server) mode(w http.ResponseWriter, r *http.Request) {
	var req modeRequest
	if !s.decode(w, r, &req) {
		return
	}
	err := s.Operator.SetMode(r.Context(), req.Pool, req.Mode)
	s.reply(w, r, map[string]string{"mode": req.Mode, "pool": req.Pool}, err)
}

// scaleRequest is the body of POST /v1/scale.
type scaleRequest struct {
	Pool  string `json:"pool"`
	Delta int    `json:"delta"`
}

func (s *server) scale(w http.ResponseWriter, r *http.Request) {
	var req scaleRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.Delta != 1 && req.Delta != -1 {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("delta %d: want +1 or -1", req.Delta))
		return
	}
	d, err := s.Operator.Scale(r.Context(), req.Pool, req.Delta)
	s.reply(w, r, d, err)
}

func (s *server) pause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pool := r.PathValue("pool")
		err := s.Operator.Pause(r.Context(), pool, paused)
		s.reply(w, r, map[string]any{"pool": pool, "paused": paused}, err)
	}
}

func (s *server) node(w http.ResponseWriter, r *http.Request) {
	var req NodeRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := req.Validate(); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	msg, err := s.Operator.Node(r.Context(), req)
	s.reply(w, r, map[string]string{"result": msg}, err)
}

func (s *server) template(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	if op != "up" && op != "down" {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("template op %q: want up or down", op))
		return
	}
	spec, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("read template: %w", err))
		return
	}
	msg, err := s.Operator.Template(r.Context(), op, spec)
	s.reply(w, r, map[string]string{"result": msg}, err)
}

// decode reads a JSON body strictly (see DecodeStrict); on failure it
// replies and returns false.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := DecodeStrict(r.Body, v); err != nil {
		code := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			code = http.StatusRequestEntityTooLarge
		}
		s.fail(w, r, code, fmt.Errorf("decode request: %w", err))
		return false
	}
	return true
}

// reply writes v as JSON, or the error with the status its sentinel maps to.
func (s *server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrUnknownPool), errors.Is(err, ErrNoModel):
			code = http.StatusNotFound
		case errors.Is(err, ErrBadRequest):
			code = http.StatusBadRequest
		case errors.Is(err, ErrConflict):
			code = http.StatusConflict
		}
		s.fail(w, r, code, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		if clientGone(r, err) {
			s.Logger.Debug("client left before the response was written", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			return
		}
		s.Logger.Warn("write response", "path", r.URL.Path, "err", err)
	}
}

// fail writes {"error": "..."} with code. A failure caused by the client
// leaving (its request's context cancelled) is not the daemon's: it is
// logged at DEBUG and nothing is written.
func (s *server) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	if clientGone(r, err) {
		s.Logger.Debug("client left before the response was written", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		return
	}
	if code >= 500 {
		s.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// clientGone reports whether err comes from the client having left: the
// request's context is cancelled (net/http cancels it when the connection
// closes), or a write failed because the peer closed the connection.
func clientGone(r *http.Request, err error) bool {
	left := r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
	return left || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// logLimiter decides which repeated events of a key (a client) are logged:
// the first, then the first after each minute, with the count of those
// not logged since (the scheme collector.Loop uses for a failing source).
// It keeps at most maxLimiterKeys keys; past that, keys idle for a minute
// are dropped, and if none is, new keys share one entry.
type logLimiter struct {
	mu   sync.Mutex
	keys map[string]*limited
}

// limited is one key's state in a logLimiter.
type limited struct {
	last       time.Time
	suppressed int
}

// maxLimiterKeys bounds a logLimiter's memory against many clients.
const maxLimiterKeys = 1024

// limiterOverflow is the shared key of clients beyond maxLimiterKeys.
const limiterOverflow = "(other clients)"

// note records one event of key at now. It returns ok when the event is to
// be logged, with n the events of key not logged since the last one.
func (l *logLimiter) note(key string, now time.Time) (n int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*limited{}
	}
	e := l.keys[key]
	if e == nil && len(l.keys) >= maxLimiterKeys {
		for k, old := range l.keys {
			if now.Sub(old.last) >= time.Minute {
				delete(l.keys, k)
			}
		}
		if len(l.keys) >= maxLimiterKeys {
			key = limiterOverflow
			e = l.keys[key]
		}
	}
	if e == nil {
		l.keys[key] = &limited{last: now}
		return 0, true
	}
	if now.Sub(e.last) < time.Minute {
		e.suppressed++
		return 0, false
	}
	n, e.last, e.suppressed = e.suppressed, now, 0
	return n, true
}
