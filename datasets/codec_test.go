package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

func TestCodecRoundTrip(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		sn   collector.Snapshot
	}{
		{"nil pools", collector.Snapshot{Time: t0, Source: "s"}},
		{"empty pools", collector.Snapshot{Time: t0, Source: "s", Pools: []collector.Pool{}}},
		{"nil and empty servers", collector.Snapshot{Time: t0, Pools: []collector.Pool{{Name: "a"}, {Name: "b", Servers: []collector.Server{}}}}},
		{"synthetic", synth("vts+http://127.0.0.1/status", t0.Add(123456789), 3, 7, 42)},
		{"every field", collector.Snapshot{
			Time: time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC), Source: "haproxy+unix:///run/h.sock",
			Pools: []collector.Pool{{Name: "be_app", Queue: 2.5, P50Ms: f(3), P99Ms: f(120), Servers: []collector.Server{{
				Name: "s1", Address: "[::1]:80", Weight: -3, State: "custom", Backup: true,
				Counters: collector.Counters{Requests: math.MaxUint64, BytesIn: 1, BytesOut: 2,
					Responses: [5]uint64{3, 4, 5, 6, 7}, Errors: 8, LatencySumMs: 9},
				Gauges: collector.Gauges{Active: 1.5, Queue: 0.25, AvgResponseMs: 17, P50Ms: f(0), P95Ms: f(95.5), P99Ms: f(math.MaxFloat64),
					QueueTimeMs: 1, ConnectTimeMs: 2.5, ResponseTimeMs: 1 << 53, TotalTimeMs: math.MaxFloat64},
				CheckStatus: "L7OK",
			}, {Name: "s2", State: collector.StateMaint, CheckStatus: "custom check", Gauges: collector.Gauges{P99Ms: f(1)}},
				{Name: "s3", State: collector.StateDown, CheckStatus: "L4CON", Gauges: collector.Gauges{Active: 1<<53 - 1, Queue: 3, TotalTimeMs: 52}}}}},
			Host: &collector.Host{CPUBusySeconds: 135327.63, CPUTotalSeconds: 603779.29, MemTotalBytes: 25154039808, MemAvailableBytes: 18785464320,
				NetRxBytes: math.MaxUint64, NetTxBytes: 0, TCPEstablished: 37, Load1: 1.52, Load5: 0.87, Load15: 0.59},
		}},
		{"zero host", collector.Snapshot{Time: t0, Source: "s", Host: &collector.Host{}}},
		// Gauges go bit for bit: -0 is not +0 (and so is stored).
		{"odd gauges", collector.Snapshot{Time: t0, Pools: []collector.Pool{{Name: "p", Servers: []collector.Server{{Name: "s",
			Gauges: collector.Gauges{Active: math.Copysign(0, -1), Queue: -3, AvgResponseMs: 1e300, QueueTimeMs: math.SmallestNonzeroFloat64, ConnectTimeMs: 0.5}}}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := encodeSnapshot(nil, &tc.sn)
			got, err := decodeSnapshot(v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.sn) {
				t.Fatalf("round trip changed the snapshot:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, tc.sn))
			}
			if g, w := mustJSON(t, got), mustJSON(t, tc.sn); g != w {
				t.Fatalf("JSON differs:\n got %s\nwant %s", g, w)
			}
			// Every strict prefix is an error, never a panic or a snapshot.
			for n := 0; n < len(v); n++ {
				if _, err := decodeSnapshot(v[:n]); err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded without error", n, len(v))
				}
			}
			if _, err := decodeSnapshot(append(v, 0)); !errors.Is(err, errCorrupt) {
				t.Fatalf("trailing byte: %v, want errCorrupt", err)
			}
		})
	}
	// A value of the first binary layout (no pool percentiles) still decodes.
	v1 := []byte{codecBinary1}
	v1 = binary.AppendVarint(v1, t0.UnixNano())
	v1 = appendString(v1, "old")
	v1 = appendLen(v1, 1, false)
	v1 = appendString(v1, "app")
	v1 = appendFloat(v1, 1)
	v1 = appendLen(v1, 1, false)
	old := collector.Server{Name: "s1", Address: "a:1", Weight: 2, State: collector.StateUp, Gauges: collector.Gauges{P95Ms: f(9)}}
	v1 = appendServerLayout2(v1, &old)
	got1, err := decodeSnapshot(v1)
	want1 := collector.Snapshot{Time: t0, Source: "old", Pools: []collector.Pool{{Name: "app", Queue: 1, Servers: []collector.Server{old}}}}
	if err != nil || !reflect.DeepEqual(got1, want1) {
		t.Fatalf("layout 1 value: %v\n got %s\nwant %s", err, mustJSON(t, got1), mustJSON(t, want1))
	}
	// Values written as JSON (an older or hand-made store) still decode.
	sn := synth("s", t0, 1, 2, 3)
	got, err := decodeSnapshot([]byte(mustJSON(t, sn)))
	if err != nil || mustJSON(t, got) != mustJSON(t, sn) {
		t.Fatalf("JSON value: %v", err)
	}
}

