package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
)

func TestCheckAnswer(t *testing.T) {
	// Answers verbatim from ../../../shared/captures/haproxy/commands.log.
	tests := []struct {
		name      string
		answer    string
		refused   bool
		noSuchSrv bool
	}{
		{"empty", "", false, false},
		{"empty with newline", "\n", false, false},
		{"add accepted", "New server registered.\n\n", false, false},
		{"del accepted", "Server deleted.\n", false, false},
		{"weight range", "Absolute weight can only be between 0 and 256 inclusive.\n\n", true, false},
		{"static-rr weight", "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n\n", true, false},
		{"del not in maint", "Only servers in maintenance mode can be deleted.\n", true, false},
		{"add on static", "Backend must use a dynamic load balancing to support dynamic servers.\n", true, false},
		{"no such server", "No such server.\n\n", true, true},
		{"permission", "Permission denied\n", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAnswer("set server app/s1 weight 10", tc.answer)
			if got := errors.Is(err, ErrRefused); got != tc.refused {
				t.Fatalf("refused = %v, want %v (err %v)", got, tc.refused, err)
			}
			if got := errors.Is(err, ErrNoServer); got != tc.noSuchSrv {
				t.Errorf("no such server = %v, want %v", got, tc.noSuchSrv)
			}
			if err != nil && (!strings.Contains(err.Error(), "set server app/s1 weight 10") ||
				!strings.Contains(err.Error(), strings.TrimSpace(tc.answer))) {
				t.Errorf("error %q must quote the command and the answer", err)
			}
		})
	}
}

