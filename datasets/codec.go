package datasets

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lbtune/lbtune/collector"
)

// Stored snapshot values start with a codec tag. JSON values start with '{'
// and are still read, so a store written with JSON values stays readable.
// codecBinary1 (no pool percentiles) is still read; codecBinary2 is written.
const (
	codecBinary1 byte = 0x01
	codecBinary2 byte = 0x02
)

// errCorrupt is wrapped by decodeSnapshot for a value it cannot decode.
var errCorrupt = errors.New("corrupt snapshot value")

// Server flag bits in the binary encoding.
const (
	flagBackup = 1 << iota
	flagP50
	flagP95
	flagP99
)

// stateCodes maps the known states to one byte; 0 means "a string follows".
var stateCodes = map[collector.State]byte{
	collector.StateUp: 1, collector.StateDown: 2, collector.StateDrain: 3,
	collector.StateMaint: 4, collector.StateBackup: 5,
}

var codeStates = [...]collector.State{"", collector.StateUp, collector.StateDown, collector.StateDrain, collector.StateMaint, collector.StateBackup}

// encodeSnapshot appends the compact binary form of sn to dst.
//
// Layout (varint = binary.AppendVarint, uvarint = AppendUvarint, f64 =
// 8 bytes little-endian IEEE 754, str = uvarint length + bytes, list = uvarint
// n+1, 0 for a nil slice):
//
//	0x02 | time: varint Unix ns | source: str | pools: list of
//	  name str | queue f64 | flags byte | p50, p95, p99: f64 each if its
//	  flag is set (0x01 values lack the flags and percentiles) | servers: list of
//	    name str | address str | weight varint | state byte (0: str follows)
//	    | flags byte | requests, bytes_in, bytes_out, responses[5], errors,
//	    latency_sum_ms: uvarint each | active, queue, avg_response_ms: f64
//	    | p50, p95, p99: f64 each if its flag is set
//
// Times are stored in UTC: a snapshot comes back with Time in UTC.
// TestCodecCoversSnapshot fails when collector.Snapshot gains a field this
// layout does not carry.
func encodeSnapshot(dst []byte, sn *collector.Snapshot) []byte {
	dst = append(dst, codecBinary2)
	dst = binary.AppendVarint(dst, sn.Time.UnixNano())
	dst = appendString(dst, sn.Source)
	dst = appendLen(dst, len(sn.Pools), sn.Pools == nil)
	for i := range sn.Pools {
		p := &sn.Pools[i]
		dst = appendString(dst, p.Name)
		dst = appendFloat(dst, p.Queue)
		dst = appendPercentiles(dst, 0, p.P50Ms, p.P95Ms, p.P99Ms)
		dst = appendLen(dst, len(p.Servers), p.Servers == nil)
		for j := range p.Servers {
			dst = appendServer(dst, &p.Servers[j])
		}
	}
	return dst
}

// encodedSizeHint estimates the encoded size of sn, so encodeSnapshot
// writes into one allocation instead of growing (and copying) its buffer.
func encodedSizeHint(sn *collector.Snapshot) int {
	n := 16 + len(sn.Source)
	for i := range sn.Pools {
		n += 48 + len(sn.Pools[i].Name)
		for j := range sn.Pools[i].Servers {
			sv := &sn.Pools[i].Servers[j]
			n += 96 + len(sv.Name) + len(sv.Address)
		}
	}
	return n
}

func appendServer(dst []byte, s *collector.Server) []byte {
	dst = appendString(dst, s.Name)
	dst = appendString(dst, s.Address)
	dst = binary.AppendVarint(dst, int64(s.Weight))
	if code, ok := stateCodes[s.State]; ok {
		dst = append(dst, code)
	} else {
		dst = append(dst, 0)
		dst = appendString(dst, string(s.State))
	}
	g := &s.Gauges
	var flags byte
	if s.Backup {
		flags |= flagBackup
	}
	dst = appendPercentileFlags(dst, flags, g.P50Ms, g.P95Ms, g.P99Ms)
	c := &s.Counters
	dst = binary.AppendUvarint(dst, c.Requests)
	dst = binary.AppendUvarint(dst, c.BytesIn)
	dst = binary.AppendUvarint(dst, c.BytesOut)
	for _, r := range c.Responses {
		dst = binary.AppendUvarint(dst, r)
	}
	dst = binary.AppendUvarint(dst, c.Errors)
	dst = binary.AppendUvarint(dst, c.LatencySumMs)
	dst = appendFloat(dst, g.Active)
	dst = appendFloat(dst, g.Queue)
	dst = appendFloat(dst, g.AvgResponseMs)
	return appendPercentileValues(dst, g.P50Ms, g.P95Ms, g.P99Ms)
}

// appendPercentiles appends a flags byte (flags plus the presence bits of
// p50, p95, p99) followed by the present values.
func appendPercentiles(dst []byte, flags byte, p50, p95, p99 *float64) []byte {
	dst = appendPercentileFlags(dst, flags, p50, p95, p99)
	return appendPercentileValues(dst, p50, p95, p99)
}

