package datasets

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
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
				Gauges: collector.Gauges{Active: 1.5, Queue: 0.25, AvgResponseMs: 17, P50Ms: f(0), P95Ms: f(95.5), P99Ms: f(math.MaxFloat64)},
			}, {Name: "s2", State: collector.StateMaint, Gauges: collector.Gauges{P99Ms: f(1)}}}}},
		}},
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
	v1 = appendServer(v1, &old)
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

// TestCodecCoversSnapshot fails when a field is added to the snapshot types
// without teaching encodeSnapshot about it: the binary layout would drop it.
func TestCodecCoversSnapshot(t *testing.T) {
	want := map[reflect.Type]string{
		reflect.TypeFor[collector.Snapshot](): "Pools Source Time",
		reflect.TypeFor[collector.Pool]():     "Name P50Ms P95Ms P99Ms Queue Servers",
		reflect.TypeFor[collector.Server]():   "Address Backup Counters Gauges Name State Weight",
		reflect.TypeFor[collector.Counters](): "BytesIn BytesOut Errors LatencySumMs Requests Responses",
		reflect.TypeFor[collector.Gauges]():   "Active AvgResponseMs P50Ms P95Ms P99Ms Queue",
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
