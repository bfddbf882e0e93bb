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
// codecBinary1 (no pool percentiles), codecBinary2 (no host signals,
// check status or HAProxy time averages) and codecBinary3 (every float in
// 8 bytes) are still read; codecBinary4 is written.
const (
	codecBinary1 byte = 0x01
	codecBinary2 byte = 0x02
	codecBinary3 byte = 0x03
	codecBinary4 byte = 0x04
)

// Layout 4's float tags: each float is a tag byte and the fewest bytes
// that give back the same 64 bits.
const (
	floatSame byte = iota // the same bits as the previous float of the value (the first is compared with +0)
	floatInt              // an integer of at most 53 bits: varint
	floatF32              // exactly a float32: 4 bytes little-endian
	floatF64              // 8 bytes little-endian
)

// floatWriter writes layout 4's floats, remembering the previous one: a
// server's percentiles and moving averages often repeat (one request in
// the interval), and the simulator's latencies are float32 values.
type floatWriter struct{ last uint64 }

func (w *floatWriter) append(dst []byte, v float64) []byte {
	bits := math.Float64bits(v)
	if bits == w.last {
		return append(dst, floatSame)
	}
	w.last = bits
	if v >= -(1<<53) && v <= 1<<53 { // false for NaN
		if i := int64(v); math.Float64bits(float64(i)) == bits { // not -0
			return binary.AppendVarint(append(dst, floatInt), i)
		}
	}
	if f := float32(v); math.Float64bits(float64(f)) == bits {
		return binary.LittleEndian.AppendUint32(append(dst, floatF32), math.Float32bits(f))
	}
	return binary.LittleEndian.AppendUint64(append(dst, floatF64), bits)
}

// errCorrupt is wrapped by decodeSnapshot for a value it cannot decode.
var errCorrupt = errors.New("corrupt snapshot value")

// Server flag bits in the binary encoding.
const (
	flagBackup = 1 << iota
	flagP50
	flagP95
	flagP99
)

// stateCode maps the known states to one byte (their index in
// codeStates); 0 means "a string follows". A switch: a map lookup was the
// largest single cost of encoding a server.
func stateCode(s collector.State) byte {
	switch s {
	case collector.StateUp:
		return 1
	case collector.StateDown:
		return 2
	case collector.StateDrain:
		return 3
	case collector.StateMaint:
		return 4
	case collector.StateBackup:
		return 5
	}
	return 0
}

var codeStates = [...]collector.State{"", collector.StateUp, collector.StateDown, collector.StateDrain, collector.StateMaint, collector.StateBackup}

