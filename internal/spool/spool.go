// Package spool is the collector's durable queue: an append-only log of
// records on local disk, written with group commit (one fsync for many
// records) and read back in order.
//
// The collector acknowledges an MQTT message only after the record that
// carries it is in the spool and fsynced; a writer then drains the spool to
// InfluxDB and commits what was stored. A crash at any moment loses nothing
// that was acknowledged: on Open the spool is recovered and everything not
// yet committed is read again (InfluxDB points are idempotent, so a replay
// is harmless).
//
// Layout: segment files seg-<position>.log, where position is the global
// byte offset of the segment's first record, and a file named "committed"
// holding the position up to which records were stored elsewhere. A record
// is a 4-byte little-endian length, a 4-byte CRC-32C of the data, and the
// data. A torn record at the end of the last segment (a crash mid-write) is
// cut off at Open.
package spool

import (
	"encoding/binary"
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

// MaxRecord is the largest record accepted.
const MaxRecord = 64 << 20

const headerLen = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options tune a spool.
type Options struct {
	// MaxBytes caps the bytes not yet committed (default 1 GiB). Append
	// fails with ErrFull beyond it: the caller stops acknowledging, so the
	// broker keeps the messages.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file starts (default 64 MiB).
	SegmentBytes int64
}

func (o *Options) ensureDefaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
}

// Spool is safe for one appender and one reader at a time, concurrently.
type Spool struct {
	dir  string
	opts Options

	mu        sync.Mutex
	segs      []int64  // base positions of the segment files, ascending
	active    *os.File // the last segment, open for appending
	end       int64    // position after the last durable record
	records   int64    // records between committed and end
	committed int64    // position up to which records are stored elsewhere
	changed   chan struct{}
	closed    bool
}

// Open opens or creates the spool in dir and recovers it.
func Open(dir string, opts Options) (*Spool, error) {
	opts.ensureDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, changed: make(chan struct{})}
	if err := s.recover(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Spool) segPath(base int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("seg-%020d.log", base))
}

func (s *Spool) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		base, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".log"), 10, 64)
		if err != nil {
			return fmt.Errorf("spool: unexpected file %s", name)
		}
		s.segs = append(s.segs, base)
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i] < s.segs[j] })
	if b, err := os.ReadFile(filepath.Join(s.dir, "committed")); err == nil {
		s.committed, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	if len(s.segs) == 0 {
		base := s.committed
		f, err := s.create(base)
		if err != nil {
			return err
		}
		s.segs, s.active, s.end = []int64{base}, f, base
		return nil
	}
	// Drop segments that were committed but not yet removed.
	for len(s.segs) > 1 && s.segs[1] <= s.committed {
		os.Remove(s.segPath(s.segs[0]))
		s.segs = s.segs[1:]
	}
	if s.committed < s.segs[0] {
		s.committed = s.segs[0]
	}
	// Scan the last segment: cut a torn tail.
	last := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(s.segPath(last), os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	valid, err := scanValid(f)
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(valid); err != nil {
		f.Close()
		return fmt.Errorf("spool: truncate torn tail: %w", err)
	}
	if _, err := f.Seek(valid, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	s.active, s.end = f, last+valid
	if s.committed > s.end {
		s.committed = s.end
	}
	s.records = s.countRecords()
	return nil
}

// scanValid returns the length of the longest prefix of whole, intact records.
func scanValid(f *os.File) (int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	r := &recordReader{r: f}
	var off int64
	for {
		data, err := r.next(nil)
		if err != nil {
			return off, nil // io.EOF, a torn header or a bad checksum: stop here
		}
		off += int64(headerLen + len(data))
	}
}

// countRecords counts the records between committed and end (at Open only).
func (s *Spool) countRecords() int64 {
	var n int64
	pos := s.committed
	for pos < s.end {
		data, next, err := s.readAt(pos, nil)
		if err != nil {
			break
		}
		_ = data
		n++
		pos = next
	}
	return n
}

func (s *Spool) create(base int64) (*os.File, error) {
	f, err := os.OpenFile(s.segPath(base), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Make the new file's name durable too.
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return f, nil
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
	buf := make([]byte, 0, size)
	for _, r := range records {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(r, castagnoli))
		buf = append(buf, r...)
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
	if base := s.segs[len(s.segs)-1]; s.end-base >= s.opts.SegmentBytes {
		nf, err := s.create(s.end)
		if err != nil {
			return nil // the records are durable; keep appending to the old segment
		}
		s.active.Close()
		s.active = nf
		s.segs = append(s.segs, s.end)
	}
	return nil
}

// failed cuts a partial write back so that the segment ends on a record.
func (s *Spool) failed(end int64, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active.Truncate(end - s.segs[len(s.segs)-1])
	s.active.Seek(end-s.segs[len(s.segs)-1], io.SeekStart)
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
	for len(s.segs) > 1 && s.segs[1] <= pos {
		os.Remove(s.segPath(s.segs[0]))
		s.segs = s.segs[1:]
	}
	s.notify()
	// Losing this file only means replaying stored records: no fsync needed.
	tmp := filepath.Join(s.dir, "committed.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(pos, 10)), 0o644); err != nil {
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

// readAt reads the record at pos (below end).
func (s *Spool) readAt(pos int64, buf []byte) ([]byte, int64, error) {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i] > pos }) - 1
	if i < 0 {
		return nil, 0, fmt.Errorf("spool: position %d before the first segment", pos)
	}
	f, err := os.Open(s.segPath(s.segs[i]))
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(pos-s.segs[i], io.SeekStart); err != nil {
		return nil, 0, err
	}
	data, err := (&recordReader{r: f}).next(buf)
	if err != nil {
		return nil, 0, err
	}
	return data, pos + int64(headerLen+len(data)), nil
}

// recordReader reads records from a stream.
type recordReader struct {
	r   io.Reader
	hdr [headerLen]byte
}

var errCorrupt = errors.New("spool: corrupt record")

func (rr *recordReader) next(buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, errCorrupt
		}
		return nil, err
	}
	n := binary.LittleEndian.Uint32(rr.hdr[:4])
	sum := binary.LittleEndian.Uint32(rr.hdr[4:])
	if n > MaxRecord {
		return nil, errCorrupt
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(rr.r, buf); err != nil {
		return nil, errCorrupt
	}
	if crc32.Checksum(buf, castagnoli) != sum {
		return nil, errCorrupt
	}
	return buf, nil
}