// appendServerLayout2 writes a server as layouts 0x01 and 0x02 did (no
// check status, three f64 gauges), for tests of reading old values.
func appendServerLayout2(dst []byte, s *collector.Server) []byte {
	dst = appendString(dst, s.Name)
	dst = appendString(dst, s.Address)
	dst = binary.AppendVarint(dst, int64(s.Weight))
	dst = append(dst, stateCode(s.State))
	var flags byte
	if s.Backup {
		flags |= flagBackup
	}
	g := &s.Gauges
	dst = appendPercentileFlags(dst, flags, g.P50Ms, g.P95Ms, g.P99Ms)
	c := &s.Counters
	for _, v := range []uint64{c.Requests, c.BytesIn, c.BytesOut, c.Responses[0], c.Responses[1], c.Responses[2], c.Responses[3], c.Responses[4], c.Errors, c.LatencySumMs} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = appendFloat(dst, g.Active)
	dst = appendFloat(dst, g.Queue)
	dst = appendFloat(dst, g.AvgResponseMs)
	for _, p := range []*float64{g.P50Ms, g.P95Ms, g.P99Ms} {
		if p != nil {
			dst = appendFloat(dst, *p)
		}
	}
	return dst
}

// appendFloat writes a float as layouts 1 to 3 did: 8 bytes.
func appendFloat(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// codecLayout2Snapshot is the snapshot whose layout-2 encoding, written
// by the layout-2 encoder before layout 3 existed, is
// testdata/snapshot-layout2.hex.
func codecLayout2Snapshot() collector.Snapshot {
	f := func(v float64) *float64 { return &v }
	return collector.Snapshot{
		Time: time.Date(2026, 11, 28, 9, 0, 0, 123456789, time.UTC), Source: "haproxy+unix:///run/h.sock",
		Pools: []collector.Pool{
			{Name: "be_app", Queue: 2.5, P50Ms: f(3), P99Ms: f(120), Servers: []collector.Server{{
				Name: "s1", Address: "[::1]:80", Weight: 3, State: collector.StateBackup, Backup: true,
				Counters: collector.Counters{Requests: math.MaxUint64, BytesIn: 1, BytesOut: 2,
					Responses: [5]uint64{3, 4, 5, 6, 7}, Errors: 8, LatencySumMs: 9},
				Gauges: collector.Gauges{Active: 1.5, Queue: 0.25, AvgResponseMs: 17, P50Ms: f(0), P95Ms: f(95.5), P99Ms: f(200)},
			}, {Name: "s2", Address: "10.0.0.2:8080", Weight: 1, State: "custom", Gauges: collector.Gauges{P99Ms: f(1)}}}},
			{Name: "empty"},
		},
	}
}

// TestCodecReadsLayout2 decodes a 0x02 value captured from the encoder of
// that layout: stores written before layout 3 read back identically.
func TestCodecReadsLayout2(t *testing.T) {
	text, err := os.ReadFile("testdata/snapshot-layout2.hex")
	if err != nil {
		t.Fatal(err)
	}
	v, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	if v[0] != codecBinary2 {
		t.Fatalf("golden tag %#x, want 0x02", v[0])
	}
	want := codecLayout2Snapshot()
	got, err := decodeSnapshot(v)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("layout 2 value:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
	// Re-encoded, it is a layout 4 value of the same snapshot.
	v4 := encodeSnapshot(nil, &got)
	if v4[0] != codecBinary4 {
		t.Fatalf("encoder writes tag %#x, want 0x04", v4[0])
	}
	if again, err := decodeSnapshot(v4); err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("layout 4 re-encoding: %v\n got %s", err, mustJSON(t, again))
	}
	for n := 0; n < len(v); n++ {
		if _, err := decodeSnapshot(v[:n]); err == nil {
			t.Fatalf("prefix of %d/%d bytes of the layout 2 value decoded without error", n, len(v))
		}
	}
}

// TestCodecCoversSnapshot fails when a field is added to the snapshot types
// without teaching encodeSnapshot about it: the binary layout would drop it.
func TestCodecCoversSnapshot(t *testing.T) {
	want := map[reflect.Type]string{
		reflect.TypeFor[collector.Snapshot](): "Host Pools Source Time",
		reflect.TypeFor[collector.Pool]():     "Name P50Ms P95Ms P99Ms Queue Servers",
		reflect.TypeFor[collector.Server]():   "Address Backup CheckStatus Counters Gauges Name State Weight",
		reflect.TypeFor[collector.Counters](): "BytesIn BytesOut Errors LatencySumMs Requests Responses",
		reflect.TypeFor[collector.Gauges]():   "Active AvgResponseMs ConnectTimeMs P50Ms P95Ms P99Ms Queue QueueTimeMs ResponseTimeMs TotalTimeMs",
		reflect.TypeFor[collector.Host]():     "CPUBusySeconds CPUTotalSeconds Load1 Load15 Load5 MemAvailableBytes MemTotalBytes NetRxBytes NetTxBytes TCPEstablished",
	}
	for typ, fields := range want {
		var got []string
		for i := 0; i < typ.NumField(); i++ {
			got = append(got, typ.Field(i).Name)
		}
		sort.Strings(got)
		if strings.Join(got, " ") != fields {
			t.Errorf("%s has fields %v; the store codec knows %q: update encodeSnapshot/decodeSnapshot and this list", typ, got, fields)
		}
	}
}

// TestShippedDatasetsUnchanged reads the shipped datasets/*.jsonl.gz
// (recorded before the check status, time averages and host signals
// existed): every snapshot line re-marshals to the same bytes, has none of
// the new fields, and goes through the store codec unchanged.
func TestShippedDatasetsUnchanged(t *testing.T) {
	files, err := filepath.Glob("*.jsonl.gz")
	if err != nil || len(files) < 3 {
		t.Fatalf("shipped datasets: %v %v", files, err)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(zr)
			sc.Buffer(nil, 64<<20)
			n := 0
			for line := 0; sc.Scan(); line++ {
				if line == 0 || !bytes.HasPrefix(sc.Bytes(), []byte(`{"time"`)) {
					continue // header, events
				}
				var sn collector.Snapshot
				if err := json.Unmarshal(sc.Bytes(), &sn); err != nil {
					t.Fatalf("line %d: %v", line+1, err)
				}
				if again, err := json.Marshal(sn); err != nil || !bytes.Equal(again, sc.Bytes()) {
					t.Fatalf("line %d re-marshals differently (%v):\n got %s\nwant %s", line+1, err, again, sc.Bytes())
				}
				if sn.Host != nil {
					t.Fatalf("line %d: host signals in an old dataset", line+1)
				}
				got, err := decodeSnapshot(encodeSnapshot(nil, &sn))
				if err != nil || !reflect.DeepEqual(got, sn) {
					t.Fatalf("line %d: store codec round trip: %v", line+1, err)
				}
				n++
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if n < 100 {
				t.Fatalf("only %d snapshots", n)
			}
		})
	}
}