func appendPercentileFlags(dst []byte, flags byte, p50, p95, p99 *float64) []byte {
	if p50 != nil {
		flags |= flagP50
	}
	if p95 != nil {
		flags |= flagP95
	}
	if p99 != nil {
		flags |= flagP99
	}
	return append(dst, flags)
}

func appendPercentileValues(dst []byte, ps ...*float64) []byte {
	for _, p := range ps {
		if p != nil {
			dst = appendFloat(dst, *p)
		}
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendLen(dst []byte, n int, isNil bool) []byte {
	if isNil {
		return append(dst, 0)
	}
	return binary.AppendUvarint(dst, uint64(n)+1)
}

func appendFloat(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// decodeSnapshot decodes a stored value: the binary layout or JSON.
func decodeSnapshot(v []byte) (collector.Snapshot, error) {
	return decodeSnapshotInterned(v, nil)
}

// maxInterned bounds the string table a Range keeps across snapshots.
const maxInterned = 1 << 16

// decodeSnapshotInterned is decodeSnapshot sharing pool, server, address
// and source strings through intern (nil: no sharing). Consecutive
// snapshots repeat the same names, so a Range allocates them once.
func decodeSnapshotInterned(v []byte, intern map[string]string) (collector.Snapshot, error) {
	var sn collector.Snapshot
	if len(v) == 0 {
		return sn, fmt.Errorf("empty value: %w", errCorrupt)
	}
	if v[0] == '{' {
		err := json.Unmarshal(v, &sn)
		return sn, err
	}
	if v[0] != codecBinary1 && v[0] != codecBinary2 {
		return sn, fmt.Errorf("codec tag %#x: %w", v[0], errCorrupt)
	}
	d := decoder{b: v[1:], intern: intern}
	sn.Time = time.Unix(0, d.varint()).UTC()
	sn.Source = d.string()
	if n, isNil := d.len(); !isNil {
		sn.Pools = make([]collector.Pool, n)
	}
	for i := range sn.Pools {
		p := &sn.Pools[i]
		p.Name = d.string()
		p.Queue = d.float()
		if v[0] >= codecBinary2 {
			flags := d.byte()
			if flags&^(flagP50|flagP95|flagP99) != 0 {
				d.fail("pool flags %#x", flags)
			}
			p.P50Ms, p.P95Ms, p.P99Ms = d.percentiles(flags)
		}
		if n, isNil := d.len(); !isNil {
			p.Servers = make([]collector.Server, n)
		}
		for j := range p.Servers {
			d.server(&p.Servers[j])
		}
		if d.err != nil {
			break
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return collector.Snapshot{}, d.err
	}
	return sn, nil
}

// decoder reads the binary layout; the first failure sticks in err and
// every later read returns zero.
type decoder struct {
	b      []byte
	err    error
	intern map[string]string
}

func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(a, errCorrupt)...)
	}
	d.b = nil
}

func (d *decoder) server(s *collector.Server) {
	s.Name = d.string()
	s.Address = d.string()
	s.Weight = int(d.varint())
	code := d.byte()
	if code == 0 {
		s.State = collector.State(d.string())
	} else if int(code) < len(codeStates) {
		s.State = codeStates[code]
	} else {
		d.fail("state code %d", code)
	}
	flags := d.byte()
	if flags&^(flagBackup|flagP50|flagP95|flagP99) != 0 {
		d.fail("server flags %#x", flags)
	}
	s.Backup = flags&flagBackup != 0
	c := &s.Counters
	c.Requests = d.uvarint()
	c.BytesIn = d.uvarint()
	c.BytesOut = d.uvarint()
	for k := range c.Responses {
		c.Responses[k] = d.uvarint()
	}
	c.Errors = d.uvarint()
	c.LatencySumMs = d.uvarint()
	g := &s.Gauges
	g.Active = d.float()
	g.Queue = d.float()
	g.AvgResponseMs = d.float()
	g.P50Ms, g.P95Ms, g.P99Ms = d.percentiles(flags)
}

// percentiles reads the percentile values whose presence bits are set.
func (d *decoder) percentiles(flags byte) (p50, p95, p99 *float64) {
	if flags&flagP50 != 0 {
		p50 = d.floatPtr()
	}
	if flags&flagP95 != 0 {
		p95 = d.floatPtr()
	}
	if flags&flagP99 != 0 {
		p99 = d.floatPtr()
	}
	return p50, p95, p99
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// len reads a list length; a nil slice was written as 0. The length is
// bounded by the bytes left (every element takes at least one byte), so a
// corrupt value cannot make decode allocate without limit.
func (d *decoder) len() (int, bool) {
	v := d.uvarint()
	if v == 0 {
		return 0, true
	}
	if v-1 > uint64(len(d.b)) {
		d.fail("list of %d elements in %d bytes", v-1, len(d.b))
		return 0, true
	}
	return int(v - 1), false
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string of %d bytes in %d", n, len(d.b))
		return ""
	}
	b := d.b[:n]
	d.b = d.b[n:]
	if d.intern == nil {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(d.intern) < maxInterned {
		d.intern[s] = s
	}
	return s
}

func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.fail("truncated float")
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return f
}

func (d *decoder) floatPtr() *float64 {
	f := d.float()
	return &f
}
