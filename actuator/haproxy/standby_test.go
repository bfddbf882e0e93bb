package haproxy

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// standbyHAProxy starts a real HAProxy on 127.0.0.1 with backend "web" of
// three test servers (a request with ?slow=1 takes 1.5 s) and returns its
// runtime API and frontend URL once all three are up.
func standbyHAProxy(t *testing.T) (*Runtime, string) {
	t.Helper()
	var servers []ConfigServer
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("slow") == "1" {
				time.Sleep(1500 * time.Millisecond)
			}
			_, _ = io.WriteString(w, "ok")
		}))
		t.Cleanup(srv.Close)
		servers = append(servers, ConfigServer{Name: "s" + string(rune('1'+i)), Addr: strings.TrimPrefix(srv.URL, "http://"), Weight: 10})
	}
	front := freeAddr(t)
	rt := startHAProxy(t, Config{Backends: []Backend{{Name: "web", Bind: front, Servers: servers}}})
	standbyWait(t, rt, "web", "s1,s2,s3", "")
	return rt, "http://" + front
}

// standbyWait polls until the serving and standby (MAINT) servers of the
// backend are exactly as given (comma-separated names).
func standbyWait(t *testing.T, rt *Runtime, backend, serving, standby string) {
	t.Helper()
	var got [2]string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rows, err := rt.Servers(context.Background(), backend)
		if err != nil {
			continue
		}
		var up, maint []string
		for _, r := range rows {
			switch {
			case r.Serving():
				up = append(up, r.Server)
			case r.Status == "MAINT":
				maint = append(maint, r.Server)
			}
		}
		sort.Strings(up)
		sort.Strings(maint)
		got = [2]string{strings.Join(up, ","), strings.Join(maint, ",")}
		if got == [2]string{serving, standby} {
			return
		}
	}
	t.Fatalf("backend %s: serving %q standby %q, want %q and %q", backend, got[0], got[1], serving, standby)
}

// TestStandbyScale scales a real HAProxy backend in and out by standby,
// with slow requests in flight on every server during the scale-in: the
// drained servers finish them, none fails.
func TestStandbyScale(t *testing.T) {
	rt, front := standbyHAProxy(t)
	s := &Standby{Runtime: rt, Drain: 10 * time.Second, Poll: 50 * time.Millisecond}
	ctx := context.Background()

	// One slow request per server (round robin), then scale in to one.
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(front + "/?slow=1")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := s.Scale(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 800*time.Millisecond {
		t.Errorf("scale-in returned after %v: it must wait for the in-flight requests (1.5 s)", took)
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("request during scale-in got %d, want 200", c)
		}
	}
	standbyWait(t, rt, "web", "s1", "s2,s3")

	tests := []struct {
		name             string
		n                int
		wantErr          string
		serving, standby string
	}{
		{"up by one from standby", 2, "", "s1,s2", "s3"},
		{"no change", 2, "", "s1,s2", "s3"},
		{"up to all", 3, "", "s1,s2,s3", ""},
		{"more than configured", 5, "only 3 serving and 0 standby servers configured", "s1,s2,s3", ""},
		{"down by two", 1, "", "s1", "s2,s3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Scale(ctx, "web", tc.n)
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Scale(%d) = %v, want error %q", tc.n, err, tc.wantErr)
			}
			standbyWait(t, rt, "web", tc.serving, tc.standby)
			// What the agent controller counts the pool by: the same
			// split, from the runtime API.
			got, err := s.ServingServers(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			var serving, standby []string
			for _, name := range slices.Sorted(maps.Keys(got)) {
				if got[name] {
					serving = append(serving, name)
				} else {
					standby = append(standby, name)
				}
			}
			if strings.Join(serving, ",") != tc.serving || strings.Join(standby, ",") != tc.standby {
				t.Errorf("ServingServers: serving %v, standby %v; want %q and %q", serving, standby, tc.serving, tc.standby)
			}
		})
	}
	if _, err := s.ServingServers(ctx, "nosuch"); !errors.Is(err, ErrNoServer) {
		t.Errorf("ServingServers of an unknown backend: %v, want ErrNoServer", err)
	}

	// The weights move while s2 and s3 stand by; each returns with the
	// serving servers' median weight, not the 10 it left with.
	if err := rt.SetWeight(ctx, "web", "s1", 40); err != nil {
		t.Fatal(err)
	}
	if err := s.Scale(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	standbyWait(t, rt, "web", "s1,s2", "s3")
	if err := rt.SetWeight(ctx, "web", "s2", 100); err != nil {
		t.Fatal(err)
	}
	if err := s.Scale(ctx, "web", 3); err != nil {
		t.Fatal(err)
	}
	rows, err := rt.Servers(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"s1": 40, "s2": 100, "s3": 40} // median of {40, 100}: the lower middle
	for _, r := range rows {
		if r.Weight != want[r.Server] {
			t.Errorf("%s weight %d after returning, want %d", r.Server, r.Weight, want[r.Server])
		}
	}
}

func TestMedianWeight(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want int
	}{{nil, 0}, {[]int{7}, 7}, {[]int{40, 100}, 40}, {[]int{9, 1, 5}, 5}, {[]int{0, 0}, 0}} {
		if got := medianWeight(tc.in); got != tc.want {
			t.Errorf("medianWeight(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
