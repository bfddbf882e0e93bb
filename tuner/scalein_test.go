package tuner

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
)

// TestScaleInSettings: model.scale_in_window reaches the trained agent and
// guard.down_cooldown the threshold fallback's wait before a shrink, and
// /v1/policy shows both (and whether training selected the agent's).
func TestScaleInSettings(t *testing.T) {
	for _, tc := range []struct {
		name         string
		window, down time.Duration
		wantWindow   time.Duration
		wantDown     time.Duration
	}{
		{"defaults", 0, 0, 0, 5 * time.Minute}, // the window the shipped policy's training selected
		{"set", 90 * time.Second, 2 * time.Minute, 90 * time.Second, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := simDaemonConfig(t, t.TempDir())
			cfg.Model.Path = "../datasets/default-agent.db"
			cfg.Model.ScaleInWindow, cfg.Guard.DownCooldown = tc.window, tc.down
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			d, err := New(cfg, slog.New(slog.DiscardHandler), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			defer d.store.Close()
			p := d.poolList()[0]
			sw, ok := p.auto.(*agent.Switch)
			if !ok {
				t.Fatalf("auto policy %T, want the agent switch", p.auto)
			}
			choice, selected := sw.Agent().Table().ScaleInSetting()
			if tc.wantWindow == 0 {
				tc.wantWindow = choice.Window
			}
			if got := sw.Agent().Config(); got.ScaleInWindow != tc.wantWindow || got.ScaleInZ != choice.Z {
				t.Errorf("agent scale-in window %v z %v, want %v %v", got.ScaleInWindow, got.ScaleInZ, tc.wantWindow, choice.Z)
			}
			th, ok := p.fallback.(*agent.Threshold)
			if !ok {
				t.Fatalf("fallback %T, want the threshold policy", p.fallback)
			}
			if got := th.Config().DownCooldown; got != tc.wantDown {
				t.Errorf("fallback down cooldown %v, want %v", got, tc.wantDown)
			}
			pol, err := d.Policy(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := pol.Pools[0].Fallback["down_cooldown_s"]; got != tc.wantDown.Seconds() {
				t.Errorf("/v1/policy down_cooldown_s %v, want %v", got, tc.wantDown.Seconds())
			}
			// /v1/policy shows the window the agent runs, and whether
			// training selected the hysteresis (and on what score).
			sel := 0.0
			if selected {
				sel = 1
			}
			if si := pol.Pools[0].ScaleIn; si["window_s"] != tc.wantWindow.Seconds() || si["z"] != choice.Z || si["selected"] != sel || si["objective"] != choice.Objective {
				t.Errorf("/v1/policy scale_in %v, want window_s %v z %v selected %v objective %v", si, tc.wantWindow.Seconds(), choice.Z, sel, choice.Objective)
			}
			// The shipped policy explained (issue 18 section 4): its rules
			// agree with >= 90% of its held-out scale-outs and scale-ins
			// (and weight moves, when it made any) and overall more often
			// than always-keep.
			ex := pol.Explanation
			if ex == nil {
				t.Fatalf("/v1/policy: no explanation (%s)", pol.ExplanationError)
			}
			if ex.Agreement <= ex.Baseline || len(ex.Classes) != len(agent.MoveNames) {
				t.Errorf("/v1/policy explanation: agreement %.3f (always keep %.3f), %d classes", ex.Agreement, ex.Baseline, len(ex.Classes))
			}
			for _, c := range ex.Classes {
				if c.Class != "keep" && c.Decisions > 0 && c.Agreement < 0.9 {
					t.Errorf("/v1/policy explanation: %s agreed on %d of %d held-out decisions, want >= 90%%", c.Class, c.Agreed, c.Decisions)
				}
			}
		})
	}
}
