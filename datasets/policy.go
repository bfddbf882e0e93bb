package datasets

import (
	"fmt"
	"strconv"
	"strings"
)

// Policies are versioned in BucketPolicies under "<name>/v<version>", the
// version zero-padded to six digits so keys sort in version order. The
// value is the policy's JSON as its owner (agent.PolicyTable) encodes it.

// policyKey is the store key of version v of the named policy.
func policyKey(name string, v int) string { return fmt.Sprintf("%s/v%06d", name, v) }

// PutPolicy stores b as the next version of the named policy and returns
// the key it used.
func (s *Store) PutPolicy(name string, b []byte) (string, error) {
	v, err := s.latestPolicyVersion(name)
	if err != nil {
		return "", err
	}
	key := policyKey(name, v+1)
	if err := s.Put(BucketPolicies, key, b); err != nil {
		return "", fmt.Errorf("save policy %s: %w", key, err)
	}
	return key, nil
}

// LatestPolicy returns the latest version of the named policy and its key;
// ErrNotFound (wrapped) when there is none.
func (s *Store) LatestPolicy(name string) ([]byte, string, error) {
	v, err := s.latestPolicyVersion(name)
	if err != nil {
		return nil, "", err
	}
	if v == 0 {
		return nil, "", fmt.Errorf("load policy %s: %w", name, ErrNotFound)
	}
	key := policyKey(name, v)
	b, err := s.Get(BucketPolicies, key)
	if err != nil {
		return nil, "", fmt.Errorf("load policy %s: %w", key, err)
	}
	return b, key, nil
}

// latestPolicyVersion is the highest stored version of name, 0 for none.
func (s *Store) latestPolicyVersion(name string) (int, error) {
	keys, err := s.Keys(BucketPolicies)
	if err != nil {
		return 0, fmt.Errorf("list policies: %w", err)
	}
	best := 0
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, name+"/v")
		if !ok {
			continue
		}
		if v, err := strconv.Atoi(rest); err == nil && v > best {
			best = v
		}
	}
	return best, nil
}
