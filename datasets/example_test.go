package datasets_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/lbtune/lbtune/collector"
	"github.com/lbtune/lbtune/datasets"
)

// A recorder appends snapshots; a trainer later ranges over them in time
// order; retention prunes the old ones.
func ExampleStore() {
	dir, err := os.MkdirTemp("", "lbtune-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := datasets.Open(filepath.Join(dir, "lbtune.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		sn := collector.Snapshot{Time: t0.Add(time.Duration(i) * time.Second), Source: "haproxy+unix:///run/haproxy.sock",
			Pools: []collector.Pool{{Name: "app", Servers: []collector.Server{{
				Name: "s1", Address: "127.0.0.1:8081", Weight: 1, State: collector.StateUp,
				Counters: collector.Counters{Requests: uint64(100 * i)},
			}}}}}
		if err := s.Append(sn); err != nil {
			log.Fatal(err)
		}
	}
	_ = s.Range("", t0.Add(time.Second), time.Time{}, func(sn collector.Snapshot) error {
		fmt.Println(sn.Time.Format(time.TimeOnly), sn.Pools[0].Servers[0].Counters.Requests)
		return nil
	})
	n, _ := s.Prune(t0.Add(2 * time.Second))
	fmt.Println("pruned", n)
	// Output:
	// 09:00:01 100
	// 09:00:02 200
	// pruned 2
}
