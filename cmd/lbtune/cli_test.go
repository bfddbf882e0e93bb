package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/model"
)

// cliRun runs lbtune in-process and returns its exit code, stdout and stderr.
func cliRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := runMain(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCLIHelpAndExitCodes checks what a new user meets first: bare lbtune
// is a usage error, help goes to stdout, and group commands list their
// subcommands one per line.
func TestCLIHelpAndExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdoutHas  []string // each on its own line start (after spaces)
		stderrHas  []string
		stdoutNone bool
	}{
		{"bare", nil, 2, nil, []string{"Usage: lbtune <command>", "\n  dataset ", "\n  gmm "}, true},
		{"help", []string{"help"}, 0, []string{"Usage: lbtune <command>", "\n  plot "}, nil, false},
		{"--help", []string{"--help"}, 0, []string{"\n  run "}, nil, false},
		{"unknown command", []string{"nosuch"}, 2, nil, []string{`unknown command "nosuch"`}, true},
		{"help unknown", []string{"help", "nosuch"}, 2, nil, []string{`unknown command "nosuch"`}, true},
		{"dataset --help", []string{"dataset", "--help"}, 0,
			[]string{"\n  info ", "\n  export ", "\n  import ", "\n  prune "}, nil, false},
		{"help dataset", []string{"help", "dataset"}, 0, []string{"\n  info ", "\n  prune "}, nil, false},
		{"dataset bare", []string{"dataset"}, 2, nil, []string{"\n  info ", "missing subcommand"}, true},
		{"gmm --help", []string{"gmm", "--help"}, 0, []string{"Usage: lbtune gmm <subcommand>", "\n  fit "}, nil, false},
		{"gmm -h", []string{"gmm", "-h"}, 0, []string{"\n  fit "}, nil, false},
		{"gmm bare", []string{"gmm"}, 2, nil, []string{"\n  fit ", "missing subcommand"}, true},
		{"gmm unknown", []string{"gmm", "predict"}, 2, nil, []string{`unknown subcommand "predict"`}, true},
		{"gmm fit without csv", []string{"gmm", "fit"}, 2, nil, []string{"--csv is required"}, true},
		{"config --help", []string{"config", "--help"}, 0, []string{"\n  check ", "\n  example "}, nil, false},
		{"help config", []string{"help", "config"}, 0, []string{"\n  check ", "\n  example "}, nil, false},
		{"config bare", []string{"config"}, 2, nil, []string{"\n  check ", "missing subcommand"}, true},
		{"policy -h", []string{"policy", "-h"}, 0, []string{"\n  train ", "\n  show "}, nil, false},
		{"policy bare", []string{"policy"}, 2, nil, []string{"\n  train ", "missing subcommand"}, true},
		{"testbed --help", []string{"testbed", "--help"}, 0,
			[]string{"\n  up ", "\n  down ", "\n  status ", "\n  explore ", "\n  example "}, nil, false},
		{"testbed bare", []string{"testbed"}, 2, nil, []string{"\n  up "}, true},
		{"config example still runs", []string{"config", "example"}, 0, []string{"pools:"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cliRun(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			for _, s := range tc.stdoutHas {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tc.stdoutNone && stdout != "" {
				t.Errorf("stdout %q, want nothing (a usage error)", stdout)
			}
		})
	}
}

// TestProgressNotATerminal checks that no bar frames reach a writer that
// is not a terminal (a buffer, a log file, /dev/null): one line is written
// instead, and the bar is nil.
func TestProgressNotATerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	var buf bytes.Buffer
	for _, tc := range []struct {
		name string
		w    interface{ Write([]byte) (int, error) }
		read func() string
	}{
		{"buffer", &buf, buf.String},
		{"file", f, func() string { b, _ := os.ReadFile(f.Name()); return string(b) }},
		{"/dev/null", devnull, func() string { return "simulated hours (100 steps)...\n" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if isTerminal(tc.w) {
				t.Fatalf("isTerminal(%s) = true", tc.name)
			}
			bar := newProgress(tc.w, 100, "simulated hours")
			if bar != nil {
				t.Fatalf("a bar on %s", tc.name)
			}
			got := tc.read()
			if got != "simulated hours (100 steps)...\n" || strings.ContainsAny(got, "\r\x1b") {
				t.Errorf("%s got %q, want one plain line", tc.name, got)
			}
		})
	}
}

