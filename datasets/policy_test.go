package datasets

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestPolicyVersions: PutPolicy stores numbered versions per name and
// LatestPolicy returns the newest; an unknown name is ErrNotFound.
func TestPolicyVersions(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.LatestPolicy("agent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: err = %v, want ErrNotFound", err)
	}
	tests := []struct {
		name, value, wantKey string
	}{
		{"agent", "v1", "agent/v000001"},
		{"agent", "v2", "agent/v000002"},
		{"agent-web", "w1", "agent-web/v000001"},
	}
	for _, tc := range tests {
		key, err := st.PutPolicy(tc.name, []byte(tc.value))
		if err != nil {
			t.Fatal(err)
		}
		if key != tc.wantKey {
			t.Errorf("put %s %s: key %q, want %q", tc.name, tc.value, key, tc.wantKey)
		}
	}
	for name, want := range map[string]string{"agent": "v2", "agent-web": "w1"} {
		b, _, err := st.LatestPolicy(name)
		if err != nil || string(b) != want {
			t.Errorf("latest %s = %q, %v; want %q", name, b, err, want)
		}
	}
}