// codecLayout3Snapshot is the snapshot whose layout-3 encoding, written by
// the layout-3 encoder before layout 4 existed, is
// testdata/snapshot-layout3.hex: every field layout 3 carries, floats of
// every kind layout 4 tells apart (integral, float32, float64, repeated,
// -0, NaN, Inf).
func codecLayout3Snapshot() collector.Snapshot {
	f := func(v float64) *float64 { return &v }
	sn := codecLayout2Snapshot()
	sn.Host = &collector.Host{CPUBusySeconds: 12.5, CPUTotalSeconds: 100.125, MemTotalBytes: 1 << 33, MemAvailableBytes: 12345,
		NetRxBytes: 7, NetTxBytes: 0, TCPEstablished: 42, Load1: 0.1, Load5: math.Inf(1), Load15: math.Copysign(0, -1)}
	s := &sn.Pools[0].Servers[0]
	s.CheckStatus = "L7OK"
	s.Gauges.QueueTimeMs, s.Gauges.ConnectTimeMs, s.Gauges.ResponseTimeMs, s.Gauges.TotalTimeMs = 1966.992919921875, 1966.992919921875, -3, math.NaN()
	sn.Pools[0].Servers = append(sn.Pools[0].Servers, collector.Server{Name: "s3", Address: "10.0.0.3:80", Weight: 100, State: collector.StateUp, CheckStatus: "custom check",
		Counters: collector.Counters{Requests: 77, Responses: [5]uint64{0, 76}, LatencySumMs: 96190},
		Gauges:   collector.Gauges{Active: 1, AvgResponseMs: 1e300, P50Ms: f(2600.62255859375), P95Ms: f(2600.62255859375), P99Ms: f(1.0 / 3)}})
	return sn
}

