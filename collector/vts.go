package collector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

func init() {
	openers["vts+http"] = openVTSHTTP
	openers["vts+https"] = openVTSHTTP
	openers["vts+file"] = openVTSFile
}

// ErrMalformed is wrapped by every parser error caused by the content of a
// document (truncated JSON, garbage CSV, a log line that does not match its
// format), as opposed to I/O errors.
var ErrMalformed = errors.New("malformed statistics")

// vtsDoc is the part of an nginx-module-vts JSON document lbtune reads
// (see vtsScanner; the json tags document the field names and let tests
// decode the same struct with encoding/json for comparison). Counters are
// uint64: vts reports unsigned 64-bit values (overCounts.maxIntegerSize is
// 2^64-1), which fit no int64.
type vtsDoc struct {
	NowMsec       *uint64              `json:"nowMsec"`
	UpstreamZones map[string][]vtsPeer `json:"upstreamZones"`
}

type vtsPeer struct {
	Server             string       `json:"server"`
	RequestCounter     uint64       `json:"requestCounter"`
	InBytes            uint64       `json:"inBytes"`
	OutBytes           uint64       `json:"outBytes"`
	Responses          vtsResponses `json:"responses"`
	RequestMsecCounter uint64       `json:"requestMsecCounter"`
	RequestMsec        float64      `json:"requestMsec"`
	Weight             int          `json:"weight"`
	Backup             bool         `json:"backup"`
	Down               bool         `json:"down"`
}

type vtsResponses struct {
	R1xx uint64 `json:"1xx"`
	R2xx uint64 `json:"2xx"`
	R3xx uint64 `json:"3xx"`
	R4xx uint64 `json:"4xx"`
	R5xx uint64 `json:"5xx"`
}

// ParseVTS parses an nginx-module-vts JSON document (GET
// /status/format/json) into a Snapshot labelled with source.
//
// Each upstreamZones group becomes a Pool (including "::nogroups", the
// peers of bare proxy_pass addresses) and each peer a Server whose Name and
// Address are the peer's "server". A peer with "down":true is StateDown (vts
// reports nginx's failure state there, not only the config flag); a usable
// backup peer is StateBackup. requestMsecCounter becomes
// Counters.LatencySumMs and requestMsec Gauges.AvgResponseMs. The time is
// the document's nowMsec; a document without it is rejected. vts has no
// per-peer "active" or queue figure, so those gauges are 0 here; the vts
// sources estimate Active from two documents (InFlight).
//
// Refused as ErrMalformed, besides malformed JSON: null where a value is
// read, a weight outside 0..MaxWeight, a counter above MaxCounter (see
// Snapshot.Validate), and nesting deeper than MaxVTSDepth. The parse is
// linear in the document's size; sources read at most 64 MiB of it.
func ParseVTS(data []byte, source string) (Snapshot, error) {
	return parseVTS(context.Background(), data, source)
}

// parseVTS is ParseVTS under ctx: a document still being scanned when ctx
// is done is abandoned with an error wrapping ctx.Err().
func parseVTS(ctx context.Context, data []byte, source string) (Snapshot, error) {
	var doc vtsDoc
	sc := vtsScanner{data: data, ctx: ctx}
	if err := sc.document(&doc); err != nil {
		return Snapshot{}, fmt.Errorf("parse vts from %s: %w", source, err)
	}
	if doc.NowMsec == nil || *doc.NowMsec == 0 {
		return Snapshot{}, fmt.Errorf("parse vts from %s: %w: no nowMsec", source, ErrMalformed)
	}
	if *doc.NowMsec > 1<<53 {
		return Snapshot{}, fmt.Errorf("parse vts from %s: %w: nowMsec %d out of range", source, ErrMalformed, *doc.NowMsec)
	}
	snap := Snapshot{
		Time:   time.UnixMilli(int64(*doc.NowMsec)).UTC(),
		Source: source,
		Pools:  make([]Pool, 0, len(doc.UpstreamZones)),
	}
	for name, peers := range doc.UpstreamZones {
		if name == "" {
			return Snapshot{}, fmt.Errorf("parse vts from %s: %w: upstream group with empty name", source, ErrMalformed)
		}
		p := Pool{Name: name, Servers: make([]Server, 0, len(peers))}
		for i, peer := range peers {
			sv, err := vtsServer(peer)
			if err != nil {
				return Snapshot{}, fmt.Errorf("parse vts from %s: upstream %s peer %d: %w", source, name, i, err)
			}
			p.Servers = append(p.Servers, sv)
		}
		sortServers(p.Servers)
		snap.Pools = append(snap.Pools, p)
	}
	sortPools(snap.Pools)
	if err := snap.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("parse vts from %s: %w: %v", source, ErrMalformed, err)
	}
	return snap, nil
}

