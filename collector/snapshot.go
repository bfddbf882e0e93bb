package collector

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// State is the serving state of one server as its balancer reports it.
type State string

// Server states. Backup servers also carry Server.Backup; a backup server
// that is usable reports StateBackup, one that has failed reports StateDown.
const (
	StateUp     State = "up"     // receiving new requests
	StateDown   State = "down"   // failed health checks or marked down
	StateDrain  State = "drain"  // finishing in-flight requests, no new ones
	StateMaint  State = "maint"  // administratively disabled
	StateBackup State = "backup" // usable only when every primary is down
)

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	switch s {
	case StateUp, StateDown, StateDrain, StateMaint, StateBackup:
		return true
	}
	return false
}

// Snapshot is what one balancer reported at one instant: every pool it
// balances and every server in those pools, with cumulative counters and
// instantaneous gauges. Snapshots are values: a Snapshot handed to a caller is
// never modified by the collector afterwards.
type Snapshot struct {
	// Time is when the balancer produced the numbers (the document's own
	// clock where it has one, otherwise the scrape time), in UTC.
	Time time.Time `json:"time"`
	// Source is the URI the snapshot was scraped from (e.g.
	// "vts+http://127.0.0.1/status/format/json").
	Source string `json:"source"`
	// Pools are the upstream groups (NGINX) or backends (HAProxy), sorted by name.
	Pools []Pool `json:"pools"`
	// Host holds the resource signals of the machine lbtune ran on when
	// the snapshot was taken (the balancer host's signals when lbtune runs
	// on it); nil when not collected (see HostReader, WithHost).
	Host *Host `json:"host,omitempty"`
}

// Pool is one group of interchangeable servers behind a balancer: an NGINX
// upstream block or an HAProxy backend.
type Pool struct {
	// Name is the upstream or backend name.
	Name string `json:"name"`
	// Queue is the number of requests queued at the pool level (HAProxy
	// backend qcur), waiting for any server. Zero where the source has none.
	Queue float64 `json:"queue,omitempty"`
	// P50Ms, P95Ms, P99Ms are latency percentiles over the last interval of
	// all the pool's requests, where the source gives them (access logs,
	// simulator); nil otherwise. Per-server percentiles cannot be combined
	// into these.
	P50Ms *float64 `json:"p50_ms,omitempty"`
	P95Ms *float64 `json:"p95_ms,omitempty"`
	P99Ms *float64 `json:"p99_ms,omitempty"`
	// Servers are the pool's members, sorted by Name.
	Servers []Server `json:"servers"`
}

// Server is one member of a pool.
type Server struct {
	// Name identifies the server within its pool: the HAProxy server name,
	// or the address for NGINX peers.
	Name string `json:"name"`
	// Address is host:port.
	Address string `json:"address"`
	// Weight is the configured balancing weight (NGINX 1..1000, HAProxy
	// 0..256); Validate refuses one outside 0..MaxWeight.
	Weight int `json:"weight"`
	// State is the serving state.
	State State `json:"state"`
	// Backup marks a backup server.
	Backup bool `json:"backup,omitempty"`
	// CheckStatus is the result of the server's last health check as the
	// balancer names it (HAProxy check_status: "L7OK", "L4CON", "L4TOUT",
	// "INI", ...); "" when the server has no check or the source has none.
	CheckStatus string `json:"check_status,omitempty"`
	// Counters are cumulative since the balancer (re)started.
	Counters Counters `json:"counters"`
	// Gauges are instantaneous values.
	Gauges Gauges `json:"gauges"`
}

// MaxWeight is the largest server weight a Snapshot may hold. Balancers
// use far less (HAProxy 256, NGINX a few thousand at most): anything above
// is a corrupt document.
const MaxWeight = 1 << 20