func TestRenderConfigInvalid(t *testing.T) {
	good := Backend{Name: "app", Bind: "127.0.0.1:1"}
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"no socket", Config{Backends: []Backend{good}}, "socket path"},
		{"bad health", Config{Socket: "/s", HealthPath: "healthz", Backends: []Backend{good}}, "health path"},
		{"repeated backend", Config{Socket: "/s", Backends: []Backend{good, good}}, `backend name "app"`},
		{"bad bind", Config{Socket: "/s", Backends: []Backend{{Name: "a", Bind: "x y"}}}, "bind"},
		{"static balance", Config{Socket: "/s", Backends: []Backend{{Name: "a", Bind: "h:1", Balance: "static-rr"}}}, `balance "static-rr"`},
		{"weight", Config{Socket: "/s", Backends: []Backend{{Name: "a", Bind: "h:1",
			Servers: []ConfigServer{{Name: "s", Addr: "h:2", Weight: 257}}}}}, "weight 257"},
		{"repeated server", Config{Socket: "/s", Backends: []Backend{{Name: "a", Bind: "h:1",
			Servers: []ConfigServer{{Name: "s", Addr: "h:2"}, {Name: "s", Addr: "h:3"}}}}}, `server name "s"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := RenderConfig(io.Discard, tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

// TestRuntime drives a real HAProxy 2.6 through every action the tuner takes.
func TestRuntime(t *testing.T) {
	b1, b2 := newBackend(t, 0), newBackend(t, 300*time.Millisecond)
	front := freeAddr(t)
	r := startHAProxy(t, Config{Backends: []Backend{{Name: "app", Bind: front,
		Servers: []ConfigServer{{Name: "s1", Addr: b1.addr(), Weight: 5}}}}})
	ctx := context.Background()

	weight := func(srv string) int {
		t.Helper()
		st, err := r.ServerStat(ctx, "app", srv)
		if err != nil {
			t.Fatal(err)
		}
		return st.Weight
	}
	steps := []struct {
		name    string
		do      func() error
		wantErr error // nil: must succeed
		check   func(t *testing.T)
	}{
		{"set weight", func() error { return r.SetWeight(ctx, "app", "s1", 10) }, nil,
			func(t *testing.T) {
				if w := weight("s1"); w != 10 {
					t.Errorf("weight = %d, want 10", w)
				}
			}},
		{"weight 300 refused before sending", func() error { return r.SetWeight(ctx, "app", "s1", 300) }, nil, nil},
		{"unknown server", func() error { return r.SetWeight(ctx, "app", "nosuch", 3) }, ErrNoServer, nil},
		{"add server", func() error { return r.AddServer(ctx, "app", "s2", b2.addr(), 7) }, nil,
			func(t *testing.T) {
				st, err := r.ServerStat(ctx, "app", "s2")
				if err != nil || !st.Serving() || st.Weight != 7 {
					t.Errorf("s2 = %+v, %v; want serving with weight 7", st, err)
				}
			}},
		{"add same name refused", func() error { return r.AddServer(ctx, "app", "s2", b2.addr(), 7) }, ErrRefused, nil},
		{"set weights", func() error { return r.SetWeights(ctx, "app", map[string]int{"s1": 3, "s2": 4}) }, nil,
			func(t *testing.T) {
				if weight("s1") != 3 || weight("s2") != 4 {
					t.Errorf("weights s1=%d s2=%d, want 3 and 4", weight("s1"), weight("s2"))
				}
			}},
		{"set weights validates all first", func() error { return r.SetWeights(ctx, "app", map[string]int{"s1": 9, "s2": 999}) }, nil,
			func(t *testing.T) {
				if w := weight("s1"); w != 3 {
					t.Errorf("s1 weight = %d, want 3 (nothing sent when one weight is invalid)", w)
				}
			}},
		{"maint and ready", func() error {
			if err := r.SetState(ctx, "app", "s1", StateMaint); err != nil {
				return err
			}
			if st, _ := r.ServerStat(ctx, "app", "s1"); st.Status != "MAINT" {
				return fmt.Errorf("status after maint = %q", st.Status)
			}
			return r.SetState(ctx, "app", "s1", StateReady)
		}, nil, nil},
		{"delete static server", func() error { return r.DeleteServer(ctx, "app", "s1") }, nil,
			func(t *testing.T) {
				if _, err := r.ServerStat(ctx, "app", "s1"); !errors.Is(err, ErrNoServer) {
					t.Errorf("s1 still listed: %v", err)
				}
			}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			switch {
			case st.wantErr == nil && strings.Contains(st.name, "refused before sending"):
				if err == nil || errors.Is(err, ErrRefused) {
					t.Fatalf("err = %v, want a local validation error", err)
				}
			case st.wantErr == nil && strings.Contains(st.name, "validates all first"):
				if err == nil {
					t.Fatal("invalid weight accepted")
				}
			case st.wantErr == nil && err != nil:
				t.Fatal(err)
			case st.wantErr != nil && !errors.Is(err, st.wantErr):
				t.Fatalf("err = %v, want %v", err, st.wantErr)
			}
			if st.check != nil {
				st.check(t)
			}
		})
	}

	// Drain s2 while slow requests are in flight: every request succeeds and
	// the drain waits for them.
	t.Run("drain waits for in-flight requests", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get("http://" + front + "/slow")
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		time.Sleep(100 * time.Millisecond) // let them reach s2 (the only server)
		start := time.Now()
		if err := r.Drain(ctx, "app", "s2", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < 100*time.Millisecond {
			t.Errorf("drain returned after %s, before the 300ms requests could finish", waited)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("request failed during drain: %v", err)
		}
		if _, err := r.ServerStat(ctx, "app", "s2"); !errors.Is(err, ErrNoServer) {
			t.Errorf("s2 still present after drain: %v", err)
		}
	})
}

func TestParseStatCaptures(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "captures", "haproxy", "captures")
	tests := []struct {
		capture string
		server  string
		status  string
		weight  int
	}{
		{"01-idle-after-start", "s1", "UP", 5},
		{"03-load-s1-weight10", "s1", "UP", 10},
		{"04-load-s2-drain", "s2", "DRAIN", 3},
		{"06-load-s3-disabled", "s3", "MAINT", 1},
		{"09-load-s2-down", "s2", "DOWN", 3},
		{"11-load-s4-added-maint", "s4", "MAINT", 1},
		{"12-load-s4-enabled-up", "s4", "UP", 2},
	}
	for _, tc := range tests {
		t.Run(tc.capture, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, tc.capture, "show_stat.csv"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := ParseStat(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range rows {
				if s.Proxy == "app" && s.Server == tc.server {
					if s.Status != tc.status || s.Weight != tc.weight {
						t.Errorf("app/%s = %q weight %d, want %q weight %d", tc.server, s.Status, s.Weight, tc.status, tc.weight)
					}
					return
				}
			}
			t.Errorf("app/%s not found in %d rows", tc.server, len(rows))
		})
	}
}

func TestParseStatBad(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"no header", "app,s1,0\n"},
		{"header lacks scur", "# pxname,svname,status,weight\n"},
		{"short row", "# pxname,svname,scur,status,weight\napp,s1\n"},
		{"bad number", "# pxname,svname,scur,status,weight\napp,s1,x,UP,1\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseStat(strings.NewReader(tc.in)); !errors.Is(err, ErrBadStat) {
				t.Errorf("err = %v, want ErrBadStat", err)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "captures", "haproxy", "captures", "*", "*.csv"))
	if len(seeds) == 0 {
		f.Fatal("no show stat captures found under ../../../shared/captures")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rows, err := ParseStat(strings.NewReader(string(in)))
		if err != nil {
			if !errors.Is(err, ErrBadStat) && !strings.Contains(err.Error(), "read show stat") {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for _, r := range rows {
			if r.Scur < 0 || r.Weight < 0 {
				t.Fatalf("negative value in %+v", r)
			}
		}
	})
}

// BenchmarkSetWeight times one weight change over the runtime API of a real
// HAProxy, answer checked.
func BenchmarkSetWeight(b *testing.B) {
	be := newBackend(b, 0)
	r := startHAProxy(b, Config{Backends: []Backend{{Name: "app", Bind: freeAddr(b),
		Servers: []ConfigServer{{Name: "s1", Addr: be.addr(), Weight: 1}}}}})
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := r.SetWeight(ctx, "app", "s1", 1+i%256); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDrainTimeout: sessions still open when the drain times out are cut,
// and the server is removed anyway. Drain reports the timeout as an error;
// RemoveServer (the Balancer method) logs it and succeeds.
func TestDrainTimeout(t *testing.T) {
	tests := []struct {
		name    string
		remove  func(r *Runtime) error
		wantErr bool
	}{
		{"Drain", func(r *Runtime) error { return r.Drain(context.Background(), "app", "s1", 200*time.Millisecond) }, true},
		{"RemoveServer", func(r *Runtime) error {
			r.DrainTimeout = 200 * time.Millisecond
			return r.RemoveServer(context.Background(), "app", "s1")
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slow := newBackend(t, 1500*time.Millisecond)
			front := freeAddr(t)
			r := startHAProxy(t, Config{Backends: []Backend{{Name: "app", Bind: front,
				Servers: []ConfigServer{{Name: "s1", Addr: slow.addr(), Weight: 1}}}}})
			done := make(chan struct{})
			go func() {
				defer close(done)
				if resp, err := http.Get("http://" + front + "/slow"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			deadline := time.Now().Add(2 * time.Second)
			for slow.hits.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			err := tc.remove(r)
			switch {
			case tc.wantErr && (!errors.Is(err, ErrDrainTimeout) || errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "has 1")):
				t.Errorf("err = %v, want only ErrDrainTimeout with 1 session left", err)
			case !tc.wantErr && err != nil:
				t.Errorf("err = %v, want nil (server removed after the timeout)", err)
			}
			if _, serr := r.ServerStat(context.Background(), "app", "s1"); !errors.Is(serr, ErrNoServer) {
				t.Errorf("server still present after a timed-out drain: %v (drain err %v)", serr, err)
			}
			<-done
		})
	}
}

// TestParseAlgorithms reads the algo column of a real capture (backend app
// is roundrobin, app_static static-rr: ../shared/captures/haproxy/haproxy.cfg)
// and refuses what is not `show stat` with one.
func TestParseAlgorithms(t *testing.T) {
	capture, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "captures", "haproxy", "captures", "02-load-baseline", "show_stat.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   string
		want map[string]string // nil: an error wrapping ErrBadStat
	}{
		{"capture", string(capture), map[string]string{"app": "roundrobin", "app_static": "static-rr", "stats": "roundrobin"}},
		{"columns in another order", "# svname,algo,pxname\nBACKEND,leastconn,web\ns1,,web\n", map[string]string{"web": "leastconn"}},
		{"no backend rows", "# pxname,svname,algo\nfe,FRONTEND,\n", map[string]string{}},
		{"short row skipped", "# pxname,svname,algo\nweb\nweb,BACKEND,source\n", map[string]string{"web": "source"}},
		{"empty", "", nil},
		{"no header", "web,BACKEND,roundrobin\n", nil},
		{"no algo column (old HAProxy)", "# pxname,svname,status\nweb,BACKEND,UP\n", nil},
		{"unterminated quote", "# pxname,svname,algo\nweb,BACKEND,\"roundrobin\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAlgorithms(strings.NewReader(tc.in))
			if tc.want == nil {
				if !errors.Is(err, ErrBadStat) {
					t.Fatalf("got %v, err %v, want ErrBadStat", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("algorithms %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzParseAlgorithms: no panic, and an error wrapping ErrBadStat or a map
// of backends.
func FuzzParseAlgorithms(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "captures", "haproxy", "captures", "*", "show_stat.csv"))
	if len(seeds) == 0 {
		f.Fatal("no show stat captures found under ../../../shared/captures")
	}
	for _, p := range seeds[:min(3, len(seeds))] {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("# pxname,svname,algo\nweb,BACKEND,leastconn\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseAlgorithms(strings.NewReader(string(in)))
		if err != nil {
			if !errors.Is(err, ErrBadStat) {
				t.Fatalf("error %v does not wrap ErrBadStat", err)
			}
			return
		}
		if got == nil {
			t.Fatal("nil map without an error")
		}
	})
}

// TestRuntimeBalancing: a real HAProxy reports each backend's algorithm
// over the runtime API, roundrobin and leastconn side by side; an unknown
// backend is ErrNoBalancing; after the socket goes away the cached answer
// still serves and an uncached backend is an error.
func TestRuntimeBalancing(t *testing.T) {
	be := newBackend(t, 0)
	srv := []ConfigServer{{Name: "s1", Addr: be.addr(), Weight: 10}}
	r := startHAProxy(t, Config{Backends: []Backend{
		{Name: "rr", Bind: freeAddr(t), Servers: srv},
		{Name: "lc", Bind: freeAddr(t), Balance: BalanceLeastConn, Servers: srv},
	}})
	ctx := context.Background()
	for pool, want := range map[string]string{"rr": "roundrobin", "lc": "leastconn"} {
		b, err := r.Balancing(ctx, pool)
		if err != nil {
			t.Fatalf("%s: %v", pool, err)
		}
		if b.Algorithm != want || b.Auto {
			t.Errorf("%s: %+v, want %s and not auto", pool, b, want)
		}
	}
	if _, err := r.Balancing(ctx, "nope"); !errors.Is(err, agent.ErrNoBalancing) {
		t.Errorf("unknown backend: %v, want ErrNoBalancing", err)
	}
	// The unknown backend dropped the cache; read it again, then take the
	// socket away: the cache answers, a read does not.
	if _, err := r.Balancing(ctx, "rr"); err != nil {
		t.Fatal(err)
	}
	r.Socket = filepath.Join(t.TempDir(), "gone.sock")
	if b, err := r.Balancing(ctx, "lc"); err != nil || b.Algorithm != "leastconn" {
		t.Errorf("cached: %+v %v, want leastconn", b, err)
	}
	r.algoMu.Lock()
	r.algosAt = time.Now().Add(-2 * AlgorithmTTL)
	r.algoMu.Unlock()
	if _, err := r.Balancing(ctx, "lc"); err == nil || errors.Is(err, agent.ErrNoBalancing) {
		t.Errorf("expired cache, socket gone: %v, want a read error", err)
	}
}
