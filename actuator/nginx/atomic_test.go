package nginx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeScript writes an executable shell script standing in for the nginx
// binary (Files.Bin): body runs first, then the real nginx.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nginx-wrapper.sh")
	script := "#!/bin/sh\n" + body + "\nexec " + nginxBin + " \"$@\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// stagedLeft lists staged copies and config copies left in n's directories.
func stagedLeft(t *testing.T, f Files) []string {
	t.Helper()
	a, _ := filepath.Glob(stagedPrefix(f.Include) + "*")
	b, _ := filepath.Glob(filepath.Join(filepath.Dir(f.MainConf), checkFilePattern))
	return append(a, b...)
}

// serves fetches front count times and returns the distinct bodies seen.
func serves(t *testing.T, front string, count int) []string {
	t.Helper()
	var seen []string
	for range count {
		body, err := get(front + "/probe")
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		if !slices.Contains(seen, body) {
			seen = append(seen, body)
		}
	}
	slices.Sort(seen)
	return seen
}

// TestValidationFailureNeverTouchesInclude (issue 14 section 3): while
// nginx -t runs and after it refused the change, the include file is the
// very same file (same inode, same bytes), so an outside reload or restart
// in that window loads the old config; NGINX keeps serving and the state
// is unchanged. The stand-in nginx binary snapshots the include each time
// it is run.
func TestValidationFailureNeverTouchesInclude(t *testing.T) {
	b := newBackend(t)
	n := startNginx(t, appUpstream(b.addr()))
	snaps := t.TempDir()
	files := n.files
	files.Bin = writeScript(t, fmt.Sprintf(`cp %q %q/$$`, files.Include, snaps))
	m := New(files, n.Upstreams())
	m.Log = slog.New(slog.DiscardHandler)
	before, err := os.ReadFile(files.Include)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ups  []Upstream
	}{
		// Renders, but nginx -t refuses: the host does not resolve.
		{"unresolvable host", appUpstream("no-such-host.invalid:80")},
		// The main config proxies to "app": without it nginx -t fails.
		{"upstream missing", []Upstream{{Name: "other", Servers: []UpstreamServer{{Address: b.addr(), Weight: 1}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st0, err := os.Stat(files.Include)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Apply(context.Background(), tc.ups); !errors.Is(err, ErrValidation) {
				t.Fatalf("Apply err = %v, want ErrValidation", err)
			}
			ents, _ := os.ReadDir(snaps)
			if len(ents) == 0 {
				t.Fatal("the nginx stand-in never ran")
			}
			for _, e := range ents {
				got, _ := os.ReadFile(filepath.Join(snaps, e.Name()))
				if !bytes.Equal(got, before) {
					t.Errorf("include while nginx -t ran was not the old file:\n%s", got)
				}
				_ = os.Remove(filepath.Join(snaps, e.Name()))
			}
			st1, err := os.Stat(files.Include)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := os.ReadFile(files.Include)
			if !bytes.Equal(after, before) || !os.SameFile(st0, st1) || !st0.ModTime().Equal(st1.ModTime()) {
				t.Errorf("include file changed (same inode %v, mtime %s -> %s):\n%s",
					os.SameFile(st0, st1), st0.ModTime(), st1.ModTime(), after)
			}
			if got := serves(t, n.front, 5); !slices.Equal(got, []string{b.addr()}) {
				t.Errorf("NGINX serves %v, want only %s", got, b.addr())
			}
			if got := m.Applied("app"); len(got) != 1 || got[b.addr()] != 1 {
				t.Errorf("Applied = %v after a refused change", got)
			}
			if left := stagedLeft(t, files); len(left) > 0 {
				t.Errorf("staged files left: %v", left)
			}
		})
	}
}

// killHelperEnv carries a killHelperJob to the re-executed test binary.
const killHelperEnv = "LBTUNE_NGINX_KILL_HELPER"

// killHelperJob is one Apply the helper process runs and is killed in.
type killHelperJob struct {
	Files Files
	Old   []Upstream
	New   []Upstream
	Step  string // failpoint at which the helper kills itself; "" = the nginx stand-in kills it
}

// TestKillHelper is not a test: TestKilledApply re-runs the test binary
// with it selected to get a process it can kill in the middle of Apply.
func TestKillHelper(t *testing.T) {
	raw := os.Getenv(killHelperEnv)
	if raw == "" {
		t.Skip("helper process for TestKilledApply")
	}
	var job killHelperJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		t.Fatal(err)
	}
	if job.Step != "" {
		failpoint = func(step string) {
			if step == job.Step {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute)
			}
		}
	}
	n := New(job.Files, job.Old)
	_, err := n.Apply(context.Background(), job.New)
	fmt.Printf("Apply returned instead of being killed: %v\n", err)
	os.Exit(3)
}

