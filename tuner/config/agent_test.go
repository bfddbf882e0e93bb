package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/agent"
)

// TestAgentConversion checks that Reward and Guard mirror the agent's
// RewardConfig and GuardConfig: every config field has an agent field of
// the same name and type that the conversion fills, and every agent field
// is either configurable or listed here as deliberately not. Adding a
// field to one side only fails this test.
func TestAgentConversion(t *testing.T) {
	tests := []struct {
		name string
		// cfg is a config value to fill; convert converts it.
		cfg     any
		convert func(v any) any
		// agentOnly are the agent's fields the config deliberately lacks.
		agentOnly []string
	}{
		{"reward", &Reward{}, func(v any) any { return v.(*Reward).Agent() }, []string{"Violation"}},
		{"guard", &Guard{}, func(v any) any { return v.(*Guard).Agent() }, []string{"StaleAfter"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cv := reflect.ValueOf(tc.cfg).Elem()
			// A distinct non-zero value in every config field.
			for i := range cv.NumField() {
				f := cv.Field(i)
				switch f.Kind() {
				case reflect.Float64:
					f.SetFloat(float64(i) + 1.5)
				case reflect.Int:
					f.SetInt(int64(i) + 7)
				case reflect.Int64: // time.Duration
					f.SetInt(int64(time.Duration(i+1) * time.Hour))
				default:
					t.Fatalf("field %s has kind %s: extend this test", cv.Type().Field(i).Name, f.Kind())
				}
			}
			av := reflect.ValueOf(tc.convert(tc.cfg))
			var cfgNames []string
			for i := range cv.NumField() {
				name := cv.Type().Field(i).Name
				cfgNames = append(cfgNames, name)
				af := av.FieldByName(name)
				if !af.IsValid() {
					t.Errorf("config field %s has no agent field %s.%s", name, av.Type(), name)
					continue
				}
				if af.Type() != cv.Field(i).Type() {
					t.Errorf("field %s: config type %s, agent type %s", name, cv.Field(i).Type(), af.Type())
					continue
				}
				if !af.Equal(cv.Field(i)) {
					t.Errorf("field %s: converted to %v, want %v (the conversion does not copy it)", name, af, cv.Field(i))
				}
			}
			for i := range av.NumField() {
				name := av.Type().Field(i).Name
				if !slices.Contains(cfgNames, name) && !slices.Contains(tc.agentOnly, name) {
					t.Errorf("agent field %s.%s is neither configurable nor listed as agent-only", av.Type(), name)
				}
				if slices.Contains(cfgNames, name) && slices.Contains(tc.agentOnly, name) {
					t.Errorf("field %s is configurable and listed as agent-only", name)
				}
			}
		})
	}
}

// TestAgentConversionDefaults checks that zero config values keep the
// agent's defaults where the config documents it (guard limits) and that
// the unconfigurable fields keep theirs.
func TestAgentConversionDefaults(t *testing.T) {
	if got, want := (Guard{}).Agent(), agent.DefaultGuardConfig(); got != want {
		t.Errorf("zero Guard: %+v, want the defaults %+v", got, want)
	}
	r := Default().Reward.Agent()
	if want := agent.DefaultRLConfig().Reward; r != want {
		t.Errorf("default Reward: %+v, want the agent's default %+v", r, want)
	}
}

// TestFallbackConversion: template.fallback mirrors agent.ThresholdConfig
// field by field (TargetP95 is template.target_seconds), and every set
// field reaches the agent's thresholds. Adding a threshold to one side
// only fails this test.
func TestFallbackConversion(t *testing.T) {
	var f Fallback
	fv := reflect.ValueOf(&f).Elem()
	for i := range fv.NumField() {
		fld := fv.Field(i)
		if fld.Kind() != reflect.Pointer {
			t.Fatalf("field %s is not a pointer: an omitted key could not keep its default", fv.Type().Field(i).Name)
		}
		x := reflect.New(fld.Type().Elem())
		switch x.Elem().Kind() {
		case reflect.Float64:
			x.Elem().SetFloat(float64(i) + 0.5)
		case reflect.Int, reflect.Int64: // time.Duration is an Int64
			x.Elem().SetInt(int64(i) + 3)
		case reflect.Bool:
			x.Elem().SetBool(true) // the zero ThresholdConfig has false
		default:
			t.Fatalf("field %s has kind %s: extend this test", fv.Type().Field(i).Name, x.Elem().Kind())
		}
		fld.Set(x)
	}
	av := reflect.ValueOf(f.Agent(agent.ThresholdConfig{}))
	for i := range fv.NumField() {
		name := fv.Type().Field(i).Name
		af := av.FieldByName(name)
		if !af.IsValid() || af.Type() != fv.Field(i).Type().Elem() {
			t.Errorf("config field %s has no agent field of type %s", name, fv.Field(i).Type().Elem())
			continue
		}
		if !af.Equal(fv.Field(i).Elem()) {
			t.Errorf("field %s: converted to %v, want %v", name, af, fv.Field(i).Elem())
		}
	}
	for i := range av.NumField() {
		if name := av.Type().Field(i).Name; name != "TargetP95" && !fv.FieldByName(name).IsValid() {
			t.Errorf("agent field ThresholdConfig.%s is not configurable in template.fallback", name)
		}
	}
}

