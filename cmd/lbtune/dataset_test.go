package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

// datasetCaptures is ../shared/captures seen from this package directory.
const datasetCaptures = "../../../shared/captures"

// datasetRunCmd runs "lbtune args..." in process and returns the exit code,
// stdout and stderr.
func datasetRunCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runMain(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// datasetRecord stores every capture of a replaying source in a new store.
func datasetRecord(t *testing.T, uri, path string) int {
	t.Helper()
	if _, err := os.Stat(datasetCaptures); err != nil {
		t.Fatalf("captures missing: %v", err)
	}
	src, err := collector.Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	s, err := datasets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for ; n < 1000; n++ {
		sn, err := src.Scrape(context.Background())
		if errors.Is(err, collector.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Append(sn); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func TestDatasetInfoExportImport(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		uri  string
	}{
		{"vts captures", "vts+file:" + datasetCaptures + "/vts"},
		{"haproxy captures", "haproxy+file:" + datasetCaptures + "/haproxy/captures"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(dir, tc.name+".db")
			n := datasetRecord(t, tc.uri, db)

			// info --json after the positional argument, as the issue writes it.
			code, out, errs := datasetRunCmd("dataset", "info", db, "--json")
			if code != 0 {
				t.Fatalf("info: exit %d: %s", code, errs)
			}
			var info map[string]any
			if err := json.Unmarshal([]byte(out), &info); err != nil {
				t.Fatalf("info --json: %v\n%s", err, out)
			}
			for _, k := range []string{"snapshots", "start", "end", "pools", "servers", "gaps", "min_rate"} {
				if _, ok := info[k]; !ok {
					t.Errorf("info --json lacks %q", k)
				}
			}
			if got := info["snapshots"].(float64); int(got) != n || n < 10 {
				t.Errorf("snapshots %v, recorded %d", got, n)
			}
			if mr, ok := info["min_rate"].(float64); !ok || mr < 0 {
				t.Errorf("min_rate %v: want a non-negative number", info["min_rate"])
			}
			// The text form shows the same per-pool figures, the cost among them.
			if code, out, errs := datasetRunCmd("dataset", "info", db); code != 0 || !strings.Contains(out, "mean cost") || !strings.Contains(out, "p95 ms") {
				t.Errorf("info: exit %d, no mean cost or p95 ms column: %s%s", code, out, errs)
			}

			// export -> import -> export round-trips every snapshot byte for byte.
			gz := filepath.Join(dir, tc.name+".jsonl.gz")
			if code, _, errs := datasetRunCmd("dataset", "export", "--db", db, "--out", gz); code != 0 {
				t.Fatalf("export: exit %d: %s", code, errs)
			}
			db2 := filepath.Join(dir, tc.name+"-2.db")
			if code, out, errs := datasetRunCmd("dataset", "import", "--db", db2, gz); code != 0 || !strings.Contains(out, "imported") {
				t.Fatalf("import: exit %d: %s %s", code, out, errs)
			}
			plain := filepath.Join(dir, tc.name+"-2.jsonl")
			if code, _, errs := datasetRunCmd("dataset", "export", "--db", db2, "--out", plain); code != 0 {
				t.Fatalf("second export: exit %d: %s", code, errs)
			}
			a, b := datasetSnapshotsJSON(t, db), datasetSnapshotsJSON(t, plain)
			if a != b || a != datasetSnapshotsJSON(t, gz) {
				t.Fatal("export/import round trip changed the snapshots")
			}
			// info reads dataset files too and agrees with the store.
			code, out2, _ := datasetRunCmd("dataset", "info", "--json", plain)
			var info2 map[string]any
			if err := json.Unmarshal([]byte(out2), &info2); code != 0 || err != nil {
				t.Fatalf("info on the file: exit %d, %v\n%s", code, err, out2)
			}
			for _, k := range []string{"snapshots", "start", "end", "pools", "servers", "min_rate"} {
				if info2[k] != info[k] {
					t.Errorf("%s: file says %v, store says %v", k, info2[k], info[k])
				}
			}
			code, text, errText := datasetRunCmd("dataset", "info", "--check", db)
			if !strings.Contains(errText, "consistent") {
				t.Errorf("info --check: stderr %q", errText)
			}
			if code != 0 || !strings.Contains(text, "min rate") || !strings.Contains(text, "servers") {
				t.Fatalf("info text: exit %d\n%s", code, text)
			}
		})
	}
}

// datasetSnapshotsJSON is the JSON of every snapshot in a store or file.
func datasetSnapshotsJSON(t *testing.T, path string) string {
	t.Helper()
	snaps, err := datasets.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(snaps)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDatasetErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	header := `{"format":"lbtune-dataset","version":1,"source":"s","description":"","created":"2026-11-28T09:00:00Z"}` + "\n"
	truncated := write("trunc.jsonl", header+`{"time":"2026-11-28T09:00:01Z","source":"s","pools":[{"name":`)
	future := write("future.jsonl", `{"format":"lbtune-dataset","version":9}`+"\n")
	garbage := write("garbage.db", "not a store, not a dataset\n")
	db := filepath.Join(dir, "ok.db")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no subcommand", []string{"dataset"}, 2, "missing subcommand"},
		{"unknown subcommand", []string{"dataset", "frobnicate"}, 2, "unknown subcommand"},
		{"info without file", []string{"dataset", "info"}, 2, "FILE_OR_DB"},
		{"info missing file", []string{"dataset", "info", filepath.Join(dir, "nope.jsonl")}, 1, "no such file"},
		{"info truncated", []string{"dataset", "info", truncated}, 1, "line 2"},
		{"info future version", []string{"dataset", "info", future}, 1, "version 9"},
		{"info garbage", []string{"dataset", "info", garbage}, 1, "line 1"},
		{"import truncated", []string{"dataset", "import", "--db", db, truncated}, 1, "line 2"},
		{"import without files", []string{"dataset", "import", "--db", db}, 2, "at least one"},
		{"export missing store", []string{"dataset", "export", "--db", filepath.Join(dir, "nope.db"), "--out", filepath.Join(dir, "x.jsonl")}, 1, "no such file"},
		{"export bad time", []string{"dataset", "export", "--db", db, "--out", "x", "--from", "yesterday"}, 2, "RFC 3339"},
		{"prune without age", []string{"dataset", "prune", "--db", db}, 2, "older-than"},
		{"bad flag", []string{"dataset", "info", "--bogus", garbage}, 2, "bogus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := datasetRunCmd(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, errs)
			}
			last := strings.TrimSpace(errs)
			if i := strings.LastIndex(last, "\n"); i >= 0 {
				last = last[i+1:]
			}
			if !strings.HasPrefix(last, "lbtune dataset: ") || !strings.Contains(last, tc.msg) {
				t.Fatalf("last stderr line %q: want one 'lbtune dataset: ...' line containing %q", last, tc.msg)
			}
		})
	}
}