// TestKilledApply (issue 14 section 3): a process killed at any point of a
// change never leaves an include NGINX has not validated. Killed before
// the rename, the include is byte-identical; after it, it is the validated
// new file. Either way nginx -t passes on the config on disk, an outside
// reload serves, and the next change cleans up and succeeds.
func TestKilledApply(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	n := startNginx(t, appUpstream(a.addr()))
	suicide := writeScript(t, `for arg in "$@"; do [ "$arg" = -t ] && { kill -9 $PPID; exit 1; }; done`)
	tests := []struct {
		name     string
		step     string
		bin      string     // "" = real nginx
		ups      []Upstream // the change being applied when killed
		wantNew  bool       // the include holds the new file afterwards
		wantBody string     // what NGINX serves after an outside reload
	}{
		// The unvalidated file is one nginx -t refuses: had it reached the
		// include, nginx -t on the config on disk would fail.
		{"during nginx -t", "", suicide, appUpstream("no-such-host.invalid:80"), false, a.addr()},
		{"after staging", "staged", "", appUpstream(b.addr()), false, a.addr()},
		{"after validation, before rename", "validated", "", appUpstream(b.addr()), false, a.addr()},
		{"after rename, before reload", "renamed", "", appUpstream(b.addr()), true, b.addr()},
		{"after the signal", "signalled", "", appUpstream(b.addr()), true, b.addr()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Start each case from a on disk and running.
			reset := New(n.files, nil)
			reset.Log = slog.New(slog.DiscardHandler)
			if _, err := reset.Apply(context.Background(), appUpstream(a.addr())); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(n.files.Include)
			files := n.files
			if tc.bin != "" {
				files.Bin = tc.bin
			}
			job, _ := json.Marshal(killHelperJob{Files: files, Old: appUpstream(a.addr()), New: tc.ups, Step: tc.step})
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), killHelperEnv+"="+string(job))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not killed (err %v): %s", err, out)
			}
			after, _ := os.ReadFile(n.files.Include)
			var want bytes.Buffer
			if err := RenderUpstreams(&want, tc.ups); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantNew && !bytes.Equal(after, want.Bytes()):
				t.Errorf("include after the kill is not the validated new file:\n%s", after)
			case !tc.wantNew && !bytes.Equal(after, before):
				t.Errorf("include after the kill is not the old file:\n%s", after)
			}
			if out, err := nginxTest(nginxBin, n.files.Prefix, n.files.MainConf); err != nil {
				t.Errorf("nginx -t on the config on disk after the kill: %v: %s", err, out)
			}
			// An outside reload (an operator, logrotate) loads what is on disk.
			outside := New(n.files, nil)
			if _, _, err := outside.reload(context.Background(), ""); err != nil {
				t.Fatalf("outside reload: %v", err)
			}
			if got := serves(t, n.front, 5); !slices.Equal(got, []string{tc.wantBody}) {
				t.Errorf("after an outside reload NGINX serves %v, want %s", got, tc.wantBody)
			}
			// The next change (a restarted lbtune adopting the file) succeeds
			// and removes what the killed one left behind.
			ups, err := ReadUpstreams(n.files.Include)
			if err != nil {
				t.Fatal(err)
			}
			next := New(n.files, ups)
			next.Log = slog.New(slog.DiscardHandler)
			if _, err := next.Apply(context.Background(), appUpstream(a.addr())); err != nil {
				t.Fatal(err)
			}
			if left := stagedLeft(t, n.files); len(left) > 0 {
				t.Errorf("staged files left after the next change: %v", left)
			}
		})
	}
}

// signalAll sends sig to every pid.
func signalAll(t *testing.T, pids []int, sig syscall.Signal) {
	t.Helper()
	for _, p := range pids {
		if err := syscall.Kill(p, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("signal %d: %v", p, err)
		}
	}
}

// agree checks that the include file, the state recorded by m and what the
// running NGINX routes to all name want as the only server of "app".
func agree(t *testing.T, m *NGINX, front, want string) {
	t.Helper()
	ups, err := ReadUpstreams(m.files.Include)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || len(ups[0].Servers) != 1 || ups[0].Servers[0].Address != want {
		t.Errorf("include file holds %+v, want only %s", ups, want)
	}
	if got := m.Applied("app"); len(got) != 1 || got[want] == 0 {
		t.Errorf("recorded state (Applied) = %v, want only %s", got, want)
	}
	if got := serves(t, front, 8); !slices.Equal(got, []string{want}) {
		t.Errorf("running NGINX routes to %v, want only %s", got, want)
	}
}