// TestCodecReadsLayout3 decodes a 0x03 value captured from the encoder of
// that layout: stores written before layout 4 read back identically, and
// re-encoded in layout 4 the snapshot is the same and smaller.
func TestCodecReadsLayout3(t *testing.T) {
	text, err := os.ReadFile("testdata/snapshot-layout3.hex")
	if err != nil {
		t.Fatal(err)
	}
	v, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	if v[0] != codecBinary3 {
		t.Fatalf("golden tag %#x, want 0x03", v[0])
	}
	want := codecLayout3Snapshot()
	check := func(what string, got collector.Snapshot) {
		t.Helper()
		// NaN is not DeepEqual to itself: check it, then compare the rest.
		g := &got.Pools[0].Servers[0].Gauges
		if !math.IsNaN(g.TotalTimeMs) {
			t.Fatalf("%s: total_time_ms %v, want NaN", what, g.TotalTimeMs)
		}
		if l := got.Host.Load15; l != 0 || !math.Signbit(l) {
			t.Fatalf("%s: load15 %v, want -0", what, l)
		}
		g.TotalTimeMs = 0
		w := want
		w.Pools = slices.Clone(want.Pools)
		w.Pools[0].Servers = slices.Clone(want.Pools[0].Servers)
		w.Pools[0].Servers[0].Gauges.TotalTimeMs = 0
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("%s:\n got %+v\nwant %+v", what, got, w)
		}
	}
	got, err := decodeSnapshot(v)
	if err != nil {
		t.Fatal(err)
	}
	v4 := encodeSnapshot(nil, &got) // before check, which clears the NaN
	check("layout 3 value", got)
	if v4[0] != codecBinary4 {
		t.Fatalf("encoder writes tag %#x, want 0x04", v4[0])
	}
	again, err := decodeSnapshot(v4)
	if err != nil {
		t.Fatal(err)
	}
	check("layout 4 re-encoding", again)
	if len(v4) >= len(v) {
		t.Errorf("layout 4 takes %d bytes, layout 3 %d: want fewer", len(v4), len(v))
	}
	for n := 0; n < len(v); n++ {
		if _, err := decodeSnapshot(v[:n]); err == nil {
			t.Fatalf("prefix of %d/%d bytes of the layout 3 value decoded without error", n, len(v))
		}
	}
}
