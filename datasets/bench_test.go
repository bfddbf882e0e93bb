package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// benchCPU reports the process CPU time (user + system, all threads, GC
// included) per operation from now on: on a machine shared with other
// work, CPU time is steadier than wall time.
func benchCPU(b *testing.B) {
	cpu := func() int64 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	start := cpu()
	b.Cleanup(func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
		}
	})
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
					n := 0
					benchCPU(b)
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
			n := 0
			benchCPU(b)
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

// benchHAProxyCSV builds a "show stat" CSV of pools x servers from the real
// capture's app/s1 row (and the app BACKEND row), renaming each copy.
func benchHAProxyCSV(b *testing.B, pools, servers int) []byte {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(captures, "haproxy/captures/02-load-baseline/show_stat.csv"))
	if err != nil {
		b.Fatalf("real captures missing: %v", err)
	}
	var header, server, backend string
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "# "):
			header = line
		case strings.HasPrefix(line, "app,s1,"):
			server = strings.TrimPrefix(line, "app,s1,")
		case strings.HasPrefix(line, "app,BACKEND,"):
			backend = strings.TrimPrefix(line, "app,BACKEND,")
		}
	}
	if header == "" || server == "" || backend == "" {
		b.Fatal("capture lacks the app/s1 and app/BACKEND rows")
	}
	var doc strings.Builder
	doc.WriteString(header + "\n")
	for p := 0; p < pools; p++ {
		for s := 0; s < servers; s++ {
			fmt.Fprintf(&doc, "pool%03d,srv%02d,%s\n", p, s, server)
		}
		fmt.Fprintf(&doc, "pool%03d,BACKEND,%s\n", p, backend)
	}
	return []byte(doc.String())
}

// BenchmarkParseAndStore is the issue's "parse + store of a 2000-server
// snapshot" end to end: collector.ParseHAProxyCSV of a 100 x 20 show stat
// document, then Append of the snapshot in its own transaction.
func BenchmarkParseAndStore(b *testing.B) {
	doc := benchHAProxyCSV(b, 100, 20)
	for _, noSync := range []bool{false, true} {
		name := map[bool]string{false: "2000srv/sync", true: "2000srv/nosync"}[noSync]
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, Options{NoSync: noSync})
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			n := 0
			benchCPU(b)
			for b.Loop() {
				sn, err := collector.ParseHAProxyCSV(doc, "haproxy+unix:///bench.sock", t0.Add(time.Duration(n)*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				if got := len(sn.Pools) * len(sn.Pools[0].Servers); got != 2000 {
					b.Fatalf("parsed %d servers, want 2000", got)
				}
				if err := s.Append(sn); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
	}
}