// TestReloadTimeoutAgreement (issue 14 section 3): when the reload is not
// confirmed within ReloadTimeout, the include file, the running config
// (probed: which backend answers) and the recorded state still agree.
func TestReloadTimeoutAgreement(t *testing.T) {
	ctx := context.Background()
	t.Run("master loaded it, old workers slow to stop", func(t *testing.T) {
		// Old workers frozen: the master loads the new config and starts
		// new workers, but the old ones cannot stop accepting in time.
		a, b := newBackend(t), newBackend(t)
		n := startNginx(t, appUpstream(a.addr()))
		n.ReloadTimeout = time.Second
		master, err := n.MasterPID()
		if err != nil {
			t.Fatal(err)
		}
		old, err := children(master)
		if err != nil || len(old) == 0 {
			t.Fatalf("workers of %d: %v %v", master, old, err)
		}
		signalAll(t, old, syscall.SIGSTOP)
		t.Cleanup(func() { signalAll(t, old, syscall.SIGCONT) })
		_, err = n.Apply(ctx, appUpstream(b.addr()))
		signalAll(t, old, syscall.SIGCONT)
		t.Logf("Apply: %v", err)
		if alive := WaitExited(ctx, old, 5*time.Second); len(alive) > 0 {
			t.Fatalf("old workers %v did not exit", alive)
		}
		agree(t, n.NGINX, n.front, b.addr())
	})
	t.Run("master does not answer", func(t *testing.T) {
		// Master frozen: no new worker appears. The old file is put back
		// and NGINX signalled again; once the master runs, it loads that.
		a, b := newBackend(t), newBackend(t)
		n := startNginx(t, appUpstream(a.addr()))
		n.ReloadTimeout = 400 * time.Millisecond
		master, err := n.MasterPID()
		if err != nil {
			t.Fatal(err)
		}
		signalAll(t, []int{master}, syscall.SIGSTOP)
		t.Cleanup(func() { signalAll(t, []int{master}, syscall.SIGCONT) })
		workers, _ := children(master)
		_, err = n.Apply(ctx, appUpstream(b.addr()))
		if !errors.Is(err, ErrReload) {
			t.Errorf("Apply err = %v, want ErrReload", err)
		}
		signalAll(t, []int{master}, syscall.SIGCONT)
		// Wait for the pending reload, then for the old workers to go.
		deadline := time.Now().Add(5 * time.Second)
		for {
			now, _ := children(master)
			if slices.ContainsFunc(now, func(p int) bool { return !slices.Contains(workers, p) }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("master did not reload after SIGCONT")
			}
			time.Sleep(10 * time.Millisecond)
		}
		WaitExited(ctx, workers, 5*time.Second)
		agree(t, n.NGINX, n.front, a.addr())
	})
	t.Run("master answers only once the old file is back", func(t *testing.T) {
		// Master frozen until the include holds the old bytes again: the
		// change times out, the rollback's own reload is then confirmed.
		a, b := newBackend(t), newBackend(t)
		n := startNginx(t, appUpstream(a.addr()))
		n.ReloadTimeout = 400 * time.Millisecond
		master, err := n.MasterPID()
		if err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(n.files.Include)
		signalAll(t, []int{master}, syscall.SIGSTOP)
		t.Cleanup(func() { signalAll(t, []int{master}, syscall.SIGCONT) })
		changed := make(chan struct{})
		thawed := make(chan struct{})
		go func() {
			defer close(thawed)
			seenNew := false
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
				cur, _ := os.ReadFile(n.files.Include)
				if !seenNew && !bytes.Equal(cur, before) {
					seenNew = true
					close(changed)
				}
				if seenNew && bytes.Equal(cur, before) {
					break
				}
			}
			_ = syscall.Kill(master, syscall.SIGCONT)
		}()
		_, err = n.Apply(ctx, appUpstream(b.addr()))
		<-thawed
		select {
		case <-changed:
		default:
			t.Fatal("the include never held the new file")
		}
		if !errors.Is(err, ErrReload) || !strings.Contains(err.Error(), "restored and reloaded") {
			t.Errorf("Apply err = %v, want ErrReload with a confirmed rollback", err)
		}
		workers, _ := children(master)
		WaitExited(ctx, slices.DeleteFunc(workers, acceptingWorker), 5*time.Second)
		agree(t, n.NGINX, n.front, a.addr())
	})
}

