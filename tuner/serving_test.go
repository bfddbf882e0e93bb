package tuner

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// logLike is a source that lists every server as up, as request logs do.
type logLike struct{ uri string }

func (l logLike) String() string { return l.uri }
func (l logLike) Scrape(context.Context) (collector.Snapshot, error) {
	var srv []collector.Server
	for _, n := range []string{"s1", "s2", "s3"} {
		srv = append(srv, collector.Server{Name: n, State: collector.StateUp, Weight: 1})
	}
	return collector.Snapshot{Time: time.Unix(100, 0), Source: l.uri, Pools: []collector.Pool{{Name: "web", Servers: srv}}}, nil
}

// servingApplier is an applier that reports serving states (or fails).
type servingApplier struct {
	serving map[string]bool
	err     error
}

func (servingApplier) SetWeights(context.Context, string, map[string]int) error { return nil }
func (servingApplier) Scale(context.Context, string, int) error                 { return nil }
func (a servingApplier) ServingServers(context.Context, string) (map[string]bool, error) {
	return a.serving, a.err
}

// plainApplier cannot tell which servers serve.
type plainApplier struct{}

func (plainApplier) SetWeights(context.Context, string, map[string]int) error { return nil }
func (plainApplier) Scale(context.Context, string, int) error                 { return nil }

// TestServingSource: a request log's snapshot gets each pool's server
// states from the pool's actuator before it is stored: serving up, the
// others (and servers the balancer no longer has) in maintenance. An
// actuator that cannot tell, fails or names none of the servers, and a
// pool read from another source, keep the source's states; a failure is
// logged once, not per scrape.
func TestServingSource(t *testing.T) {
	const uri = "haproxylog+udp://127.0.0.1:5515"
	tests := []struct {
		name    string
		source  string // the pool's source URI
		applier any
		want    string // states of s1,s2,s3
		wantLog string
	}{
		{"actuator's states", uri, servingApplier{serving: map[string]bool{"s1": true, "s2": false}}, "up,maint,maint", ""},
		{"all serving", uri, servingApplier{serving: map[string]bool{"s1": true, "s2": true, "s3": true}}, "up,up,up", ""},
		{"actuator fails", uri, servingApplier{err: errors.New("socket gone")}, "up,up,up", "socket gone"},
		{"names never meet", uri, servingApplier{serving: map[string]bool{"10.0.0.1:80": true}}, "up,up,up", "names none of the source's 3 servers"},
		{"actuator cannot tell", uri, plainApplier{}, "up,up,up", ""},
		{"pool of another source", "haproxy+unix:///run/haproxy.sock", servingApplier{serving: map[string]bool{"s1": true}}, "up,up,up", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			d := &Daemon{log: slog.New(slog.NewTextHandler(&logs, nil))}
			p := &Pool{name: "web", source: tc.source}
			switch a := tc.applier.(type) {
			case servingApplier:
				p.applier = a
			case plainApplier:
				p.applier = a
			}
			d.pools = []*Pool{p}
			src := &servingSource{Source: logLike{uri: uri}, d: d, uri: uri}
			for range 3 {
				snap, err := src.Scrape(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, s := range snap.Pools[0].Servers {
					got = append(got, string(s.State))
				}
				if strings.Join(got, ",") != tc.want {
					t.Fatalf("states %v, want %s", got, tc.want)
				}
			}
			if tc.wantLog == "" && strings.Contains(logs.String(), "WARN") {
				t.Errorf("unexpected warning: %s", logs.String())
			}
			if tc.wantLog != "" && (strings.Count(logs.String(), tc.wantLog) != 1) {
				t.Errorf("log %q: want %q once over 3 scrapes", logs.String(), tc.wantLog)
			}
		})
	}
}