// codeChecks are the check statuses stored as one byte (layout 3): the
// index is the code; 0 means "a string follows". Codes are part of the
// stored format: append only.
var codeChecks = [...]string{"", "L7OK", "L4CON", "L4OK", "L4TOUT", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP", "L7OKC", "L7STS", "INI", "SOCKERR", "PROCERR", "PROCTOUT", "PROCOK", "UNK"}

// checkCode returns the byte a check status is stored as: checkNone for
// "", its index in codeChecks, or 0 (a string follows) for another status.
func checkCode(s string) byte {
	if s == "" {
		return checkNone
	}
	for i := 1; i < len(codeChecks); i++ {
		if codeChecks[i] == s {
			return byte(i)
		}
	}
	return 0
}

// checkNone is the code of an empty check status (no check).
const checkNone = 0xff

// encodeSnapshot appends the compact binary form of sn to dst.
//
// Layout (varint = binary.AppendVarint, uvarint = AppendUvarint, f64 =
// 8 bytes little-endian IEEE 754, str = uvarint length + bytes, list = uvarint
// n+1, 0 for a nil slice):
//
//	0x04 | time: varint Unix ns | source: str | host: byte 0 (nil) or 1
//	  followed by cpu_busy_seconds, cpu_total_seconds: f64 | mem_total,
//	  mem_available, net_rx, net_tx, tcp_established: uvarint | load1, load5,
//	  load15: f64 | pools: list of
//	  name str | queue f64 | flags byte | p50, p95, p99: f64 each if its
//	  flag is set | servers: list of
//	    name str | address str | weight varint | state byte (0: str follows)
//	    | flags byte | check status byte (0xff: none, 0: str follows, else
//	    codeChecks) | requests, bytes_in, bytes_out, responses[5], errors,
//	    latency_sum_ms: uvarint each | gauge bits byte | active, queue,
//	    avg_response_ms, queue_time_ms, connect_time_ms, response_time_ms,
//	    total_time_ms: f64 each if its gauge bit (1<<i, in this order) is set,
//	    i.e. if it is not +0 | p50, p95, p99: f64 each if its flag is set
//
// where every f64 is a tag byte (floatSame: the previous f64's bits again,
// starting from +0; floatInt: varint; floatF32: 4 bytes; floatF64: 8
// bytes, little-endian), so that decoding gives back the same 64 bits.
//
// Older layouts: 0x03 writes every f64 as 8 bytes; 0x02 has no host byte, no check status byte, and
// active, queue, avg_response_ms as f64 without the four time averages;
// 0x01 is 0x02 without the pool flags and percentiles.
//
// Times are stored in UTC: a snapshot comes back with Time in UTC.
// TestCodecCoversSnapshot fails when collector.Snapshot gains a field this
// layout does not carry.
func encodeSnapshot(dst []byte, sn *collector.Snapshot) []byte {
	var fw floatWriter
	dst = append(dst, codecBinary4)
	dst = binary.AppendVarint(dst, sn.Time.UnixNano())
	dst = appendString(dst, sn.Source)
	dst = appendHost(dst, &fw, sn.Host)
	dst = appendLen(dst, len(sn.Pools), sn.Pools == nil)
	for i := range sn.Pools {
		p := &sn.Pools[i]
		dst = appendString(dst, p.Name)
		dst = fw.append(dst, p.Queue)
		dst = appendPercentileFlags(dst, 0, p.P50Ms, p.P95Ms, p.P99Ms)
		dst = appendPercentileValues(dst, &fw, p.P50Ms, p.P95Ms, p.P99Ms)
		dst = appendLen(dst, len(p.Servers), p.Servers == nil)
		for j := range p.Servers {
			dst = appendServer(dst, &fw, &p.Servers[j])
		}
	}
	return dst
}

// encodedSizeHint estimates the encoded size of sn, so encodeSnapshot
// writes into one allocation instead of growing (and copying) its buffer.
func encodedSizeHint(sn *collector.Snapshot) int {
	n := 96 + len(sn.Source)
	for i := range sn.Pools {
		n += 48 + len(sn.Pools[i].Name)
		for j := range sn.Pools[i].Servers {
			sv := &sn.Pools[i].Servers[j]
			n += 96 + len(sv.Name) + len(sv.Address)
		}
	}
	return n
}

func appendServer(dst []byte, fw *floatWriter, s *collector.Server) []byte {
	dst = appendString(dst, s.Name)
	dst = appendString(dst, s.Address)
	dst = binary.AppendVarint(dst, int64(s.Weight))
	if code := stateCode(s.State); code != 0 {
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
	if code := checkCode(s.CheckStatus); code != 0 {
		dst = append(dst, code)
	} else {
		dst = append(dst, 0)
		dst = appendString(dst, s.CheckStatus)
	}
	c := &s.Counters
	dst = binary.AppendUvarint(dst, c.Requests)
	dst = binary.AppendUvarint(dst, c.BytesIn)
	dst = binary.AppendUvarint(dst, c.BytesOut)
	for _, r := range c.Responses {
		dst = binary.AppendUvarint(dst, r)
	}
	dst = binary.AppendUvarint(dst, c.Errors)
	dst = binary.AppendUvarint(dst, c.LatencySumMs)
	// Most gauges of most servers are 0 (no queue, no connect time, a
	// source without time averages): a bit per gauge, values only for the
	// others.
	// (Written out: a loop over an array of the seven was 2x slower.)
	bits := gaugeBit(g.Active, 1<<0) | gaugeBit(g.Queue, 1<<1) | gaugeBit(g.AvgResponseMs, 1<<2) |
		gaugeBit(g.QueueTimeMs, 1<<3) | gaugeBit(g.ConnectTimeMs, 1<<4) | gaugeBit(g.ResponseTimeMs, 1<<5) |
		gaugeBit(g.TotalTimeMs, 1<<6)
	dst = append(dst, bits)
	dst = appendGauge(dst, fw, bits, 1<<0, g.Active)
	dst = appendGauge(dst, fw, bits, 1<<1, g.Queue)
	dst = appendGauge(dst, fw, bits, 1<<2, g.AvgResponseMs)
	dst = appendGauge(dst, fw, bits, 1<<3, g.QueueTimeMs)
	dst = appendGauge(dst, fw, bits, 1<<4, g.ConnectTimeMs)
	dst = appendGauge(dst, fw, bits, 1<<5, g.ResponseTimeMs)
	dst = appendGauge(dst, fw, bits, 1<<6, g.TotalTimeMs)
	return appendPercentileValues(dst, fw, g.P50Ms, g.P95Ms, g.P99Ms)
}

// gaugeBit is bit when v is not +0 (bit for bit), else 0.
func gaugeBit(v float64, bit byte) byte {
	if math.Float64bits(v) != 0 {
		return bit
	}
	return 0
}

// appendGauge appends v when bit is set in bits.
func appendGauge(dst []byte, fw *floatWriter, bits, bit byte, v float64) []byte {
	if bits&bit != 0 {
		return fw.append(dst, v)
	}
	return dst
}

// appendHost appends the host byte and, for a non-nil h, its signals.
func appendHost(dst []byte, fw *floatWriter, h *collector.Host) []byte {
	if h == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = fw.append(dst, h.CPUBusySeconds)
	dst = fw.append(dst, h.CPUTotalSeconds)
	for _, v := range [...]uint64{h.MemTotalBytes, h.MemAvailableBytes, h.NetRxBytes, h.NetTxBytes, h.TCPEstablished} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = fw.append(dst, h.Load1)
	dst = fw.append(dst, h.Load5)
	return fw.append(dst, h.Load15)
}

// appendPercentileFlags appends a flags byte: flags plus the presence bits
// of p50, p95, p99 (appendPercentileValues writes the present values).
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

func appendPercentileValues(dst []byte, fw *floatWriter, ps ...*float64) []byte {
	for _, p := range ps {
		if p != nil {
			dst = fw.append(dst, *p)
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
	if v[0] < codecBinary1 || v[0] > codecBinary4 {
		return sn, fmt.Errorf("codec tag %#x: %w", v[0], errCorrupt)
	}
	d := decoder{b: v[1:], intern: intern, layout: v[0]}
	sn.Time = time.Unix(0, d.varint()).UTC()
	sn.Source = d.string()
	if d.layout >= codecBinary3 {
		sn.Host = d.host()
	}
	if n, isNil := d.len(); !isNil {
		sn.Pools = make([]collector.Pool, n)
	}
	for i := range sn.Pools {
		p := &sn.Pools[i]
		p.Name = d.string()
		p.Queue = d.float()
		if d.layout >= codecBinary2 {
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
	if d.err == nil && d.left() != 0 {
		d.fail("%d trailing bytes", d.left())
	}
	if d.err != nil {
		return collector.Snapshot{}, d.err
	}
	return sn, nil
}

// decoder reads the binary layout; the first failure sticks in err and
// every later read returns zero. It advances an offset rather than
// reslicing b: an int store needs no GC write barrier, a slice store does,
// and a decode does tens of reads per server.
type decoder struct {
	b      []byte
	off    int // next byte to read in b
	err    error
	intern map[string]string
	layout byte   // the value's codec tag
	last   uint64 // the previous float's bits (layout 4's floatSame)
}

func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(a, errCorrupt)...)
	}
	d.off = len(d.b)
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
	if d.layout >= codecBinary3 {
		switch code := d.byte(); {
		case code == checkNone:
		case code == 0:
			s.CheckStatus = d.string()
		case int(code) < len(codeChecks):
			s.CheckStatus = codeChecks[code]
		default:
			d.fail("check status code %d", code)
		}
	}
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
	if d.layout >= codecBinary3 {
		bits := d.byte()
		if bits&0x80 != 0 {
			d.fail("gauge bits %#x", bits)
		}
		for i, p := range [...]*float64{&g.Active, &g.Queue, &g.AvgResponseMs, &g.QueueTimeMs, &g.ConnectTimeMs, &g.ResponseTimeMs, &g.TotalTimeMs} {
			if bits&(1<<i) != 0 {
				*p = d.float()
			}
		}
	} else {
		g.Active = d.float()
		g.Queue = d.float()
		g.AvgResponseMs = d.float()
	}
	g.P50Ms, g.P95Ms, g.P99Ms = d.percentiles(flags)
}

// host reads the host byte and, when it is 1, the signals.
func (d *decoder) host() *collector.Host {
	switch b := d.byte(); b {
	case 0:
		return nil
	case 1:
	default:
		d.fail("host byte %d", b)
		return nil
	}
	h := &collector.Host{CPUBusySeconds: d.float(), CPUTotalSeconds: d.float()}
	for _, p := range [...]*uint64{&h.MemTotalBytes, &h.MemAvailableBytes, &h.NetRxBytes, &h.NetTxBytes, &h.TCPEstablished} {
		*p = d.uvarint()
	}
	h.Load1, h.Load5, h.Load15 = d.float(), d.float(), d.float()
	return h
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

// left is the number of bytes not read yet.
func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) byte() byte {
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
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
	if v-1 > uint64(d.left()) {
		d.fail("list of %d elements in %d bytes", v-1, d.left())
		return 0, true
	}
	return int(v - 1), false
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(d.left()) {
		d.fail("string of %d bytes in %d", n, d.left())
		return ""
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
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
	if d.layout >= codecBinary4 {
		return d.compactFloat()
	}
	if d.left() < 8 {
		d.fail("truncated float")
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
	d.off += 8
	return f
}

// compactFloat reads one of layout 4's tagged floats.
func (d *decoder) compactFloat() float64 {
	switch tag := d.byte(); tag {
	case floatSame:
	case floatInt:
		d.last = math.Float64bits(float64(d.varint()))
	case floatF32:
		if d.left() < 4 {
			d.fail("truncated float32")
			return 0
		}
		d.last = math.Float64bits(float64(math.Float32frombits(binary.LittleEndian.Uint32(d.b[d.off:]))))
		d.off += 4
	case floatF64:
		if d.left() < 8 {
			d.fail("truncated float")
			return 0
		}
		d.last = binary.LittleEndian.Uint64(d.b[d.off:])
		d.off += 8
	default:
		d.fail("float tag %d", tag)
		return 0
	}
	if d.err != nil {
		return 0
	}
	return math.Float64frombits(d.last)
}

func (d *decoder) floatPtr() *float64 {
	f := d.float()
	return &f
}
