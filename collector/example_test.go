package collector_test

import (
	"context"
	"fmt"

	"github.com/lbtune/lbtune/collector"
)

// Replaying two recorded vts captures and deriving the rates between them.
// The same code scrapes a live NGINX with "vts+http://HOST/status/format/json".
func ExampleOpen() {
	// 0039 and 0040 are one second apart while backend 18083 is dead.
	var snaps []collector.Snapshot
	for _, f := range []string{"0039.json", "0040.json"} {
		src, err := collector.Open("vts+file:../../shared/captures/vts/" + f)
		if err != nil {
			fmt.Println(err)
			return
		}
		s, err := src.Scrape(context.Background())
		if err != nil {
			fmt.Println(err)
			return
		}
		snaps = append(snaps, s)
	}
	r, err := collector.Rate(&snaps[0], &snaps[1])
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range r.Pool("app").Servers {
		fmt.Printf("%s weight=%d %-6s %4.0f req/s\n", s.Name, s.Weight, s.State, s.Requests)
	}
	// Output:
	// 127.0.0.1:18081 weight=1 up       88 req/s
	// 127.0.0.1:18082 weight=3 up      262 req/s
	// 127.0.0.1:18083 weight=5 down      0 req/s
	// 127.0.0.1:18084 weight=1 backup    0 req/s
}
