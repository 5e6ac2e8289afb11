package spool

import (
	"fmt"
	"os"
	"sort"
)

// CorruptError tells that the reader stepped over damaged records, from
// position From to To (it is already past them). The damage was reported
// through Options.OnDamage and its bytes copied aside.
type CorruptError struct {
	From, To int64
	Records  int // damaged records in the stretch, at least 1
	// Appended tells that the records were appended since Open, so a
	// caller that counted them on the way in must take them off.
	Appended bool
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: %d damaged record(s) from position %d to %d stepped over", e.Records, e.From, e.To)
}

// Reader reads durable records in order, starting at the committed position.
type Reader struct {
	s    *Spool
	pos  int64
	seg  segment
	c    *cursor // over the open segment; nil when none is open
	fend int64   // base of the next segment, or -1 for the active one
	segs []segment
}

// NewReader returns a reader at the committed position.
func (s *Spool) NewReader() *Reader {
	return &Reader{s: s, pos: s.Committed(), fend: -1}
}

// Pos returns the position after the last record returned (or stepped over).
func (r *Reader) Pos() int64 { return r.pos }

// Next returns the next durable record and true, or false when none is
// available yet (wait on Spool.Changed). After damage it returns a
// *CorruptError and is positioned on the next intact record: call it again.
// The slice is valid until the next call.
func (r *Reader) Next() ([]byte, bool, error) {
	for {
		r.s.mu.Lock()
		end, closed := r.s.end, r.s.closed
		var segs []segment
		if r.c == nil || r.fend >= 0 && r.pos >= r.fend || r.fend < 0 && r.s.segs[len(r.s.segs)-1] != r.seg {
			segs = append(r.segs[:0], r.s.segs...) // the segment list changed for us
			r.segs = segs
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
		// Never read past the durable end: bytes beyond it may be a write
		// in progress. A segment before the active one ends where the next begins.
		limit := end - r.seg.base
		if r.fend >= 0 {
			limit = r.fend - r.seg.base
		}
		r.c.setLimit(limit)
		data, ok, skip, err := r.c.next()
		if err != nil {
			return nil, false, fmt.Errorf("spool: read %s: %w", r.s.segPath(r.seg), err)
		}
		if ok {
			r.pos = r.seg.base + r.c.off
			return data, true, nil
		}
		if skip.to > skip.from {
			from := r.pos
			r.s.report(r.seg, r.c.f, skip)
			r.pos = r.seg.base + skip.to
			return nil, false, &CorruptError{From: from, To: r.pos, Records: skip.records, Appended: from >= r.s.openEnd}
		}
		r.pos = r.seg.base + limit // the end of a segment before the active one: on to the next
	}
}

// open makes sure the segment holding r.pos is open at r.pos.
func (r *Reader) open(segs []segment) error {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > r.pos }) - 1
	if i < 0 {
		// Our position was committed and removed under us: start at the first segment.
		i, r.pos = 0, segs[0].base
		r.close()
	}
	next := int64(-1)
	if i+1 < len(segs) {
		next = segs[i+1].base
	}
	if r.c != nil && r.seg == segs[i] {
		r.fend = next
		return nil
	}
	r.close()
	f, err := os.Open(r.s.segPath(segs[i]))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	r.seg, r.fend = segs[i], next
	r.c = newCursor(f, segs[i].legacy, r.pos-segs[i].base, r.pos-segs[i].base)
	return nil
}

func (r *Reader) close() {
	if r.c != nil {
		r.c.f.Close()
		r.c = nil
	}
}

// Close releases the reader's file.
func (r *Reader) Close() { r.close() }
