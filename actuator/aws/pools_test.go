package aws

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/lbtune/lbtune/actuator"
)

// orderBalancer records balancer calls and, on each drain, whether the
// instance had already been terminated (it must not have been).
type orderBalancer struct {
	f     *fakeAWS
	mu    sync.Mutex
	calls []string
	early []string // instances terminated before their drain
}

func (b *orderBalancer) SetWeights(context.Context, string, map[string]int) error { return nil }

func (b *orderBalancer) AddServer(_ context.Context, pool, name, addr string, w int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf("add %s %s", name, addr))
	return nil
}

func (b *orderBalancer) RemoveServer(_ context.Context, pool, name string) error {
	for _, c := range b.f.calls("TerminateInstances") {
		if c.Get("InstanceId.1") == name {
			b.mu.Lock()
			b.early = append(b.early, name)
			b.mu.Unlock()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "drain "+name)
	return nil
}

// TestPoolsOverEC2: actuator.Pools over the EC2 provider registers each new
// instance's private address in the balancer and drains an instance before
// terminating it.
func TestPoolsOverEC2(t *testing.T) {
	f, e, _ := newFakeAWS(t)
	f.ip = "127.0.0.1"
	port := healthServer(t)
	p, err := NewEC2(e, map[string]EC2Template{"web": {ImageID: "ami-0abcdef1234567890", InstanceType: "t3.micro", Readiness: fastReadiness(port)}})
	if err != nil {
		t.Fatal(err)
	}
	b := &orderBalancer{f: f}
	pools := actuator.NewPools(b, p, map[string]actuator.Limits{"web": {Min: 1, Max: 3, Weight: 5}})
	ctx := context.Background()
	if err := pools.Scale(ctx, "web", 3); err != nil {
		t.Fatal(err)
	}
	ms, _ := p.Members(ctx, "web")
	if len(ms) != 3 {
		t.Fatalf("members = %+v, want 3", ms)
	}
	for _, m := range ms {
		want := fmt.Sprintf("add %s 127.0.0.1:%d", m.Name, port)
		if !slices.Contains(b.calls, want) {
			t.Errorf("balancer calls %v lack %q", b.calls, want)
		}
	}
	if err := pools.Scale(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	if got := len(f.calls("TerminateInstances")); got != 2 {
		t.Errorf("TerminateInstances calls = %d, want 2", got)
	}
	if len(b.early) != 0 {
		t.Errorf("instances %v were terminated before they were drained", b.early)
	}
	if left, _ := p.Members(ctx, "web"); len(left) != 1 || left[0].Name != ms[0].Name {
		t.Errorf("left %+v, want the oldest instance %s", left, ms[0].Name)
	}
}
