package config

import (
	"reflect"
	"slices"
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
