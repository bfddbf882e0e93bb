package fleet

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func readState(t *testing.T, path string) []Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Servers
}

// TestHandoverAdopt: with a StateFile, Close leaves the servers serving and
// recorded; the next fleet adopts the live healthy ones, stops the failing
// one and drops the dead one; StopAll leaves an empty record.
func TestHandoverAdopt(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "fleet.json")
	tmpl := testTemplate()
	f1 := New(map[string]Template{"web": tmpl, "api": tmpl})
	f1.StateFile = state
	var names []string
	pids := map[string]int{}
	for _, pool := range []string{"web", "web", "web", "api"} {
		m, err := f1.Launch(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m.Name)
		pids[m.Name] = pidOf(t, f1, pool, m.Name)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	if got := len(readState(t, state)); got != 4 {
		t.Fatalf("state file has %d records after 4 launches, want 4", got)
	}
	// names[1] will fail its health checks, names[2] will be dead.
	resp, err := http.Get("http://" + names[1] + "/fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	recs, err := f1.Handover()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("handed over %d, want 4: %+v", len(recs), recs)
	}
	for _, n := range names {
		if !alive(pids[n]) {
			t.Fatalf("%s not alive after Handover", n)
		}
		if got := get(t, n); got != n {
			t.Errorf("%s answered %q after Handover", n, got)
		}
	}
	if err := f1.Close(); err != nil { // a second Close hands over nothing more
		t.Fatal(err)
	}
	if got := len(readState(t, state)); got != 4 {
		t.Fatalf("state file has %d records after Close, want 4", got)
	}
	_ = syscall.Kill(-pids[names[2]], syscall.SIGKILL)
	for alive(pids[names[2]]) {
		time.Sleep(10 * time.Millisecond)
	}

	f2 := New(map[string]Template{"web": tmpl, "api": tmpl})
	f2.StateFile = state
	adopted, gone, err := f2.Adopt(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(adopted) != 1 || adopted[0].Name != names[0] {
		t.Errorf("adopted %+v, want only %s", adopted, names[0])
	}
	var goneNames []string
	for _, m := range gone {
		goneNames = append(goneNames, m.Name)
	}
	slices.Sort(goneNames)
	want := []string{names[1], names[2]}
	slices.Sort(want)
	if !slices.Equal(goneNames, want) {
		t.Errorf("gone %v, want %v", goneNames, want)
	}
	if alive(pids[names[1]]) {
		t.Error("the failing recorded server was not stopped")
	}
	// Not adopted yet, api's record is kept.
	recs = readState(t, state)
	if len(recs) != 2 || !slices.ContainsFunc(recs, func(r Record) bool { return r.Pool == "api" }) {
		t.Errorf("state after adopting web: %+v, want web's adopted one and api's", recs)
	}
	ms, _ := f2.Members(ctx, "web")
	if len(ms) != 1 || !ms[0].Healthy {
		t.Fatalf("members after adopt = %+v", ms)
	}
	// The adopted server is supervised: a kill -9 is noticed.
	if r := waitUnhealthyAfter(t, f2, "web", names[0], pids[names[0]]); !strings.Contains(r, "gone") {
		t.Errorf("reason %q, want gone", r)
	}
	if _, _, err := f2.Adopt(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	if err := f2.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(pids[names[3]]) {
		t.Error("adopted api server alive after StopAll")
	}
	if recs := readState(t, state); len(recs) != 0 {
		t.Errorf("state after StopAll: %+v, want none", recs)
	}
}

// waitUnhealthyAfter kills pid and waits until name is reported unhealthy.
func waitUnhealthyAfter(t *testing.T, f *Fleet, pool, name string, pid int) string {
	t.Helper()
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return waitUnhealthy(t, f, pool, name, 2*time.Second)
}

// TestAdoptRefusesAnotherProcess: a record whose pid now belongs to
// another process (different start time) is gone, and that process is
// left alone.
func TestAdoptRefusesAnotherProcess(t *testing.T) {
	state := filepath.Join(t.TempDir(), "fleet.json")
	self := os.Getpid()
	ticks, err := startTicks(self)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(stateFile{Servers: []Record{{Pool: "web", Name: "x", Addr: "127.0.0.1:1", PID: self, StartTicks: ticks + 1}}})
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f := New(map[string]Template{"web": testTemplate()})
	f.StateFile = state
	adopted, gone, err := f.Adopt(context.Background(), "web")
	if err != nil || len(adopted) != 0 || len(gone) != 1 || gone[0].Reason != "process gone" {
		t.Errorf("adopt = %+v, %+v, %v; want one gone", adopted, gone, err)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in      string
		state   string
		ticks   uint64
		wantErr bool
	}{
		{"1234 (backend) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 5 0 98765 1000 100 1", "S", 98765, false},
		{"1 (a (b) c) R 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0", "R", 42, false},
		{"7 (x) Z 1 7", "", 0, true},
		{"no paren", "", 0, true},
		{"1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 notanumber 0", "", 0, true},
	}
	for _, tc := range tests {
		state, ticks, err := parseStat(tc.in)
		if (err != nil) != tc.wantErr || state != tc.state || ticks != tc.ticks {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, err %v", tc.in, state, ticks, err, tc.state, tc.ticks, tc.wantErr)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(string(b))
	}
	f.Add("1 (a (b) c) R 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0")
	f.Add("7 (x) Z")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = parseStat(s)
	})
}