// TestPoolFallbackAndObjective: a pool's template.fallback and
// template.objective, read from lbtune.yaml and from a template spec
// (lbtune template up, POST /v1/templates/up), give its thresholds and its
// reward: omitted keys keep the defaults, 0 switches a rule off,
// guard.down_cooldown applies unless the pool sets its own.
func TestPoolFallbackAndObjective(t *testing.T) {
	def := agent.DefaultThresholdConfig()
	def.TargetP95 = 500 * time.Millisecond // the example's sim pool
	tests := []struct {
		name string
		// template is added to the example's sim pool template; guard
		// replaces its guard.down_cooldown (5m).
		template, guard string
		want            func(c *agent.ThresholdConfig)
		wantReward      agent.RewardConfig
	}{
		{name: "omitted: the defaults", want: func(*agent.ThresholdConfig) {}, wantReward: agent.DefaultRLConfig().Reward},
		{name: "some thresholds, reserve off",
			template: "fallback: {util_high: 0.9, util_low: 0.2, reserve: 0, window: 2m, min_requests: 10}",
			want: func(c *agent.ThresholdConfig) {
				c.UtilHigh, c.UtilLow, c.Reserve, c.Window, c.MinRequests = 0.9, 0.2, 0, 2*time.Minute, 10
			},
			wantReward: agent.DefaultRLConfig().Reward},
		{name: "guard.down_cooldown", guard: "down_cooldown: 2m",
			want: func(c *agent.ThresholdConfig) { c.DownCooldown = 2 * time.Minute }, wantReward: agent.DefaultRLConfig().Reward},
		{name: "the pool's down_cooldown over the guard's", guard: "down_cooldown: 2m", template: "fallback: {down_cooldown: 30s}",
			want: func(c *agent.ThresholdConfig) { c.DownCooldown = 30 * time.Second }, wantReward: agent.DefaultRLConfig().Reward},
		// 24 per server-hour is 0.2 per 30 s; 80 per violating minute 40.
		{name: "priced servers and violations", template: "objective: {server_hour: 24, violation_minute: 80}",
			want:       func(*agent.ThresholdConfig) {},
			wantReward: agent.RewardConfig{Latency: 1, Violation: 40, Errors: 10, ServerCost: 0.2}},
		{name: "server price only", template: "objective: {server_hour: 1.5}",
			want:       func(*agent.ThresholdConfig) {},
			wantReward: agent.RewardConfig{Latency: 1, Violation: 4, Errors: 10, ServerCost: 0.0125}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := Example(true)
			if tc.template != "" {
				y = strings.Replace(y, "      max_weight: 256\n", "      max_weight: 256\n      "+tc.template+"\n", 1)
			}
			if tc.guard != "" {
				y = strings.Replace(y, "  down_cooldown: 5m ", "  "+tc.guard+" ", 1)
			}
			c, err := Parse([]byte(y))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			want := def
			tc.want(&want)
			// The same pool through the API's path.
			pl, err := c.ParsePool([]byte(poolOf(t, y)))
			if err != nil {
				t.Fatalf("ParsePool: %v", err)
			}
			for name, pool := range map[string]*Pool{"lbtune.yaml": &c.Pools[0], "template spec": &pl} {
				if got := c.PoolFallback(pool); got != want {
					t.Errorf("%s: thresholds %+v, want %+v", name, got, want)
				}
				if got := c.PoolReward(pool); got != tc.wantReward {
					t.Errorf("%s: reward %+v, want %+v", name, got, tc.wantReward)
				}
			}
		})
	}
}
