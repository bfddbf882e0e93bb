package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file reads a bbolt file without bbolt: with ReadAt and bounds
// checks, never through the memory map, so a damaged page is an error here
// where bbolt would panic, fault or loop. It knows the bbolt v2 file format
// (go.etcd.io/bbolt v1.4) as written on little-endian hosts:
//
//	page:    id u64 | flags u16 | count u16 | overflow u32 | data
//	meta:    magic u32 | version u32 | page size u32 | flags u32 |
//	         root bucket (root page u64, sequence u64) | freelist page u64 |
//	         high-water page u64 | txid u64 | FNV-64a of the above u64
//	branch:  count elements of pos u32 | key size u32 | child page u64
//	leaf:    count elements of flags u32 | pos u32 | key size u32 | value size u32
//	         (pos counts from the element's own first byte; flag 1: a bucket,
//	         whose value is root page u64 | sequence u64 | inline leaf page if root is 0)
//	freelist: count ids of u64 (count 0xFFFF: the first u64 is the count)
//
// checkHead (at every open) reads the meta pages, the length and the
// freelist; walk (Check, Recover) every page of every bucket.
const (
	pageHeaderSize = 16
	elemSize       = 16 // a branch or leaf element header
	metaMagic      = 0xED0CDAED
	metaVersion    = 2
	pageBranch     = 0x01
	pageLeaf       = 0x02
	pageFreelist   = 0x10
	leafIsBucket   = 0x01
	noFreelist     = ^uint64(0)
	// maxTreeDepth bounds the descent: a bbolt tree of 2^64 keys is
	// shallower than this, so a deeper one is a loop in damaged pages.
	maxTreeDepth = 64
	// maxProblems bounds the problems a check lists (it counts them all).
	maxProblems = 50
)

// rawMeta is a bbolt meta page.
type rawMeta struct {
	pageSize  int
	root, seq uint64 // the root bucket
	freelist  uint64
	hwm       uint64 // pages 0..hwm-1 are in the file
	txid      uint64
}

