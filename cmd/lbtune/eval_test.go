package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// evalTestTrace writes a 40-minute trace with a ramp and returns its path.
func evalTestTrace(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("t,rps\n")
	for m := range 40 {
		rate := 10.0
		if m >= 15 && m < 25 {
			rate = 30
		}
		fmt.Fprintf(&b, "%d,%.4f\n", m*60, rate)
	}
	return evalTestFile(t, "trace.csv", b.String())
}

func evalTestFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEvalBadInput(t *testing.T) {
	good := evalTestTrace(t)
	tests := []struct {
		name      string
		args      []string
		wantUsage bool
		want      string
	}{
		{"unknown policy", []string{"--trace", good, "--policies", "static,magic"}, true, `unknown policy "magic"`},
		{"hpa target out of range", []string{"--trace", good, "--policies", "hpa@1.5"}, true, "target utilisation"},
		{"parameter on static", []string{"--trace", good, "--policies", "static@3"}, true, "takes no parameter"},
		{"oracle headroom out of range", []string{"--trace", good, "--policies", "oracle@1.2"}, true, "headroom must be in (0, 1]"},
		{"decisions dir is a file", []string{"--trace", good, "--policies", "static", "--decisions", good}, false, "--decisions"},
		{"no trace", []string{"--policies", "static"}, true, "--trace is required"},
		{"bad scale", []string{"--trace", good, "--scale", "-1"}, true, "--scale"},
		{"bad offset", []string{"--trace", good, "--to", "soon"}, true, "--to"},
		{"missing file", []string{"--trace", "/nonexistent/x.csv"}, false, "/nonexistent/x.csv"},
		{"empty trace", []string{"--trace", evalTestFile(t, "empty.csv", "")}, false, "empty.csv:1: trace has no data rows"},
		{"malformed row", []string{"--trace", evalTestFile(t, "bad.csv", "t,rps\n0,1\n60;2\n")}, false, "bad.csv:3: want 2 fields"},
		{"negative rate", []string{"--trace", evalTestFile(t, "neg.csv", "t,rps\n0,1\n60,-5\n")}, false, "neg.csv:3: negative rate -5"},
		{"all zero", []string{"--trace", evalTestFile(t, "zero.csv", "t,rps\n0,0\n60,0\n")}, false, "no positive rate"},
		{"slice past the end", []string{"--trace", good, "--from", "2d"}, false, "no data rows"},
		{"bad config key", []string{"--trace", good, "--config", evalTestFile(t, "bad.yaml", "pools:\n  - name: web\n    colour: red\n")}, false, "colour"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := evalRun(context.Background(), tc.args, &out, &errb)
			if err == nil {
				t.Fatalf("no error; stdout %q", out.String())
			}
			if errors.Is(err, errUsage) != tc.wantUsage {
				t.Errorf("usage error %v, want %v: %v", errors.Is(err, errUsage), tc.wantUsage, err)
			}
			if msg := oneLine(err); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
		})
	}
}

// TestEvalTableMatchesJSON runs the same evaluation twice, as a table and
// as JSON, and checks the keys and that both show the same numbers.
func TestEvalTableMatchesJSON(t *testing.T) {
	trace := evalTestTrace(t)
	args := []string{"--trace", trace, "--policies", "static,threshold,hpa@0.5,oracle", "--peak-servers", "8", "--seed", "3"}
	var table, js, errb bytes.Buffer
	if err := evalRun(context.Background(), args, &table, &errb); err != nil {
		t.Fatal(err)
	}
	if err := evalRun(context.Background(), append(args, "--json"), &js, &errb); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(js.Bytes(), &rows); err != nil {
		t.Fatalf("--json output is not a JSON array: %v\n%s", err, js.String())
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	for i, want := range []string{"static", "threshold", "hpa@0.5", "oracle"} {
		r := rows[i]
		if r["policy"] != want {
			t.Errorf("row %d policy %v, want %s", i, r["policy"], want)
		}
		for _, k := range []string{"slo_violation_pct", "p95_ms", "failed", "server_hours", "actions", "reversals", "cost"} {
			if _, ok := r[k]; !ok {
				t.Errorf("row %s lacks key %q", want, k)
			}
		}
		// The table row carries the same numbers, formatted.
		line := evalTableLine(t, table.String(), want)
		for _, k := range []string{"failed", "actions", "reversals"} {
			if v := fmt.Sprintf(" %d ", int(r[k].(float64))); !strings.Contains(line+" ", v) {
				t.Errorf("table row %q lacks %s = %v", line, k, r[k])
			}
		}
		for k, f := range map[string]string{"slo_violation_pct": "%.2f", "server_hours": "%.1f", "cost": "%.2f"} {
			if v := fmt.Sprintf(f, r[k].(float64)); !strings.Contains(line, v) {
				t.Errorf("table row %q lacks %s = %s", line, k, v)
			}
		}
	}
	if rows[0]["actions"].(float64) != 0 {
		t.Errorf("static made %v actions", rows[0]["actions"])
	}
}

func evalTableLine(t *testing.T, table, policy string) string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == policy {
			return l
		}
	}
	t.Fatalf("no table row for %s in\n%s", policy, table)
	return ""
}

// TestEvalOracleHeadroomAndDecisions checks that oracle@H sizes with less
// headroom as H grows (fewer or equal server-hours) and that --decisions
// writes every interval's decision of every policy as a JSON line.
func TestEvalOracleHeadroomAndDecisions(t *testing.T) {
	trace := evalTestTrace(t)
	dir := filepath.Join(t.TempDir(), "dec")
	args := []string{"--trace", trace, "--policies", "oracle@0.7,oracle,oracle@1,hpa@0.5", "--peak-servers", "8", "--json", "--decisions", dir}
	var out, errb bytes.Buffer
	if err := evalRun(context.Background(), args, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Policy      string         `json:"policy"`
		ServerHours float64        `json:"server_hours"`
		Decisions   map[string]int `json:"decisions"`
	}
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	if !(rows[0].ServerHours >= rows[1].ServerHours && rows[1].ServerHours >= rows[2].ServerHours) || rows[0].ServerHours == rows[2].ServerHours {
		t.Errorf("server-hours at headroom 0.7, 0.8, 1: %.2f %.2f %.2f, want falling", rows[0].ServerHours, rows[1].ServerHours, rows[2].ServerHours)
	}
	for _, r := range rows {
		b, err := os.ReadFile(filepath.Join(dir, r.Policy+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		total := 0
		for _, n := range r.Decisions {
			total += n
		}
		if len(lines) != total || total == 0 {
			t.Errorf("%s: %d decision lines, result counts %d", r.Policy, len(lines), total)
		}
		var d struct {
			Policy string             `json:"policy"`
			Reason string             `json:"reason"`
			Metric map[string]float64 `json:"metrics"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &d); err != nil || d.Reason == "" {
			t.Errorf("%s: last line %q: %v", r.Policy, lines[len(lines)-1], err)
		}
	}
}