func vtsServer(peer vtsPeer) (Server, error) {
	if strings.TrimSpace(peer.Server) == "" {
		return Server{}, fmt.Errorf("%w: peer without server address", ErrMalformed)
	}
	sv := Server{
		Name:    peer.Server,
		Address: peer.Server,
		Weight:  peer.Weight,
		State:   StateUp,
		Backup:  peer.Backup,
		Counters: Counters{
			Requests: peer.RequestCounter,
			BytesIn:  peer.InBytes,
			BytesOut: peer.OutBytes,
			Responses: [5]uint64{
				peer.Responses.R1xx, peer.Responses.R2xx, peer.Responses.R3xx,
				peer.Responses.R4xx, peer.Responses.R5xx,
			},
			LatencySumMs: peer.RequestMsecCounter,
		},
		Gauges: Gauges{AvgResponseMs: peer.RequestMsec},
	}
	switch {
	case peer.Down:
		sv.State = StateDown
	case peer.Backup:
		sv.State = StateBackup
	}
	if bad(peer.RequestMsec) {
		return Server{}, fmt.Errorf("%w: server %s: bad requestMsec %v", ErrMalformed, peer.Server, peer.RequestMsec)
	}
	if peer.Weight < 0 || peer.Weight > MaxWeight {
		return Server{}, fmt.Errorf("%w: server %s: weight %d out of range 0..%d", ErrMalformed, peer.Server, peer.Weight, MaxWeight)
	}
	return sv, nil
}

// sortPools orders pools by name, as Snapshot documents.
func sortPools(ps []Pool) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
}

// sortServers orders servers by name and renames duplicates (the same
// address listed twice in one upstream) to "NAME#2", "NAME#3"... so every
// server is addressable by name.
func sortServers(ss []Server) {
	sortServersByName(ss)
	// Sorted, so duplicates are adjacent: number each run of one name.
	for i := 0; i < len(ss); {
		j := i + 1
		for j < len(ss) && ss[j].Name == ss[i].Name {
			ss[j].Name = fmt.Sprintf("%s#%d", ss[j].Name, j-i+1)
			j++
		}
		i = j
	}
}

// sortServersByName orders servers by name, keeping the order of equal names.
func sortServersByName(ss []Server) {
	slices.SortStableFunc(ss, func(a, b Server) int { return strings.Compare(a.Name, b.Name) })
}

// vtsHTTP scrapes a live vts status page.
type vtsHTTP struct {
	uri string
	web webGetter

	mu   sync.Mutex
	sums latencySums // Active gauges from requestMsecCounter's growth
}

func openVTSHTTP(uri string) (Source, error) {
	target := strings.TrimPrefix(uri, "vts+")
	w, err := newWebGetter(target)
	if err != nil {
		return nil, err
	}
	return &vtsHTTP{uri: uri, web: w}, nil
}

func (s *vtsHTTP) String() string { return s.uri }

// Scrape fetches and parses the vts JSON document once.
func (s *vtsHTTP) Scrape(ctx context.Context) (Snapshot, error) {
	body, err := s.web.get(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", s.uri, err)
	}
	snap, err := parseVTS(ctx, body, s.uri)
	if err != nil {
		return Snapshot{}, err
	}
	s.mu.Lock()
	s.sums.fill(&snap)
	s.mu.Unlock()
	return snap, nil
}

// openVTSFile replays vts JSON captures: one file, or the *.json files of
// a directory in name order.
func openVTSFile(uri string) (Source, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(uri, "vts+file:"), "//")
	files, err := replayFiles(path, func(name string, dir bool) string {
		if !dir && strings.HasSuffix(name, ".json") {
			return name
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var sums latencySums // Active gauges from requestMsecCounter's growth
	return &replay{uri: uri, files: files, parse: func(ctx context.Context, data []byte, _ string) (Snapshot, error) {
		snap, err := parseVTS(ctx, data, uri)
		if err != nil {
			return Snapshot{}, err
		}
		mu.Lock()
		sums.fill(&snap)
		mu.Unlock()
		return snap, nil
	}}, nil
}