// parseMeta decodes the meta page at the start of b and verifies its magic,
// version and checksum.
func parseMeta(b []byte) (rawMeta, error) {
	if len(b) < pageHeaderSize+64 {
		return rawMeta{}, errors.New("short meta page")
	}
	m := b[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != metaMagic {
		return rawMeta{}, errors.New("not a bbolt meta page (bad magic)")
	}
	if v := le.Uint32(m[4:]); v != metaVersion {
		return rawMeta{}, fmt.Errorf("bbolt file version %d, want %d", v, metaVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return rawMeta{}, errors.New("meta page checksum mismatch")
	}
	ps := int(le.Uint32(m[8:]))
	if ps < 512 || ps > 1<<16 || ps&(ps-1) != 0 {
		return rawMeta{}, fmt.Errorf("page size %d", ps)
	}
	return rawMeta{pageSize: ps, root: le.Uint64(m[16:]), seq: le.Uint64(m[24:]),
		freelist: le.Uint64(m[32:]), hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, nil
}

// rawFile reads the pages of one bbolt file state (one meta page).
type rawFile struct {
	r    io.ReaderAt
	size int64
	meta rawMeta
	// pages is how many of the meta page's hwm pages the file holds
	// (fewer when it was truncated): the bound of every page id table.
	pages uint64
}

// openRaw reads the meta pages of the file r of size bytes and picks the
// one bbolt would: the valid one with txid wantTx if not 0, else the valid
// one with the higher txid. A file shorter than the meta page says is an
// error unless tolerant (Recover reads what is there).
func openRaw(r io.ReaderAt, size int64, wantTx uint64, tolerant bool) (*rawFile, error) {
	if size < 1024 {
		return nil, fmt.Errorf("the file is %d bytes, shorter than bbolt's two meta pages", size)
	}
	buf := make([]byte, pageHeaderSize+64)
	read := func(off int64) (rawMeta, error) {
		if _, err := r.ReadAt(buf, off); err != nil {
			return rawMeta{}, fmt.Errorf("read meta page: %w", err)
		}
		return parseMeta(buf)
	}
	m0, err0 := read(0)
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := read(ps)
	if err1 == nil && m1.pageSize != int(ps) {
		err1 = fmt.Errorf("page size %d at offset %d", m1.pageSize, ps)
	}
	var m rawMeta
	switch {
	case err0 != nil && err1 != nil:
		return nil, fmt.Errorf("both meta pages are invalid (%v; %v)", err0, err1)
	case err1 != nil:
		m = m0
	case err0 != nil:
		m = m1
	case wantTx != 0 && m1.txid == wantTx, wantTx == 0 && m1.txid > m0.txid:
		m = m1
	default:
		m = m0
	}
	if m.hwm < 2 || m.hwm > uint64(1<<62)/uint64(m.pageSize) {
		return nil, fmt.Errorf("meta page says the file has %d pages", m.hwm)
	}
	if need := int64(m.hwm) * int64(m.pageSize); size < need && !tolerant {
		return nil, fmt.Errorf("the file is %d bytes but its meta page says %d pages of %d bytes (%d bytes): it was truncated", size, m.hwm, m.pageSize, need)
	}
	pages := m.hwm
	if have := uint64(size / int64(m.pageSize)); have < pages {
		pages = have
	}
	if pages < 2 {
		return nil, fmt.Errorf("the file is %d bytes, shorter than its two meta pages of %d bytes", size, m.pageSize)
	}
	return &rawFile{r: r, size: size, meta: m, pages: pages}, nil
}

// rawPage is one page (with its overflow pages) read from the file.
type rawPage struct {
	id       uint64
	flags    uint16
	count    int
	overflow uint64
	buf      []byte // the whole span, header included
}

// page reads page id and its overflow pages.
func (f *rawFile) page(id uint64) (rawPage, error) {
	ps := int64(f.meta.pageSize)
	if id < 2 || id >= f.meta.hwm {
		return rawPage{}, fmt.Errorf("page %d is outside the file's pages 2..%d", id, f.meta.hwm-1)
	}
	if int64(id+1)*ps > f.size {
		return rawPage{}, fmt.Errorf("page %d is past the end of the file (%d bytes): truncated", id, f.size)
	}
	buf := make([]byte, ps)
	if _, err := f.r.ReadAt(buf, int64(id)*ps); err != nil {
		return rawPage{}, fmt.Errorf("read page %d: %w", id, err)
	}
	le := binary.LittleEndian
	p := rawPage{id: id, flags: le.Uint16(buf[8:]), count: int(le.Uint16(buf[10:])), overflow: uint64(le.Uint32(buf[12:])), buf: buf}
	if h := le.Uint64(buf); h != id {
		return rawPage{}, fmt.Errorf("page %d: its header says page %d", id, h)
	}
	if p.overflow > 0 {
		if id+p.overflow >= f.meta.hwm {
			return rawPage{}, fmt.Errorf("page %d: %d overflow pages run past the file's %d pages", id, p.overflow, f.meta.hwm)
		}
		if int64(id+p.overflow+1)*ps > f.size {
			return rawPage{}, fmt.Errorf("page %d: its overflow pages are past the end of the file: truncated", id)
		}
		p.buf = make([]byte, int64(p.overflow+1)*ps)
		if _, err := f.r.ReadAt(p.buf, int64(id)*ps); err != nil {
			return rawPage{}, fmt.Errorf("read page %d: %w", id, err)
		}
	}
	return p, nil
}

// freelist reads the free page ids.
func (f *rawFile) freelist() (rawPage, []uint64, error) {
	p, err := f.page(f.meta.freelist)
	if err != nil {
		return p, nil, fmt.Errorf("freelist: %w", err)
	}
	if p.flags != pageFreelist {
		return p, nil, fmt.Errorf("freelist page %d has type %#x, not a freelist", p.id, p.flags)
	}
	le := binary.LittleEndian
	idx, n := uint64(0), uint64(p.count)
	if p.count == 0xFFFF {
		if len(p.buf) < pageHeaderSize+8 {
			return p, nil, fmt.Errorf("freelist page %d is short", p.id)
		}
		idx, n = 1, le.Uint64(p.buf[pageHeaderSize:])
	}
	if room := uint64(len(p.buf)-pageHeaderSize) / 8; n > room || idx+n > room {
		return p, nil, fmt.Errorf("freelist page %d says %d free pages, more than fit in it", p.id, n)
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = le.Uint64(p.buf[pageHeaderSize+8*(int(idx)+i):])
	}
	return p, ids, nil
}

// checkFreelist verifies the free page ids: each inside the file, none twice.
// It returns them as a set (indexed by page id).
func (f *rawFile) checkFreelist() ([]bool, rawPage, error) {
	free := make([]bool, f.pages)
	if f.meta.freelist == noFreelist {
		return free, rawPage{}, nil
	}
	p, ids, err := f.freelist()
	if err != nil {
		return nil, p, err
	}
	for _, id := range ids {
		if id < 2 || id >= f.meta.hwm {
			return nil, p, fmt.Errorf("freelist page %d lists page %d, outside the file's pages 2..%d", p.id, id, f.meta.hwm-1)
		}
		if id >= f.pages {
			continue // past the end of a truncated file
		}
		if free[id] {
			return nil, p, fmt.Errorf("freelist page %d lists page %d twice", p.id, id)
		}
		free[id] = true
	}
	return free, p, nil
}

// checkHead is the check every open runs: the meta pages, that the file is
// as long as they say, the freelist and the root page. It reads a few pages.
func checkHead(r io.ReaderAt, size int64) error {
	f, err := openRaw(r, size, 0, false)
	if err != nil {
		return err
	}
	if f.meta.root < 2 || f.meta.root >= f.meta.hwm {
		return fmt.Errorf("meta page says the root page is %d, outside the file's pages 2..%d", f.meta.root, f.meta.hwm-1)
	}
	free, _, err := f.checkFreelist()
	if err != nil {
		return err
	}
	if free[f.meta.root] {
		return fmt.Errorf("the root page %d is also listed free", f.meta.root)
	}
	p, err := f.page(f.meta.root)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if p.flags != pageLeaf && p.flags != pageBranch {
		return fmt.Errorf("root page %d has type %#x, not a branch or leaf page", p.id, p.flags)
	}
	return nil
}

// checkHeadPath runs checkHead on the file at path under a shared file lock
// (so a writer's commit is never read half done), waiting up to timeout
// for a writer to let go; it returns ErrLocked if none does. A damaged
// file gives ErrCorrupt.
func checkHeadPath(path string, timeout time.Duration) error {
	f, err := openLocked(path, timeout)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if err := checkHead(f, st.Size()); err != nil {
		return corruptError(path, err)
	}
	return nil
}

// openLocked opens path read-only and takes a shared lock on it, retrying
// until timeout; ErrLocked if a writer holds it all that time.
func openLocked(path string, timeout time.Duration) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, err := lockShared(f)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			return f, nil
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CheckReport is what a full check of a store file found.
type CheckReport struct {
	// Pages is the file's page count (bbolt's high-water mark), PageSize
	// their size in bytes.
	Pages, PageSize int
	// InUse and Free count the pages reached from the root and the pages
	// the freelist lists.
	InUse, Free int
	// Snapshots counts the snapshots read (and decoded); Records the
	// entries of the other buckets, by bucket name.
	Snapshots int
	Records   map[string]int
	// Problems lists the first problems found; ProblemCount counts them all.
	Problems     []string
	ProblemCount int
}

// walker visits every page of every bucket, reporting what it cannot read
// and going on with the rest.
type walker struct {
	f *rawFile
	// reached marks the pages already visited (and so loops).
	reached []bool
	// entry is called for every key of a bucket that is not a bucket
	// (path: bucket names from the root); seq for every bucket found.
	entry func(path []string, k, v []byte)
	seq   func(path []string, seq uint64)
	// page, when set, is called for every branch or leaf page read.
	page func(path []string, id uint64, flags uint16)
	// lostPages counts the pages that could not be read; lost the
	// elements of readable pages that could not be (they point outside
	// their page, or their key is out of order), by bucket.
	lostPages    int
	lostPagesIn  map[string]int // lostPages by bucket
	lost         map[string]int
	problems     []string
	problemCount int
}

// losePage counts an unreadable page of the bucket at path.
func (w *walker) losePage(path []string) {
	w.lostPages++
	if w.lostPagesIn == nil {
		w.lostPagesIn = map[string]int{}
	}
	w.lostPagesIn[bucketName(path)]++
}

// lostUnder reports whether a page of the bucket named name was lost.
func (w *walker) lostUnder(name string) bool { return w.lostPagesIn[name] > 0 }

// lose counts an unreadable element of the bucket at path.
func (w *walker) lose(path []string) {
	if w.lost == nil {
		w.lost = map[string]int{}
	}
	w.lost[bucketName(path)]++
}

func (w *walker) problem(format string, a ...any) {
	w.problemCount++
	if len(w.problems) < maxProblems {
		w.problems = append(w.problems, fmt.Sprintf(format, a...))
	}
}

// bucketName renders a bucket path for problems.
func bucketName(path []string) string {
	if len(path) == 0 {
		return "root"
	}
	return strings.Join(path, "/")
}

// bucket walks the bucket at path: its root page, or its inline page.
func (w *walker) bucket(path []string, root, seq uint64, inline []byte) {
	if w.seq != nil {
		w.seq(path, seq)
	}
	if root == 0 {
		if len(inline) < pageHeaderSize || binary.LittleEndian.Uint16(inline[8:]) != pageLeaf {
			w.problem("bucket %s: inline page is not a leaf page", bucketName(path))
			w.losePage(path)
			return
		}
		w.leaf(path, inline, int(binary.LittleEndian.Uint16(inline[10:])), nil, nil, inlinePage)
		return
	}
	w.tree(path, root, nil, nil, 0)
}

// tree walks the subtree at page id whose keys must lie in [lo, hi) (nil:
// unbounded).
func (w *walker) tree(path []string, id uint64, lo, hi []byte, depth int) {
	if depth > maxTreeDepth {
		w.problem("bucket %s: page %d is %d levels deep: the tree loops", bucketName(path), id, depth)
		w.losePage(path)
		return
	}
	if id < uint64(len(w.reached)) && w.reached[id] {
		w.problem("bucket %s: page %d is referenced twice", bucketName(path), id)
		w.losePage(path)
		return
	}
	p, err := w.f.page(id)
	if err != nil {
		w.problem("bucket %s: %v", bucketName(path), err)
		w.losePage(path)
		return
	}
	for i := id; i <= id+p.overflow; i++ {
		if w.reached[i] {
			w.problem("bucket %s: page %d (overflow of %d) is referenced twice", bucketName(path), i, id)
			w.losePage(path)
			return
		}
		w.reached[i] = true
	}
	if w.page != nil {
		w.page(path, id, p.flags)
	}
	where := pageRef(id)
	switch p.flags {
	case pageLeaf:
		w.leaf(path, p.buf, p.count, lo, hi, where)
	case pageBranch:
		if p.count == 0 {
			w.problem("bucket %s: branch %s has no children", bucketName(path), where)
			return
		}
		type child struct {
			key []byte
			id  uint64
		}
		var kids []child
		for i := 0; i < p.count; i++ {
			_, k, _, cid, err := element(p.buf, i, false)
			if err != nil {
				w.problem("bucket %s: %s: %v", bucketName(path), where, err)
				w.lose(path)
				continue
			}
			if !w.inOrder(path, where, i, k, kids == nil, lo, hi, func() []byte { return kids[len(kids)-1].key }) {
				w.lose(path)
				continue
			}
			kids = append(kids, child{k, cid})
		}
		for i, c := range kids {
			next := hi
			if i+1 < len(kids) {
				next = kids[i+1].key
			}
			w.tree(path, c.id, c.key, next, depth+1)
		}
	default:
		w.problem("bucket %s: %s has type %#x, not a branch or leaf page", bucketName(path), where, p.flags)
		w.losePage(path)
	}
}

// pageRef names a page in problems; formatted only when one is reported.
type pageRef uint64

// inlinePage is the pageRef of a bucket's inline page (page 0 is a meta page).
const inlinePage pageRef = 0

func (p pageRef) String() string {
	if p == inlinePage {
		return "inline page"
	}
	return fmt.Sprintf("page %d", uint64(p))
}

// inOrder reports whether key i of a page lies in [lo, hi) and after the
// previous accepted key (prev, when not first), and reports a problem if not.
func (w *walker) inOrder(path []string, where pageRef, i int, k []byte, first bool, lo, hi []byte, prev func() []byte) bool {
	switch {
	case len(k) == 0:
		w.problem("bucket %s: %s: key %d is empty", bucketName(path), where, i)
	case lo != nil && bytes.Compare(k, lo) < 0, hi != nil && bytes.Compare(k, hi) >= 0:
		w.problem("bucket %s: %s: key %d (%x) is outside the range its parent gives", bucketName(path), where, i, shortKey(k))
	case !first && bytes.Compare(k, prev()) <= 0:
		w.problem("bucket %s: %s: key %d (%x) is out of order", bucketName(path), where, i, shortKey(k))
	default:
		return true
	}
	return false
}

// shortKey is the first 24 bytes of k, for problems.
func shortKey(k []byte) []byte { return k[:min(len(k), 24)] }

// leaf walks the n elements of the leaf page in buf.
func (w *walker) leaf(path []string, buf []byte, n int, lo, hi []byte, where pageRef) {
	var prev []byte
	for i := 0; i < n; i++ {
		flags, k, v, _, err := element(buf, i, true)
		if err != nil {
			w.problem("bucket %s: %s: %v", bucketName(path), where, err)
			w.lose(path)
			continue
		}
		if !w.inOrder(path, where, i, k, prev == nil, lo, hi, func() []byte { return prev }) {
			w.lose(path)
			continue
		}
		prev = k
		if flags&leafIsBucket == 0 {
			if w.entry != nil {
				w.entry(path, k, v)
			}
			continue
		}
		sub := append(append([]string(nil), path...), string(k))
		if len(v) < 16 {
			w.problem("bucket %s: %s: bucket header of %d bytes", bucketName(sub), where, len(v))
			w.lose(sub)
			continue
		}
		w.bucket(sub, binary.LittleEndian.Uint64(v), binary.LittleEndian.Uint64(v[8:]), v[16:])
	}
}

// element returns element i of the page in buf: a leaf's flags, key and
// value, or a branch's key and child page.
func element(buf []byte, i int, leaf bool) (flags uint32, k, v []byte, child uint64, err error) {
	off := pageHeaderSize + i*elemSize
	if off+elemSize > len(buf) {
		return 0, nil, nil, 0, fmt.Errorf("element %d lies past the page", i)
	}
	le := binary.LittleEndian
	e := buf[off : off+elemSize]
	var pos, ksize, vsize uint64
	if leaf {
		flags, pos, ksize, vsize = le.Uint32(e), uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
	} else {
		pos, ksize, child = uint64(le.Uint32(e)), uint64(le.Uint32(e[4:])), le.Uint64(e[8:])
	}
	start := uint64(off) + pos
	if start+ksize+vsize > uint64(len(buf)) {
		return 0, nil, nil, 0, fmt.Errorf("element %d points past the page (%d+%d+%d bytes of %d)", i, start, ksize, vsize, len(buf))
	}
	return flags, buf[start : start+ksize], buf[start+ksize : start+ksize+vsize], child, nil
}

// checkFile checks the whole file r (size bytes) as of the meta page with
// txid wantTx (0: the newest valid one): meta pages and length, freelist,
// every page of every bucket (types, bounds, key order, no page twice, no
// page both used and free, none lost), and that every snapshot decodes to
// the time and source of its key.
func checkFile(r io.ReaderAt, size int64, wantTx uint64) CheckReport {
	var rep CheckReport
	w := &walker{}
	f, err := openRaw(r, size, wantTx, true)
	if err != nil {
		w.problem("%v", err)
		return w.report(rep)
	}
	if need := int64(f.meta.hwm) * int64(f.meta.pageSize); size < need {
		// Go on: the walk names what lies past the end.
		w.problem("the file is %d bytes but its meta page says %d pages of %d bytes (%d bytes): it was truncated", size, f.meta.hwm, f.meta.pageSize, need)
	}
	rep.Pages, rep.PageSize = int(f.meta.hwm), f.meta.pageSize
	w.f = f
	w.reached = make([]bool, f.pages)
	w.reached[0], w.reached[1] = true, true
	free, fl, err := f.checkFreelist()
	if err != nil {
		w.problem("%v", err)
	} else if f.meta.freelist != noFreelist {
		for i := fl.id; i <= fl.id+fl.overflow; i++ {
			w.reached[i] = true
		}
	}
	rep.Records = map[string]int{}
	intern := map[string]string{}
	w.entry = func(path []string, k, v []byte) {
		if len(path) != 1 {
			return // lbtune nests no buckets
		}
		if path[0] != string(snapshotsBucket) {
			rep.Records[path[0]]++
			return
		}
		rep.Snapshots++
		if err := checkSnapshot(k, v, intern); err != nil {
			w.problem("bucket snapshots: %v", err)
		}
	}
	if f.meta.root < 2 || f.meta.root >= f.meta.hwm {
		w.problem("meta page says the root page is %d, outside the file's pages 2..%d", f.meta.root, f.meta.hwm-1)
	} else {
		w.bucket(nil, f.meta.root, f.meta.seq, nil)
	}
	for _, r := range w.reached {
		if r {
			rep.InUse++
		}
	}
	if free != nil {
		leaked := 0
		for id := uint64(2); id < f.pages; id++ {
			switch {
			case free[id] && w.reached[id]:
				w.problem("page %d is in use and also listed free", id)
			case free[id]:
				rep.Free++
			case !w.reached[id] && w.lostPages == 0 && f.meta.freelist != noFreelist && f.pages == f.meta.hwm:
				leaked++
			}
		}
		if leaked > 0 {
			w.problem("%d pages are neither in use nor free", leaked)
		}
	}
	return w.report(rep)
}

// report fills rep's problems from w.
func (w *walker) report(rep CheckReport) CheckReport {
	rep.Problems, rep.ProblemCount = w.problems, w.problemCount
	return rep
}

// checkSnapshot verifies that a stored snapshot decodes and matches its
// key; intern (may be nil) shares the decoded names across calls.
func checkSnapshot(k, v []byte, intern map[string]string) error {
	if len(k) < 8 {
		return fmt.Errorf("key %x is not time || source", shortKey(k))
	}
	sn, err := decodeSnapshotInterned(v, intern)
	if err != nil {
		return fmt.Errorf("snapshot %s at %s: %w", k[8:], keyTime(k).Format(time.RFC3339Nano), err)
	}
	if !sn.Time.Equal(keyTime(k)) || sn.Source != string(k[8:]) {
		return fmt.Errorf("snapshot under key %s at %s holds %s at %s", k[8:], keyTime(k).Format(time.RFC3339Nano), sn.Source, sn.Time.Format(time.RFC3339Nano))
	}
	return nil
}

// err turns a report with problems into an ErrCorrupt error for path.
func (rep CheckReport) err(path string) error {
	if rep.ProblemCount == 0 {
		return nil
	}
	more := ""
	if rep.ProblemCount > len(rep.Problems) {
		more = fmt.Sprintf("; and %d more", rep.ProblemCount-len(rep.Problems))
	}
	first := rep.Problems
	if len(first) > 3 {
		first, more = first[:3], fmt.Sprintf("; and %d more", rep.ProblemCount-3)
	}
	return corruptError(path, fmt.Errorf("%d problems: %s%s", rep.ProblemCount, strings.Join(first, "; "), more))
}

// Verify checks the whole store: every page of the file read without bbolt
// (checkFile), then, if that found nothing, bbolt's own check (Tx.Check),
// all in one read transaction so a concurrent writer changes nothing it
// reads. A damaged store gives ErrCorrupt, naming the first problems; the
// report lists them.
func (s *Store) Verify() (CheckReport, error) {
	return s.verify(true)
}

// verifyRaw is Verify without bbolt's check (BenchmarkCheckWeek).
func (s *Store) verifyRaw() (CheckReport, error) {
	return s.verify(false)
}

func (s *Store) verify(withBolt bool) (CheckReport, error) {
	var rep CheckReport
	err := s.view(func(tx *bolt.Tx) error {
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		rep = checkFile(f, st.Size(), uint64(tx.ID()))
		if rep.ProblemCount > 0 {
			return rep.err(s.path)
		}
		if !withBolt {
			return nil
		}
		// The pages bbolt's check reads are sound now: it runs in a
		// goroutine of its own, where a panic could not be caught.
		var errs []error
		for err := range tx.Check() {
			if len(errs) < maxProblems {
				rep.Problems = append(rep.Problems, "bbolt: "+err.Error())
			}
			errs = append(errs, err)
			rep.ProblemCount++
		}
		if len(errs) > 0 {
			return corruptError(s.path, errors.Join(errs...))
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("check store %s: %w", s.path, err)
	}
	return rep, err
}

// Check verifies the consistency of the whole store (Verify) and returns
// nil or an ErrCorrupt error naming the first problems.
func (s *Store) Check() error {
	_, err := s.Verify()
	return err
}

// VerifyPath checks the store at path (Verify), opening it read-only. A
// file too damaged to open is still read page by page, so the report lists
// what is wrong with it; the error is then the open's ErrCorrupt.
func VerifyPath(path string) (CheckReport, error) {
	s, err := OpenReadOnly(path)
	if err == nil {
		defer s.Close()
		return s.Verify()
	}
	if !errors.Is(err, ErrCorrupt) {
		return CheckReport{}, err
	}
	f, ferr := openLocked(path, DefaultLockTimeout)
	if ferr != nil {
		return CheckReport{}, err
	}
	defer f.Close()
	st, ferr := f.Stat()
	if ferr != nil {
		return CheckReport{}, err
	}
	rep := checkFile(f, st.Size(), 0)
	if rep.ProblemCount == 0 {
		// The open failed on something the walk does not look at.
		rep.Problems, rep.ProblemCount = []string{err.Error()}, 1
	}
	return rep, err
}