// datasetDamagedStore writes a store of 3000 snapshots at path and
// truncates it to half its used length, the damage of issue 15, or (values)
// overwrites 64 bytes in the values of page 10 (a snapshots leaf page,
// written first and half full).
func datasetDamagedStore(t *testing.T, path string, values bool) {
	t.Helper()
	s, err := datasets.OpenWith(path, datasets.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	var batch []collector.Snapshot
	for i := 0; i < 3000; i++ {
		sn := collector.Snapshot{Time: base.Add(time.Duration(i) * time.Second), Source: "haproxy+unix:///run/haproxy.sock"}
		sn.Pools = []collector.Pool{{Name: "web", Servers: []collector.Server{
			{Name: "s1", Address: "10.0.0.1:80", Weight: 10, State: collector.StateUp, Counters: collector.Counters{Requests: uint64(i) * 10}},
			{Name: "s2", Address: "10.0.0.2:80", Weight: 10, State: collector.StateUp, Counters: collector.Counters{Requests: uint64(i) * 12}},
		}}}
		batch = append(batch, sn)
	}
	if err := s.Append(batch...); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRecord(datasets.BucketDecisions, base, []byte(`{"pool":"web"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := datasets.VerifyPath(path)
	if err != nil {
		t.Fatal(err)
	}
	if values {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, 64), int64(10*rep.PageSize+512)); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.Truncate(path, int64(rep.Pages*rep.PageSize/2)); err != nil {
		t.Fatal(err)
	}
}

// TestDatasetDamaged runs what an operator runs on a damaged store: info,
// info --check, check (exit 1, the problems, the recovery command), recover
// (exit 0, counts) and check on the new store; and `run` on the damaged
// store, which must exit 3 (exitNeedsOperator, so systemd stops restarting
// it) at once with the clear error, not panic.
func TestDatasetDamaged(t *testing.T) {
	dir := t.TempDir()
	runWriteConfig(t, dir, runFreeAddr(t), 10)
	db := filepath.Join(dir, "lbtune.db") // the config's store.path
	datasetDamagedStore(t, db, false)
	// A second store whose file opens but holds a damaged snapshot: the
	// check at start finds it.
	dir2 := t.TempDir()
	runWriteConfig(t, dir2, runFreeAddr(t), 10)
	db2 := filepath.Join(dir2, "lbtune.db")
	datasetDamagedStore(t, db2, true)
	recovered := filepath.Join(dir, "recovered.db")
	hint := "lbtune dataset recover " + db + " NEW.db"
	tests := []struct {
		name      string
		args      []string
		code      int
		out, errs []string // substrings of stdout and stderr
	}{
		{"info", []string{"dataset", "info", db}, 1, nil, []string{"store file is damaged", "truncated", hint}},
		{"info --check", []string{"dataset", "info", "--check", db}, 1, nil, []string{"store file is damaged", hint}},
		{"check", []string{"dataset", "check", db}, 1, []string{"DAMAGED", "truncated", "past the end of the file"}, []string{hint}},
		{"check --json", []string{"dataset", "check", "--json", db}, 1, []string{`"ProblemCount"`}, []string{hint}},
		{"run", []string{"run", "--config", filepath.Join(dir, "lbtune.yaml")}, exitNeedsOperator, nil, []string{"lbtune run: open store:", "store file is damaged", hint}},
		{"run, damaged snapshot", []string{"run", "--config", filepath.Join(dir2, "lbtune.yaml")}, exitNeedsOperator, nil,
			[]string{"lbtune run: check store:", "store file is damaged", "corrupt snapshot value", "lbtune dataset recover " + db2 + " NEW.db"}},
		{"recover", []string{"dataset", "recover", db, recovered}, 0, []string{"snapshots", "pages could not be read"}, nil},
		{"recover again", []string{"dataset", "recover", db, recovered}, 1, nil, []string{"the file exists"}},
		{"recover usage", []string{"dataset", "recover", db}, 2, nil, []string{"OLD.db NEW.db"}},
		{"check recovered", []string{"dataset", "check", recovered}, 0, []string{"consistent"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out, errs := datasetRunCmd(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, out, errs)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.errs {
				if !strings.Contains(errs, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errs)
				}
			}
			if strings.Contains(errs, "panic") || strings.Contains(out, "panic") {
				t.Errorf("output mentions a panic:\n%s%s", out, errs)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	// The recovered store holds some of the 3000 snapshots, and reads.
	s, err := datasets.OpenReadOnly(recovered)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.Count()
	if err != nil {
		t.Fatal(err)
	}
	if got := n["haproxy+unix:///run/haproxy.sock"]; got == 0 || got >= 3000 {
		t.Errorf("recovered %d snapshots of 3000 from a store cut in half: want some, not all", got)
	}
}
