package datasets

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// BenchmarkCheckWeek measures the consistency check `lbtune run` runs at
// start (Store.Verify) on a week of 1 s snapshots of one pool of 4 servers
// (604,800 snapshots), the store built once into a temporary file: "raw"
// is the page-by-page walk alone (structure and every snapshot decoded),
// "full" adds bbolt's Tx.Check, as Verify does.
func BenchmarkCheckWeek(b *testing.B) {
	const week = 7 * 24 * 3600
	path := filepath.Join(b.TempDir(), "week.db")
	built := time.Now()
	s, err := OpenWith(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]collector.Snapshot, 0, 3600)
	for i := 0; i < week; i++ {
		batch = append(batch, synth("haproxy+unix:///run/haproxy/admin.sock", t0.Add(time.Duration(i)*time.Second), 1, 4, uint64(i)))
		if len(batch) == cap(batch) {
			if err := s.Append(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d snapshots in %s", week, time.Since(built).Round(time.Second))
	for _, full := range []bool{false, true} {
		name := "raw"
		if full {
			name = "full"
		}
		b.Run(name, func(b *testing.B) {
			s, err := OpenReadOnly(path)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var rep CheckReport
			benchCPU(b)
			for b.Loop() {
				if full {
					rep, err = s.Verify()
				} else {
					rep, err = s.verifyRaw()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if rep.Snapshots != week {
				b.Fatalf("checked %d snapshots, want %d", rep.Snapshots, week)
			}
			b.ReportMetric(float64(rep.Pages*rep.PageSize)/1e6, "file-MB")
		})
	}
}