// Counters are cumulative, monotonically increasing between balancer
// restarts. A restart (not a reload) of NGINX or HAProxy sets them back to 0.
// Validate refuses a counter above MaxCounter; Rate keeps an increase that
// implies an implausible rate out of the rates (see MaxRequestRate).
type Counters struct {
	// Requests is the number of requests sent to the server.
	Requests uint64 `json:"requests"`
	// BytesIn and BytesOut are bytes received from / sent to clients for
	// requests this server handled.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Responses counts responses by status class: index 0 is 1xx, 4 is 5xx.
	Responses [5]uint64 `json:"responses"`
	// Errors counts failures that produced no HTTP response from the server
	// (connection errors, response errors, aborted transfers).
	Errors uint64 `json:"errors"`
	// LatencySumMs is the cumulative sum of response times in ms, where the
	// source keeps one (vts requestMsecCounter); 0 otherwise. With Requests
	// it gives the exact mean response time of an interval.
	LatencySumMs uint64 `json:"latency_sum_ms,omitempty"`
}

// Gauges are instantaneous values of one server.
type Gauges struct {
	// Active is the number of requests/connections currently in progress.
	// Sources without the gauge (request logs, vts) give its mean over the
	// interval since their previous snapshot instead (InFlight).
	Active float64 `json:"active"`
	// Queue is the number of requests waiting for this server (HAProxy's
	// request log: the mean over the interval, as Active).
	Queue float64 `json:"queue,omitempty"`
	// AvgResponseMs is the balancer's own moving average of response time in
	// ms (vts requestMsec; HAProxy qtime+ctime+rtime; the log sources' mean
	// over the interval); 0 when unknown.
	AvgResponseMs float64 `json:"avg_response_ms,omitempty"`
	// QueueTimeMs, ConnectTimeMs, ResponseTimeMs and TotalTimeMs are the
	// balancer's moving averages (HAProxy qtime, ctime, rtime, ttime: over
	// the last 1024 requests) of the time a request waited in a queue, took
	// to connect to the server, waited for the response headers, and spent
	// in total, in ms; 0 when unknown.
	QueueTimeMs    float64 `json:"queue_time_ms,omitempty"`
	ConnectTimeMs  float64 `json:"connect_time_ms,omitempty"`
	ResponseTimeMs float64 `json:"response_time_ms,omitempty"`
	TotalTimeMs    float64 `json:"total_time_ms,omitempty"`
	// P50Ms, P95Ms, P99Ms are latency percentiles over the last interval
	// where the source gives them (access logs, simulator); nil otherwise.
	P50Ms *float64 `json:"p50_ms,omitempty"`
	P95Ms *float64 `json:"p95_ms,omitempty"`
	P99Ms *float64 `json:"p99_ms,omitempty"`
}

