package spool

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ErrFull is returned by Append when the records would take the spool over
// its size cap. Nothing was written; try again after Commit freed space.
var ErrFull = errors.New("spool: full")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("spool: closed")

// Options tune a spool.
type Options struct {
	// MaxBytes caps the bytes not yet committed (default 1 GiB). Append
	// fails with ErrFull beyond it: the caller stops acknowledging, so the
	// broker keeps the messages.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file starts (default 64 MiB).
	SegmentBytes int64
	// OnDamage is called once for each damaged stretch a reader steps over,
	// after its bytes were copied aside. It runs on the reader's goroutine.
	OnDamage func(Damage)
}

func (o *Options) ensureDefaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.OnDamage == nil {
		o.OnDamage = func(Damage) {}
	}
}

// Recovery is what Open found and did.
type Recovery struct {
	// TornBytes were cut off the end of TornSegment at TornOffset: a write
	// that a crash interrupted, never acknowledged.
	TornSegment           string
	TornOffset, TornBytes int64
	// CommittedUnreadable is set when the committed file failed its check
	// (or pointed past the end): everything the spool holds is read again,
	// which is harmless, rather than skipping records on a guess.
	CommittedUnreadable bool
	// LegacySegments counts segments of the previous release's format still
	// to be read.
	LegacySegments int
}

// segment is one segment file.
type segment struct {
	base   int64 // global position of the file's first byte
	legacy bool  // the previous release's format
}

// Spool is safe for one appender and one reader at a time, concurrently.
type Spool struct {
	dir  string
	opts Options

	mu        sync.Mutex
	segs      []segment // ascending; the last is the active one
	active    *os.File  // the last segment, open for appending
	end       int64     // position after the last durable record
	records   int64     // intact records between committed and end
	committed int64     // position up to which records are stored elsewhere
	changed   chan struct{}
	closed    bool
	recovery  Recovery
	openEnd   int64  // end at Open: records after it were counted by Append
	wbuf      []byte // the appender's; reused

	reportMu sync.Mutex
	reported map[int64]bool // positions of damage already reported
}

// Open opens or creates the spool in dir and recovers it.
func Open(dir string, opts Options) (*Spool, error) {
	opts.ensureDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, changed: make(chan struct{}), reported: map[int64]bool{}}
	if err := s.recover(); err != nil {
		if s.active != nil {
			s.active.Close()
		}
		return nil, err
	}
	return s, nil
}

// Recovery reports what Open found and did.
func (s *Spool) Recovery() Recovery { return s.recovery }

func (s *Spool) segPath(g segment) string {
	if g.legacy {
		return filepath.Join(s.dir, fmt.Sprintf("seg-%020d.log", g.base))
	}
	return filepath.Join(s.dir, fmt.Sprintf("seg-%020d.v2.log", g.base))
}

// listSegments finds the segment files. A seg-*.log name it cannot parse
// (say, a later release's format) stops Open rather than being ignored.
func listSegments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var segs []segment
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		num, legacy := strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".log"), true
		if n, ok := strings.CutSuffix(num, ".v2"); ok {
			num, legacy = n, false
		}
		base, err := strconv.ParseInt(num, 10, 64)
		if err != nil || base < 0 {
			return nil, fmt.Errorf("spool: unexpected file %s", name)
		}
		segs = append(segs, segment{base: base, legacy: legacy})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].base < segs[j].base })
	for i := 1; i < len(segs); i++ {
		if segs[i].base == segs[i-1].base {
			return nil, fmt.Errorf("spool: two segments at position %d", segs[i].base)
		}
	}
	return segs, nil
}

// readCommitted reads the committed file: "<position> <CRC-32C of the
// digits, hex>", or the previous release's bare position. ok is false when
// it exists but fails its check.
func readCommitted(dir string) (pos int64, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "committed"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, true
	}
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f) > 2 {
		return 0, false
	}
	pos, err = strconv.ParseInt(f[0], 10, 64)
	if err != nil || pos < 0 {
		return 0, false
	}
	if len(f) == 2 && f[1] != fmt.Sprintf("%08x", crc32.Checksum([]byte(f[0]), castagnoli)) {
		return 0, false
	}
	return pos, true
}

