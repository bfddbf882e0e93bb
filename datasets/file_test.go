package datasets

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// header1 is a valid header line.
const header1 = `{"format":"lbtune-dataset","version":1,"source":"vts+file:x","description":"d","created":"2026-11-28T09:00:00Z"}`

// snapLine is a valid snapshot line.
const snapLine = `{"time":"2026-11-28T09:00:01Z","source":"s","pools":[{"name":"p","servers":[{"name":"a","address":"127.0.0.1:1","weight":1,"state":"up","counters":{"requests":5,"bytes_in":0,"bytes_out":0,"responses":[0,5,0,0,0],"errors":0},"gauges":{"active":0}}]}]}`

func writeDataset(t *testing.T, path string, snaps []collector.Snapshot, events []Event) {
	t.Helper()
	w, err := CreateFile(path, Header{Source: "synth", Description: "test data", Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	for i, sn := range snaps {
		if i < len(events) {
			if err := w.WriteEvent(events[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteSnapshot(sn); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFileRoundTrip(t *testing.T) {
	var snaps []collector.Snapshot
	for i := 0; i < 40; i++ {
		snaps = append(snaps, synth("src", t0.Add(time.Duration(i)*time.Second), 3, 4, uint64(i)))
	}
	events := []Event{
		{Time: t0, Kind: "weight", Pool: "pool000", Server: "srv0001", Value: 0},
		{Time: t0.Add(time.Second), Kind: "load", Value: 250, Detail: "phase high"},
	}
	for _, name := range []string{"d.jsonl", "d.jsonl.gz"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			writeDataset(t, path, snaps, events)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if gz := bytes.HasPrefix(raw, []byte{0x1f, 0x8b}); gz != strings.HasSuffix(name, ".gz") {
				t.Fatalf("gzip = %v for %s", gz, name)
			}
			r, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if h := r.Header(); h.Format != Format || h.Version != 1 || h.Source != "synth" || !h.Created.Equal(t0) {
				t.Fatalf("header %+v", h)
			}
			var gotSnaps []collector.Snapshot
			var gotEvents []Event
			for {
				e, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case e.Snapshot != nil:
					gotSnaps = append(gotSnaps, *e.Snapshot)
				case e.Event != nil:
					gotEvents = append(gotEvents, *e.Event)
				}
			}
			if mustJSON(t, gotSnaps) != mustJSON(t, snaps) {
				t.Fatal("snapshots changed in the round trip")
			}
			if mustJSON(t, gotEvents) != mustJSON(t, events) {
				t.Fatalf("events: got %s want %s", mustJSON(t, gotEvents), mustJSON(t, events))
			}
			loaded, err := Load(path)
			if err != nil || mustJSON(t, loaded) != mustJSON(t, snaps) {
				t.Fatalf("Load: %d snapshots, %v", len(loaded), err)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return b.String()
	}
	tests := []struct {
		name    string
		content string
		want    error  // sentinel
		line    string // text the error must contain
	}{
		{"empty", "", ErrFormat, "empty file"},
		{"not json header", "hello\n", ErrFormat, "line 1"},
		{"other format", `{"format":"csv","version":1}` + "\n", ErrFormat, `format "csv"`},
		{"future version", `{"format":"lbtune-dataset","version":2}` + "\n", ErrVersion, "version 2"},
		{"no version", `{"format":"lbtune-dataset"}` + "\n", ErrVersion, "version 0"},
		{"truncated snapshot", header1 + "\n" + snapLine + "\n" + snapLine[:60] + "\n", ErrFormat, "line 3"},
		{"invalid snapshot", header1 + "\n" + strings.Replace(snapLine, `"up"`, `"sleepy"`, 1) + "\n", ErrFormat, "line 2"},
		{"snapshot without time", header1 + "\n\n" + `{"source":"s","pools":[]}` + "\n", ErrFormat, "line 3"},
		{"array line", header1 + "\n[1,2]\n", ErrFormat, "line 2"},
		{"event without kind", header1 + "\n" + `{"event":{"time":"2026-11-28T09:00:00Z"}}` + "\n", ErrFormat, "line 2"},
		{"negative counter", header1 + "\n" + strings.Replace(snapLine, `"requests":5`, `"requests":-5`, 1) + "\n", ErrFormat, "line 2"},
		{"truncated gzip", gz(header1 + "\n" + snapLine + "\n")[:40], nil, "line"},
		{"gzip of a bad header", gz("nope\n"), ErrFormat, "line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.jsonl")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load accepted bad input")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.line) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %q and the file", err, tc.line)
			}
		})
	}
}

func TestLoadStore(t *testing.T) {
	s, path := openTemp(t)
	// Appended in reverse order, loaded in time order.
	for i := 9; i >= 0; i-- {
		if err := s.Append(synth("a", t0.Add(time.Duration(i)*time.Second), 1, 2, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !IsStore(path) {
		t.Fatal("IsStore = false for a store")
	}
	got, err := Load(path)
	if err != nil || len(got) != 10 {
		t.Fatalf("Load = %d, %v; want 10", len(got), err)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].Time.After(got[i-1].Time) {
			t.Fatalf("not in time order at %d", i)
		}
	}
}
