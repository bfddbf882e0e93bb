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

// The cost of an interval of a real HAProxy capture: requests in the
// system (active + queued at the interval's end) and primary servers up.
// Captures 08 and 09 bracket the moment backend s2 went down.
func ExamplePoolRates_Cost() {
	var snaps []collector.Snapshot
	for _, d := range []string{"08-load-s2-backend-killed-going-down", "09-load-s2-down"} {
		src, err := collector.Open("haproxy+file:../../shared/captures/haproxy/captures/" + d + "/show_stat.csv")
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
	p := r.Pool("app")
	for _, s := range p.Servers {
		fmt.Printf("%s %-4s check=%-5s rtime=%2.0f ms active=%.0f\n", s.Name, s.State, s.CheckStatus, s.Gauges.ResponseTimeMs, s.Gauges.Active)
	}
	fmt.Printf("in system %.0f, servers up %d, cost(c1=1, c2=2) %.0f\n", p.InSystem(), p.ServersUp(), p.Cost(1, 2))
	// Output:
	// s1 up   check=L7OK  rtime= 6 ms active=1
	// s2 down check=L4CON rtime=21 ms active=0
	// s3 up   check=L7OK  rtime=52 ms active=0
	// in system 1, servers up 2, cost(c1=1, c2=2) 5
}