func (s *Spool) recover() error {
	segs, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	committed, ok := readCommitted(s.dir)
	if len(segs) == 0 {
		f, err := s.create(committed)
		if err != nil {
			return err
		}
		s.segs, s.active, s.end, s.committed, s.openEnd = []segment{{base: committed}}, f, committed, committed, committed
		return nil
	}

	last := segs[len(segs)-1]
	f, err := os.OpenFile(s.segPath(last), os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	size := fi.Size()
	// A committed position past everything on disk cannot be right: read
	// all again rather than clamp it and skip records that may be pending.
	if !ok || committed > last.base+size {
		s.recovery.CommittedUnreadable = true
		committed = segs[0].base
	}
	if committed < segs[0].base { // Commit removed segments, then could not write the file
		committed = segs[0].base
	}
	s.committed, s.segs = committed, segs

	kept, damagedTail, err := s.recoverTail(f, last, size)
	if err != nil {
		f.Close()
		return err
	}
	switch {
	case !last.legacy && !damagedTail:
		if _, err := f.Seek(kept, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		s.active, s.end = f, last.base+kept
	case last.legacy && kept == 0:
		// An empty segment of the previous format (it rotates eagerly):
		// the current format takes its place.
		f.Close()
		if err := os.Remove(s.segPath(last)); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if s.active, err = s.create(last.base); err != nil {
			return err
		}
		s.segs[len(s.segs)-1], s.end = segment{base: last.base}, last.base
	default:
		// Kept damage at the end, or the previous format: appending goes on
		// in a new segment, and the reader deals with the old one's end.
		f.Close()
		s.end = last.base + kept
		if s.active, err = s.create(s.end); err != nil {
			return err
		}
		s.segs = append(s.segs, segment{base: s.end})
	}
	s.dropCommitted()
	for _, g := range s.segs {
		if g.legacy {
			s.recovery.LegacySegments++
		}
	}
	s.openEnd = s.end
	s.records, err = s.countRecords()
	return err
}

// recoverTail scans the last segment and cuts a torn tail; it returns the
// size the segment keeps and whether that ends in damage. Bytes after the
// last intact record are cut only when they are an interrupted write (and
// not committed): any other damage there is kept for the reader to report
// and quarantine.
func (s *Spool) recoverTail(f *os.File, last segment, size int64) (kept int64, damagedTail bool, err error) {
	c := newCursor(f, last.legacy, 0, size)
	lastEnd := int64(0)
	for {
		_, ok, skip, err := c.next()
		if err != nil {
			return 0, false, fmt.Errorf("spool: recover %s: %w", filepath.Base(s.segPath(last)), err)
		}
		if ok {
			lastEnd = c.off
			continue
		}
		if skip.to > skip.from && skip.to < size {
			continue // damage with intact records after it: the reader's business
		}
		break
	}
	tail := max(lastEnd, s.committed-last.base)
	if tail >= size {
		return size, false, nil
	}
	torn, err := c.tornAt(tail, size)
	if err != nil {
		return 0, false, fmt.Errorf("spool: recover: %w", err)
	}
	if !torn {
		return size, true, nil
	}
	if err := f.Truncate(tail); err != nil {
		return 0, false, fmt.Errorf("spool: cut torn tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, false, fmt.Errorf("spool: cut torn tail: %w", err)
	}
	s.recovery.TornSegment, s.recovery.TornOffset, s.recovery.TornBytes = filepath.Base(s.segPath(last)), tail, size-tail
	return tail, false, nil
}

// dropCommitted removes segments wholly before the committed position.
func (s *Spool) dropCommitted() {
	for len(s.segs) > 1 && s.segs[1].base <= s.committed {
		os.Remove(s.segPath(s.segs[0]))
		s.segs = s.segs[1:]
	}
}

// countRecords counts the intact records between committed and end (at
// Open only; damage is reported when a reader meets it).
func (s *Spool) countRecords() (int64, error) {
	var n int64
	for i, g := range s.segs {
		limit := s.end - g.base
		if i+1 < len(s.segs) {
			limit = s.segs[i+1].base - g.base
		}
		from := max(0, s.committed-g.base)
		if from >= limit {
			continue
		}
		f, err := os.Open(s.segPath(g))
		if err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		c := newCursor(f, g.legacy, from, limit)
		for {
			_, ok, skip, err := c.next()
			if err != nil {
				f.Close()
				return 0, fmt.Errorf("spool: %w", err)
			}
			if ok {
				n++
			} else if skip.to <= skip.from {
				break
			}
		}
		f.Close()
	}
	return n, nil
}

func (s *Spool) create(base int64) (*os.File, error) {
	f, err := os.OpenFile(s.segPath(segment{base: base}), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	syncDir(s.dir) // make the new file's name durable too
	return f, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Append writes records and fsyncs them: when Append returns nil every
// record is durable. It fails with ErrFull, writing nothing, when the
// records would take the uncommitted bytes over MaxBytes (unless the spool
// is empty: a single oversized group is still taken).
func (s *Spool) Append(records [][]byte) error {
	var size int64
	for _, r := range records {
		if len(r) > MaxRecord {
			return fmt.Errorf("spool: record of %d bytes is over the %d limit", len(r), MaxRecord)
		}
		size += int64(headerLen + len(r))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	pending := s.end - s.committed
	if pending > 0 && pending+size > s.opts.MaxBytes {
		s.mu.Unlock()
		return ErrFull
	}
	f, end := s.active, s.end
	s.mu.Unlock()

	// Only the appender writes the file, so the write and fsync run
	// without the lock: the reader keeps reading durable records meanwhile.
	buf := s.wbuf[:0]
	for _, r := range records {
		buf = appendRecord(buf, r)
	}
	s.wbuf = buf
	if cap(buf) > 8<<20 {
		s.wbuf = nil // an outsized group: do not hold on to its buffer
	}
	if _, err := f.Write(buf); err != nil {
		return s.failed(end, err)
	}
	if err := f.Sync(); err != nil {
		return s.failed(end, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.end = end + size
	s.records += int64(len(records))
	s.notify()
	if base := s.segs[len(s.segs)-1].base; s.end-base >= s.opts.SegmentBytes {
		nf, err := s.create(s.end)
		if err != nil {
			return nil // the records are durable; keep appending to the old segment
		}
		s.active.Close()
		s.active = nf
		s.segs = append(s.segs, segment{base: s.end})
	}
	return nil
}

// failed cuts a partial write back so that the segment ends on a record.
func (s *Spool) failed(end int64, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := end - s.segs[len(s.segs)-1].base
	s.active.Truncate(off)
	s.active.Seek(off, io.SeekStart)
	return fmt.Errorf("spool: append: %w", err)
}

func (s *Spool) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed returns a channel that is closed at the next Append or Commit.
func (s *Spool) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Stats are the uncommitted records and bytes.
type Stats struct {
	Records, Bytes int64
	Segments       int
}

// Stats reports what is waiting in the spool.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Records: s.records, Bytes: s.end - s.committed, Segments: len(s.segs)}
}

// Committed returns the position up to which records are committed.
func (s *Spool) Committed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

// Commit marks everything before pos as stored elsewhere, after n records;
// wholly committed segments are removed. pos must be a position returned by
// a Reader.
func (s *Spool) Commit(pos int64, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pos <= s.committed {
		return nil
	}
	if pos > s.end {
		return fmt.Errorf("spool: commit %d beyond end %d", pos, s.end)
	}
	s.committed = pos
	s.records -= n
	s.dropCommitted()
	s.notify()
	// Losing this file only means replaying stored records: no fsync
	// needed. Its CRC tells a damaged one from a real position at Open.
	digits := strconv.FormatInt(pos, 10)
	tmp := filepath.Join(s.dir, "committed.tmp")
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%s %08x\n", digits, crc32.Checksum([]byte(digits), castagnoli)), 0o644); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return os.Rename(tmp, filepath.Join(s.dir, "committed"))
}

// Close closes the spool; durable records stay for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.notify()
	return s.active.Close()
}
