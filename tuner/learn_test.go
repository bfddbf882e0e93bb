package tuner

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/internal/testkit"
	"github.com/lbtune/lbtune/tuner/config"
)

// TestOnlineLearning runs the daemon in process on the --sim example,
// sped up, with the shipped model and online learning on (epsilon 1, so
// every agent decision explores): within a bounded time it must record
// explore decisions, export epsilon in /metrics and save a learned policy
// version; a new daemon on the same store resumes from that version.
func TestOnlineLearning(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	path := testkit.LearnConfig(t, dir, addr)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d, err := New(cfg, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- d.Run(ctx, nil) }()
	// The store cannot be read while the daemon holds it, so run a fixed
	// span, scraping /metrics: 12 s at 30x is 6 simulated minutes, about
	// 6 saves at one per simulated minute.
	var metrics string
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(b)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop within 20 s of cancel")
	}
	if !strings.Contains(metrics, `lbtune_agent_epsilon{pool="web"}`) {
		t.Errorf("/metrics lacks lbtune_agent_epsilon for pool web")
	}

	st, err := datasets.Open(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ReadDecisions(st, "web", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	explore, agentDecided := 0, 0
	for _, r := range recs {
		if r.Policy == "agent" && r.Metrics["switch_fallback"] == 0 {
			agentDecided++
		}
		if strings.HasPrefix(r.Reason, "agent: explore (") && r.Metrics["explore"] == 1 {
			explore++
		}
	}
	if explore == 0 {
		t.Errorf("%d decisions (%d by the agent), none recorded as explore", len(recs), agentDecided)
	}
	keys, err := st.Keys(datasets.BucketPolicies)
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, k := range keys {
		if strings.HasPrefix(k, LearnedPolicyName("web")+"/v") {
			versions = append(versions, k)
		}
	}
	if len(versions) < 2 {
		t.Errorf("learned policy versions %v: want periodic saves (every simulated minute) and one at shutdown", versions)
	}
	saved, err := LoadPolicy(st, LearnedPolicyName("web"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d decisions, %d by the agent, %d explore; versions %v; saved epsilon %.3f", len(recs), agentDecided, explore, versions, saved.Config.Epsilon)

	// A restart resumes from the latest saved version.
	d, err = New(cfg, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer d.store.Close()
	p, err := d.findPool("web")
	if err != nil {
		t.Fatal(err)
	}
	if p.learner == nil {
		t.Fatal("restarted pool is not learning")
	}
	got := p.learner.agent.Table()
	if got.Name != saved.Name || got.Steps != saved.Steps || got.Q[0][0] != saved.Q[0][0] || got.WeightQ[0][0] != saved.WeightQ[0][0] {
		t.Errorf("restart started from %s (%d updates), want the saved %s (%d updates)", got.Name, got.Steps, saved.Name, saved.Steps)
	}
	if eps := p.learner.agent.Exploration(); eps < 0.5 || eps > 1 {
		t.Errorf("resumed epsilon %v, want within [min_epsilon 0.5, 1]", eps)
	}
}

// freeAddr returns a 127.0.0.1 port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
