package actuator

import (
	"context"
	"testing"
	"time"
)

// slowDrain is a recorder whose drains wait for release, announcing each
// on entered.
type slowDrain struct {
	*recorder
	entered, release chan struct{}
}

func (s *slowDrain) RemoveServer(ctx context.Context, pool, name string) error {
	s.entered <- struct{}{}
	<-s.release
	return s.recorder.RemoveServer(ctx, pool, name)
}

// TestCountDraining counts a server as draining while the balancer drains
// it, for a scale-in and for `node rm` of a static server, and not after.
func TestCountDraining(t *testing.T) {
	tests := []struct {
		name string
		// remove starts the removal of one server of pool web (2 own
		// servers, 1 static) and returns its error.
		remove      func(ctx context.Context, p *Pools) error
		wantServing int // after the removal
	}{
		{"scale in", func(ctx context.Context, p *Pools) error { return p.Scale(ctx, "web", 2) }, 2},
		{"node rm static", func(ctx context.Context, p *Pools) error { return p.RemoveServer(ctx, "web", "static1") }, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rec := &recorder{static: []ServerState{{Name: "static1", Addr: "b", Serving: true}}}
			b := &slowDrain{recorder: rec, entered: make(chan struct{}, 1), release: make(chan struct{})}
			p := NewPools(b, rec, map[string]Limits{"web": {Min: 1, Max: 4}})
			if err := p.Scale(ctx, "web", 3); err != nil {
				t.Fatal(err)
			}
			if c, err := p.Count(ctx, "web"); err != nil || c.Serving() != 3 || c.Draining != 0 {
				t.Fatalf("before: count %+v, %v: want 3 serving, 0 draining", c, err)
			}
			done := make(chan error, 1)
			go func() { done <- tc.remove(ctx, p) }()
			select {
			case <-b.entered:
			case <-ctx.Done():
				t.Fatal("no drain started")
			}
			if c, err := p.Count(ctx, "web"); err != nil || c.Draining != 1 {
				t.Errorf("while draining: count %+v, %v: want 1 draining", c, err)
			}
			close(b.release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if c, err := p.Count(ctx, "web"); err != nil || c.Draining != 0 || c.Serving() != tc.wantServing {
				t.Errorf("after: count %+v, %v: want %d serving, 0 draining", c, err, tc.wantServing)
			}
		})
	}
}