// TestStageConfigLayouts: nginx -t validates the staged file whether the
// main config includes the managed file directly, by a relative path,
// through a glob (Debian's conf.d/*.conf), or through a nested include;
// hidden files and the include's siblings are treated as NGINX does.
func TestStageConfigLayouts(t *testing.T) {
	bin := requireNginx(t)
	good := "upstream app { server 127.0.0.1:1; }\n"
	bad := "upstream app { server 127.0.0.1:1 weight=0; }\n"
	tests := []struct {
		name    string
		layout  map[string]string // path under dir -> content ("@INC" marks the include line)
		include string            // managed include, under dir
		wantErr string            // "" = validates; else a substring of the stage error
	}{
		{"direct absolute", map[string]string{"nginx.conf": "http { include @ABS; server { location / { proxy_pass http://app; } } }"}, "up.conf", ""},
		{"relative", map[string]string{"nginx.conf": "http { include up.conf; server { location / { proxy_pass http://app; } } }"}, "up.conf", ""},
		{"quoted", map[string]string{"nginx.conf": "http { include \"up.conf\"; server { location / { proxy_pass http://app; } } }"}, "up.conf", ""},
		{"glob, include not yet there", map[string]string{
			"nginx.conf":        "http { include conf.d/*.conf; server { location / { proxy_pass http://app; } } }",
			"conf.d/other.conf": "map $host $x { default 1; }",
		}, "conf.d/lbtune.conf", ""},
		{"nested", map[string]string{
			"nginx.conf":                  "http { include sites-enabled/*; }",
			"sites-enabled/site":          "include up.conf; server { location / { proxy_pass http://app; } }",
			"sites-enabled/.hidden":       "this is not nginx syntax",
			"sites-enabled/#comment.conf": "# only a comment",
		}, "up.conf", ""},
		{"not included", map[string]string{"nginx.conf": "http { upstream app { server 127.0.0.1:1; } }"}, "up.conf", "never includes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			inc := filepath.Join(dir, tc.include)
			for p, c := range tc.layout {
				full := filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				c = strings.ReplaceAll(c, "@ABS", inc)
				if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			main := filepath.Join(dir, "nginx.conf")
			mainSrc, _ := os.ReadFile(main)
			if err := os.WriteFile(main, append([]byte(fmt.Sprintf("pid %s/nginx.pid;\nevents {}\n", dir)), mainSrc...), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(inc), 0o755); err != nil {
				t.Fatal(err)
			}
			n := New(Files{Bin: bin, Prefix: dir, MainConf: main, ErrorLog: filepath.Join(dir, "error.log"), Include: inc}, nil)
			for _, content := range []string{good, bad} {
				staged, err := writeStaged(inc, []byte(content))
				if err != nil {
					t.Fatal(err)
				}
				err = n.validateStaged(context.Background(), staged)
				_ = os.Remove(staged)
				switch {
				case tc.wantErr != "":
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("err = %v, want %q", err, tc.wantErr)
					}
					return
				case content == good && err != nil:
					t.Fatalf("valid staged file refused: %v", err)
				case content == bad && !errors.Is(err, ErrValidation):
					t.Fatalf("invalid staged file: err = %v, want ErrValidation", err)
				}
			}
			if _, err := os.Stat(inc); tc.name == "glob, include not yet there" && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("include created by validation: %v", err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, checkFilePattern)); len(left) > 0 {
				t.Errorf("config copies left: %v", left)
			}
		})
	}
}

// TestApplied: the weights and servers NGINX runs, per pool, by address;
// down servers left out, unknown pools nil, and unchanged by a refused change.
func TestApplied(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	n := startNginx(t, appUpstream(a.addr()))
	ctx := context.Background()
	steps := []struct {
		name string
		do   func() error
		want map[string]int
	}{
		{"initial", func() error { return nil }, map[string]int{a.addr(): 1}},
		{"add", func() error { return n.AddServer(ctx, "app", "srv-b", b.addr(), 4) }, map[string]int{a.addr(): 1, b.addr(): 4}},
		{"weights by name", func() error { return n.SetWeights(ctx, "app", map[string]int{"srv-b": 7, a.addr(): 3}) },
			map[string]int{a.addr(): 3, b.addr(): 7}},
		{"refused change", func() error {
			if err := n.SetWeights(ctx, "app", map[string]int{"srv-b": 0}); err == nil {
				return errors.New("weight 0 accepted")
			}
			return nil
		}, map[string]int{a.addr(): 3, b.addr(): 7}},
		{"remove", func() error { return n.RemoveServer(ctx, "app", "srv-b") }, map[string]int{a.addr(): 3}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := n.Applied("app")
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("%s: Applied = %v, want %v", s.name, got, s.want)
		}
		// The include file says the same.
		ups, err := ReadUpstreams(n.files.Include)
		if err != nil {
			t.Fatal(err)
		}
		fromFile := map[string]int{}
		for _, sv := range ups[0].Servers {
			if !sv.Down {
				fromFile[sv.Address] = sv.Weight
			}
		}
		if fmt.Sprint(fromFile) != fmt.Sprint(s.want) {
			t.Errorf("%s: include file has %v, want %v", s.name, fromFile, s.want)
		}
	}
	if got := n.Applied("nosuch"); got != nil {
		t.Errorf("Applied(nosuch) = %v, want nil", got)
	}
}