// TestBarsGoThroughNewProgress: every progress bar of the command line is
// made by newProgress (or behind its own terminal check), so none draws
// frames into a log; `train --data` once drew 72 frames into a pipe.
func TestBarsGoThroughNewProgress(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if name == "progress.go" || strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			if strings.Contains(line, "progressbar.New") && !strings.Contains(string(src), "isTerminal(") && !strings.Contains(string(src), "term.IsTerminal(") {
				t.Errorf("%s:%d makes a bar with no terminal check: use newProgress", name, i+1)
			}
		}
	}
}

// TestGMMFitComponents fits two well-separated clusters and checks the
// component table: header names, weights and means.
func TestGMMFitComponents(t *testing.T) {
	var b strings.Builder
	b.WriteString("rate_rps,p95_ms\n")
	for i := range 60 {
		d := float64(i%5) - 2 // -2..2
		if i < 40 {
			b.WriteString(strings.Join([]string{fmtF(10 + d), fmtF(100 + 2*d)}, ",") + "\n")
		} else {
			b.WriteString(strings.Join([]string{fmtF(200 + d), fmtF(900 + 2*d)}, ",") + "\n")
		}
	}
	path := filepath.Join(t.TempDir(), "x.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := cliRun(t, "gmm", "fit", "--csv", path, "--k", "2", "--cov", "diag")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := []string{
		"components (largest weight first; means in the CSV's units):",
		"component  weight  rate_rps  p95_ms",
		"        0   0.667        10     100",
		"        1   0.333       200     900",
	}
	if strings.Contains(stdout, "        0   0.333") { // component order depends on the initialisation
		want[2], want[3] = "        1   0.667        10     100", "        0   0.333       200     900"
	}
	for _, w := range want {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}
	code, stdout, _ = cliRun(t, "gmm", "fit", "--csv", path, "--k", "2", "--cov", "diag", "--json")
	if code != 0 || !strings.Contains(stdout, `"components":[{"index":`) || !strings.Contains(stdout, `"rate_rps":10`) || !strings.Contains(stdout, `"bic"`) {
		t.Errorf("--json: exit %d, %s", code, stdout)
	}
}

func fmtF(v float64) string { return strings.TrimRight(strings.TrimRight(fmtFloat(v), "0"), ".") }

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestHelpGolden compares the group commands' help and the gmm component
// table with testdata/*.golden (go test -run TestHelpGolden -update
// rewrites them).
func TestHelpGolden(t *testing.T) {
	g := &model.GMM{K: 2, D: 3, Weights: []float64{0.25, 0.75}, Means: []float64{120, 300.5, 0.01, 15, 80, 0}}
	tests := []struct {
		golden string
		render func(w *bytes.Buffer)
	}{
		{"help-dataset.golden", func(w *bytes.Buffer) { _ = datasetRun(context.Background(), []string{"--help"}, w, w) }},
		{"help-gmm.golden", func(w *bytes.Buffer) { _ = gmmRun(context.Background(), []string{"--help"}, w, w) }},
		{"help-config.golden", func(w *bytes.Buffer) { groupUsage(w, commands["config"]) }},
		{"gmm-components.golden", func(w *bytes.Buffer) {
			names := []string{"rate_rps", "p95_ms"} // shorter than D: the third column is col3
			gmmPrintComponents(w, gmmComponents(g, names), names)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			tc.render(&b)
			path := filepath.Join("testdata", tc.golden)
			if *updateGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", tc.golden, b.String(), want)
			}
		})
	}
}
