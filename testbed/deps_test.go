package testbed

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDepsScriptStopsNothing runs scripts/deps.sh (what `make test` runs
// first) with apt-get and every process-stopping command replaced by stubs
// that log their arguments. On a balancer host that lacks one test package
// the script must install it with the packages' services kept from starting
// (policy-rc.d during the install) and must never stop or kill a running
// NGINX or HAProxy it did not start.
func TestDepsScriptStopsNothing(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("deps.sh installs only as root")
	}
	dir := t.TempDir()
	logf := filepath.Join(dir, "calls.log")
	rc := filepath.Join(dir, "policy-rc.d")
	stub := func(name, body string) {
		t.Helper()
		script := "#!/bin/sh\necho \"" + name + " $*\" >>" + logf + "\n" + body
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// apt-get records whether services were barred from starting while it ran.
	stub("apt-get", "if [ -x "+rc+" ]; then echo \"policy-rc.d present\" >>"+logf+"; fi\nexit 0\n")
	for _, name := range []string{"pkill", "killall", "kill", "systemctl", "service"} {
		stub(name, "exit 0\n")
	}
	cmd := exec.Command("bash", "../scripts/deps.sh", "lbtune-no-such-tool")
	cmd.Env = append(os.Environ(), "PATH="+dir+":/usr/bin:/bin", "LBTUNE_POLICY_RC="+rc)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deps.sh: %v\n%s", err, out)
	}
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	calls := string(b)
	if !strings.Contains(calls, "apt-get install -y -qq lbtune-no-such-tool") {
		t.Errorf("deps.sh did not install the missing package; calls:\n%s", calls)
	}
	if !strings.Contains(calls, "policy-rc.d present") {
		t.Errorf("apt-get ran without a policy-rc.d barring service starts; calls:\n%s", calls)
	}
	for _, bad := range []string{"pkill", "killall", "kill ", "systemctl", "service"} {
		if strings.Contains(calls, bad) {
			t.Errorf("deps.sh called %q: it must not stop balancers it did not start; calls:\n%s", bad, calls)
		}
	}
	if _, err := os.Stat(rc); !os.IsNotExist(err) {
		t.Errorf("policy-rc.d left behind after the install (stat: %v)", err)
	}
}
