package spool

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
)

// CorruptError reports records lost to corruption in the middle of the
// spool (disk damage, not a crash: a torn tail is cut at Open). The reader
// has skipped to the next segment.
type CorruptError struct{ From, To int64 }

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: corrupt data from position %d, skipped to %d", e.From, e.To)
}

// Reader reads durable records in order, starting at the committed position.
type Reader struct {
	s     *Spool
	pos   int64
	f     *os.File
	lf    *limitedFile
	fbase int64 // base of the open segment
	fend  int64 // base of the next segment, or -1 for the last one
	rr    recordReader
	buf   []byte
}

// NewReader returns a reader at the committed position.
func (s *Spool) NewReader() *Reader {
	return &Reader{s: s, pos: s.Committed(), fend: -1}
}

// Pos returns the position after the last record returned.
func (r *Reader) Pos() int64 { return r.pos }

// Next returns the next durable record and true, or false when none is
// available yet (wait on Spool.Changed). The slice is valid until the next
// call.
func (r *Reader) Next() ([]byte, bool, error) {
	r.s.mu.Lock()
	end, closed := r.s.end, r.s.closed
	var segs []int64
	if r.f == nil || (r.fend >= 0 && r.pos >= r.fend) || r.fend < 0 {
		segs = append(segs, r.s.segs...)
	}
	r.s.mu.Unlock()
	if closed {
		return nil, false, ErrClosed
	}
	if r.pos >= end {
		return nil, false, nil
	}
	if segs != nil {
		if err := r.open(segs); err != nil {
			return nil, false, err
		}
	}
	// Never let the buffered reader see past the durable end: bytes beyond
	// it may be a write in progress.
	r.lf.limit = end - r.fbase
	data, err := r.rr.next(r.buf)
	if err != nil {
		// A corrupt record below the durable end: skip the rest of the segment.
		// (Below the durable end even io.EOF means the file lost data.)
		from, to := r.pos, r.fend
		if to < 0 {
			to = end
		}
		r.close()
		r.pos = to
		return nil, false, &CorruptError{From: from, To: to}
	}
	r.buf = data[:0]
	r.pos += int64(headerLen + len(data))
	return data, true, nil
}

// open makes sure the segment holding r.pos is open at r.pos.
func (r *Reader) open(segs []int64) error {
	i := sort.Search(len(segs), func(i int) bool { return segs[i] > r.pos }) - 1
	if i < 0 {
		// Our position was committed and removed under us: start at the first segment.
		i, r.pos = 0, segs[0]
		r.close()
	}
	base := segs[i]
	next := int64(-1)
	if i+1 < len(segs) {
		next = segs[i+1]
	}
	if r.f != nil && r.fbase == base {
		r.fend = next
		return nil
	}
	r.close()
	f, err := os.Open(r.s.segPath(base))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Seek(r.pos-base, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	r.f, r.fbase, r.fend = f, base, next
	r.lf = &limitedFile{f: f, off: r.pos - base}
	r.rr = recordReader{r: bufio.NewReaderSize(r.lf, 256<<10)}
	return nil
}

func (r *Reader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// Close releases the reader's file.
func (r *Reader) Close() { r.close() }

// limitedFile reads a segment up to limit (a file offset that only grows).
type limitedFile struct {
	f          *os.File
	off, limit int64
}

func (l *limitedFile) Read(p []byte) (int, error) {
	if l.off >= l.limit {
		return 0, io.EOF
	}
	if rem := l.limit - l.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.f.Read(p)
	l.off += int64(n)
	return n, err
}