// SetServing sets the pool's server states from serving, the balancer's
// own account of which servers it sends new requests to, keyed by the
// names the source gives the servers, naming every server the balancer has
// in the pool: a serving server is up, one not serving or not named (no
// longer the balancer's) that the source had as up is in maintenance.
// States the source reported otherwise (down, drain, backup) stay. It
// changes nothing and fails when serving names none of the pool's servers
// (names that never meet, e.g. a hostname in the balancer's config and the
// address in its log, would make every server look removed).
func (p *Pool) SetServing(serving map[string]bool) error {
	known := 0
	for i := range p.Servers {
		if _, ok := serving[p.Servers[i].Name]; ok {
			known++
		}
	}
	if known == 0 && len(p.Servers) > 0 {
		names := make([]string, 0, len(serving))
		for n := range serving {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("pool %s: the balancer names none of the source's %d servers (source %q, balancer %q)", p.Name, len(p.Servers), p.Servers[0].Name, names)
	}
	for i := range p.Servers {
		s := &p.Servers[i]
		switch up := serving[s.Name]; {
		case up:
			s.State = StateUp
		case s.State == StateUp:
			s.State = StateMaint
		}
	}
	return nil
}

// Pool returns the pool with the given name, or nil.
func (s *Snapshot) Pool(name string) *Pool {
	for i := range s.Pools {
		if s.Pools[i].Name == name {
			return &s.Pools[i]
		}
	}
	return nil
}

// Server returns the server with the given name, or nil.
func (p *Pool) Server(name string) *Server {
	for i := range p.Servers {
		if p.Servers[i].Name == name {
			return &p.Servers[i]
		}
	}
	return nil
}

// Validate reports the first structural problem in s: a zero time, an empty
// pool or server name, an unknown state, a weight outside 0..MaxWeight, a
// counter above MaxCounter, a negative or non-finite gauge, or a Host that
// fails Host.Validate.
func (s *Snapshot) Validate() error {
	if s.Time.IsZero() {
		return fmt.Errorf("snapshot from %q has no time", s.Source)
	}
	if s.Host != nil {
		if err := s.Host.Validate(); err != nil {
			return fmt.Errorf("snapshot from %q: %w", s.Source, err)
		}
	}
	for _, p := range s.Pools {
		if p.Name == "" {
			return fmt.Errorf("snapshot from %q: pool with empty name", s.Source)
		}
		if bad(p.Queue) {
			return fmt.Errorf("snapshot from %q: pool %s: bad queue %v", s.Source, p.Name, p.Queue)
		}
		for _, v := range []*float64{p.P50Ms, p.P95Ms, p.P99Ms} {
			if v != nil && bad(*v) {
				return fmt.Errorf("snapshot from %q: pool %s: bad percentile %v", s.Source, p.Name, *v)
			}
		}
		for _, sv := range p.Servers {
			if sv.Name == "" {
				return fmt.Errorf("snapshot from %q: pool %s: server with empty name", s.Source, p.Name)
			}
			if !sv.State.Valid() {
				return fmt.Errorf("snapshot from %q: pool %s server %s: unknown state %q", s.Source, p.Name, sv.Name, sv.State)
			}
			if sv.Weight < 0 || sv.Weight > MaxWeight {
				return fmt.Errorf("snapshot from %q: pool %s server %s: weight %d out of range 0..%d", s.Source, p.Name, sv.Name, sv.Weight, MaxWeight)
			}
			if name, v := sv.Counters.largest(); v > MaxCounter {
				return fmt.Errorf("snapshot from %q: pool %s server %s: counter %s %d above %d", s.Source, p.Name, sv.Name, name, v, uint64(MaxCounter))
			}
			g := sv.Gauges
			for _, v := range [...]float64{g.Active, g.Queue, g.AvgResponseMs, g.QueueTimeMs, g.ConnectTimeMs, g.ResponseTimeMs, g.TotalTimeMs} {
				if bad(v) {
					return fmt.Errorf("snapshot from %q: pool %s server %s: bad gauge %v", s.Source, p.Name, sv.Name, v)
				}
			}
			for _, v := range []*float64{g.P50Ms, g.P95Ms, g.P99Ms} {
				if v != nil && bad(*v) {
					return fmt.Errorf("snapshot from %q: pool %s server %s: bad percentile %v", s.Source, p.Name, sv.Name, *v)
				}
			}
		}
	}
	return nil
}

// largest returns the name and value of the largest counter.
func (c *Counters) largest() (string, uint64) {
	name, v := "requests", c.Requests
	for _, f := range [...]struct {
		name string
		v    uint64
	}{
		{"bytes_in", c.BytesIn}, {"bytes_out", c.BytesOut}, {"errors", c.Errors}, {"latency_sum_ms", c.LatencySumMs},
		{"responses 1xx", c.Responses[0]}, {"responses 2xx", c.Responses[1]}, {"responses 3xx", c.Responses[2]},
		{"responses 4xx", c.Responses[3]}, {"responses 5xx", c.Responses[4]},
	} {
		if f.v > v {
			name, v = f.name, f.v
		}
	}
	return name, v
}

func bad(v float64) bool { return v < 0 || math.IsNaN(v) || math.IsInf(v, 0) }
