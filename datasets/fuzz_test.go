package datasets

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbtune/lbtune/collector"
)

// fuzzCaptureSnapshots replays the real vts and HAProxy captures into
// snapshots, to seed the fuzz targets with realistic shapes.
func fuzzCaptureSnapshots(f *testing.F) []collector.Snapshot {
	f.Helper()
	if _, err := os.Stat(captures); err != nil {
		f.Fatalf("real captures missing: %v", err)
	}
	var out []collector.Snapshot
	for _, uri := range []string{"vts+file:" + captures + "/vts", "haproxy+file:" + captures + "/haproxy/captures"} {
		src, err := collector.Open(uri)
		if err != nil {
			f.Fatal(err)
		}
		// Two per source: large seeds make the fuzzer spend its time
		// minimizing (each step re-runs the whole input).
		for i := 0; i < 2; i++ {
			sn, err := src.Scrape(context.Background())
			if errors.Is(err, collector.ErrExhausted) {
				break
			}
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, sn)
		}
	}
	return out
}

// FuzzReader feeds arbitrary bytes to the dataset file reader. Property: no
// panic, and every entry it returns is a valid snapshot or a complete event.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Source: "fuzz", Created: t0}, false)
	if err != nil {
		f.Fatal(err)
	}
	_ = w.WriteEvent(Event{Time: t0, Kind: "weight", Pool: "app", Server: "s1", Value: 3})
	for _, sn := range fuzzCaptureSnapshots(f) {
		if err := w.WriteSnapshot(sn); err != nil {
			f.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write(buf.Bytes())
	_ = zw.Close()
	f.Add(zb.Bytes())
	f.Add([]byte(header1 + "\n" + snapLine + "\n"))
	f.Add([]byte(header1 + "\n" + snapLine[:90]))
	// A real capture that is not a dataset file at all.
	if b, err := os.ReadFile(filepath.Join(captures, "vts/0001.json")); err == nil {
		f.Add(append([]byte(header1+"\n"), b...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		defer r.Close()
		for i := 0; i < 1_000_000; i++ {
			e, err := r.Next()
			if errors.Is(err, io.EOF) || err != nil {
				return
			}
			switch {
			case e.Snapshot != nil && e.Event == nil:
				if err := e.Snapshot.Validate(); err != nil {
					t.Fatalf("line %d: reader returned an invalid snapshot: %v", e.Line, err)
				}
			case e.Event != nil && e.Snapshot == nil:
				if e.Event.Time.IsZero() || e.Event.Kind == "" {
					t.Fatalf("line %d: reader returned an incomplete event", e.Line)
				}
			default:
				t.Fatalf("line %d: entry with %v snapshot and %v event", e.Line, e.Snapshot != nil, e.Event != nil)
			}
		}
	})
}

// FuzzDecodeSnapshot feeds arbitrary bytes to the store's value decoder (a
// damaged store file is outside input too). Property: no panic, and a value
// that decodes re-encodes to a stable form.
func FuzzDecodeSnapshot(f *testing.F) {
	for _, sn := range fuzzCaptureSnapshots(f) {
		f.Add(encodeSnapshot(nil, &sn))
	}
	sn := synth("s", t0, 2, 2, 5)
	f.Add(encodeSnapshot(nil, &sn))
	f.Add([]byte(snapLine))
	// A layout 2 value written by that layout's encoder, and a layout 3
	// one with every new field: host signals, check statuses, times.
	if text, err := os.ReadFile("testdata/snapshot-layout2.hex"); err == nil {
		if v, err := hex.DecodeString(strings.TrimSpace(string(text))); err == nil {
			f.Add(v)
		}
	}
	sn.Host = &collector.Host{CPUBusySeconds: 1.5, CPUTotalSeconds: 4, MemTotalBytes: 1 << 30, NetRxBytes: 99, TCPEstablished: 3, Load1: 0.25}
	sn.Pools[0].Servers[0].CheckStatus = "L7OK"
	sn.Pools[0].Servers[1].CheckStatus = "weird"
	sn.Pools[0].Servers[1].Gauges.ResponseTimeMs = 2.5
	f.Add(encodeSnapshot(nil, &sn))
	f.Fuzz(func(t *testing.T, data []byte) {
		sn, err := decodeSnapshot(data)
		if err != nil {
			return
		}
		once := encodeSnapshot(nil, &sn)
		again, err := decodeSnapshot(once)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if twice := encodeSnapshot(nil, &again); !bytes.Equal(once, twice) {
			t.Fatalf("encoding not stable:\n%x\n%x", once, twice)
		}
	})
}
