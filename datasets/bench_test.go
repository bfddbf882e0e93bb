package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// benchShapes are the snapshot sizes benchmarked: a small testbed (1 pool x
// 20 servers) and a large balancer (100 pools x 20 servers = 2000 servers).
var benchShapes = []struct {
	name           string
	pools, servers int
}{
	{"20srv", 1, 20},
	{"2000srv", 100, 20},
}

func benchStore(b *testing.B, o Options) *Store {
	b.Helper()
	s, err := OpenWith(filepath.Join(b.TempDir(), "bench.db"), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkAppend measures snapshots stored per second, one snapshot per
// transaction (one fsync each) against batches of 100 per transaction, with
// and without fsync.
func BenchmarkAppend(b *testing.B) {
	for _, sh := range benchShapes {
		for _, batch := range []int{1, 100} {
			for _, noSync := range []bool{false, true} {
				if sh.servers*sh.pools > 20 && batch == 100 && noSync {
					continue
				}
				name := fmt.Sprintf("%s/batch%d/sync", sh.name, batch)
				if noSync {
					name = fmt.Sprintf("%s/batch%d/nosync", sh.name, batch)
				}
				b.Run(name, func(b *testing.B) {
					s := benchStore(b, Options{NoSync: noSync})
					proto := synth("bench", t0, sh.pools, sh.servers, 1)
					buf := make([]collector.Snapshot, batch)
					b.ReportAllocs()
					b.ResetTimer()
					n := 0
					for b.Loop() {
						for j := range buf {
							buf[j] = proto
							buf[j].Time = t0.Add(time.Duration(n) * time.Second)
							n++
						}
						if err := s.Append(buf...); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "snapshots/s")
				})
			}
		}
	}
}

// BenchmarkRange measures reading snapshots back in time order.
func BenchmarkRange(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(sh.name, func(b *testing.B) {
			s := benchStore(b, Options{NoSync: true})
			const stored = 200
			proto := synth("bench", t0, sh.pools, sh.servers, 1)
			batch := make([]collector.Snapshot, stored)
			for i := range batch {
				batch[i] = proto
				batch[i].Time = t0.Add(time.Duration(i) * time.Second)
			}
			if err := s.Append(batch...); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				if err := s.Range("", time.Time{}, time.Time{}, func(collector.Snapshot) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "snapshots/s")
		})
	}
}

// BenchmarkCodec compares the store's binary value encoding with JSON,
// encoding and decoding one snapshot: the CPU part of Append and Range.
func BenchmarkCodec(b *testing.B) {
	for _, sh := range benchShapes {
		sn := synth("bench", t0, sh.pools, sh.servers, 1)
		bin := encodeSnapshot(nil, &sn)
		js, err := json.Marshal(&sn)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(sh.name+"/encode/binary", func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf = encodeSnapshot(buf[:0], &sn)
			}
			b.ReportMetric(float64(len(bin)), "bytes/snapshot")
		})
		b.Run(sh.name+"/encode/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(&sn); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(js)), "bytes/snapshot")
		})
		b.Run(sh.name+"/decode/binary", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeSnapshot(bin); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sh.name+"/decode/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var out collector.Snapshot
				if err := json.Unmarshal(js, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFile measures writing and reading dataset files (gzip JSON
// Lines), per snapshot.
func BenchmarkFile(b *testing.B) {
	for _, sh := range benchShapes {
		const n = 50
		sn := synth("bench", t0, sh.pools, sh.servers, 1)
		var gz bytes.Buffer
		w, err := NewWriter(&gz, Header{Source: "bench"}, true)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i++ {
			sn.Time = t0.Add(time.Duration(i) * time.Second)
			if err := w.WriteSnapshot(sn); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.Run(sh.name+"/write-gz", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w, err := NewWriter(io.Discard, Header{Source: "bench"}, true)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < n; i++ {
					if err := w.WriteSnapshot(sn); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "snapshots/s")
		})
		b.Run(sh.name+"/read-gz", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(gz.Bytes()), "bench")
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := r.Next(); err != nil {
						if !errors.Is(err, io.EOF) {
							b.Fatal(err)
						}
						break
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "snapshots/s")
			b.ReportMetric(float64(gz.Len())/n, "gz-bytes/snapshot")
		})
	}
}
