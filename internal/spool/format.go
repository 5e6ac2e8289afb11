package spool

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
)

// MaxRecord is the largest record accepted.
const MaxRecord = 64 << 20

const (
	headerLen       = 16 // magic, length, data CRC, header CRC
	legacyHeaderLen = 8  // the previous release's: length, data CRC
)

// magic starts every record. FF and FE never occur in UTF-8 text, so the
// collector's records (line protocol) cannot hold a false record start.
var magic = [4]byte{0xFF, 0xFE, 'G', 'P'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends data framed as one record.
func appendRecord(dst, data []byte) []byte {
	h := len(dst)
	dst = append(dst, magic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(data, castagnoli))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[h:h+12], castagnoli))
	return append(dst, data...)
}

// decodeHeader returns a header's data length and data CRC; ok is false
// when the header fails its check. A legacy header has no check of its
// own: only its length can be judged.
func decodeHeader(h []byte, legacy bool) (n int64, sum uint32, ok bool) {
	if legacy {
		n = int64(binary.LittleEndian.Uint32(h[0:4]))
		return n, binary.LittleEndian.Uint32(h[4:8]), n <= MaxRecord
	}
	if [4]byte(h[0:4]) != magic || crc32.Checksum(h[0:12], castagnoli) != binary.LittleEndian.Uint32(h[12:16]) {
		return 0, 0, false
	}
	n = int64(binary.LittleEndian.Uint32(h[4:8]))
	return n, binary.LittleEndian.Uint32(h[8:12]), n <= MaxRecord
}

func hdrLen(legacy bool) int64 {
	if legacy {
		return legacyHeaderLen
	}
	return headerLen
}

// span is a damaged stretch [from, to) of a segment file (file offsets)
// and the number of records that were in it, as far as can be told.
type span struct {
	from, to int64
	records  int
}

// cursor reads the records of one segment file in order, from off up to
// limit, and steps over damage. The hot path reads through a buffer; the
// search for the next intact record after damage reads the file directly.
type cursor struct {
	f      *os.File
	legacy bool
	off    int64 // file offset of the next record
	limit  int64 // file offset where the segment's durable bytes end
	src    sectionReader
	br     *bufio.Reader
	hdr    [headerLen]byte
	buf    []byte
}

func newCursor(f *os.File, legacy bool, off, limit int64) *cursor {
	c := &cursor{f: f, legacy: legacy, off: off, limit: limit, src: sectionReader{f: f, off: off, limit: limit}}
	c.br = bufio.NewReaderSize(&c.src, 256<<10)
	return c
}

// setLimit moves the end of what may be read (it only grows for the active
// segment: bytes beyond it may be a write in progress).
func (c *cursor) setLimit(limit int64) { c.limit, c.src.limit = limit, limit }

func (c *cursor) seek(off int64) {
	c.off, c.src.off = off, off
	c.br.Reset(&c.src)
}

// next returns the next intact record (ok), or the damaged span it stepped
// over (ok false, skip.to > skip.from), or neither at the limit. The data is
// valid until the next call.
func (c *cursor) next() (data []byte, ok bool, skip span, err error) {
	if c.off >= c.limit {
		return nil, false, span{}, nil
	}
	data, ok, err = c.read()
	if err != nil {
		return nil, false, span{}, err
	}
	if ok {
		c.off += hdrLen(c.legacy) + int64(len(data))
		return data, true, span{}, nil
	}
	to, records, err := c.resync()
	if err != nil {
		return nil, false, span{}, err
	}
	skip = span{from: c.off, to: to, records: records}
	c.seek(to)
	return nil, false, skip, nil
}

// read reads the record at c.off through the buffer; ok is false when it
// is not whole and intact below the limit. The buffer is left anywhere.
func (c *cursor) read() ([]byte, bool, error) {
	hl := hdrLen(c.legacy)
	avail := c.limit - c.off
	if avail < hl {
		return nil, false, nil
	}
	h := c.hdr[:hl]
	if _, err := io.ReadFull(c.br, h); err != nil {
		return nil, false, shortIsDamage(err)
	}
	n, sum, ok := decodeHeader(h, c.legacy)
	if !ok || n > avail-hl {
		return nil, false, nil
	}
	if int64(cap(c.buf)) < n {
		c.buf = make([]byte, n)
	}
	data := c.buf[:n]
	if _, err := io.ReadFull(c.br, data); err != nil {
		return nil, false, shortIsDamage(err)
	}
	if crc32.Checksum(data, castagnoli) != sum {
		return nil, false, nil
	}
	return data, true, nil
}

// shortIsDamage turns a file that ends early into damage (nil) and keeps
// real I/O errors.
func shortIsDamage(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// resyncChunk is how much of the file one read of the search covers.
const resyncChunk = 64 << 10

// resync finds the first intact record after the damaged one at c.off and
// returns its offset (c.limit when there is none) and how many records the
// damaged stretch held: the one at c.off plus every header met on the way
// that passed its check although its data did not.
func (c *cursor) resync() (int64, int, error) {
	if c.legacy {
		return c.legacyResync()
	}
	records := 1
	buf := make([]byte, resyncChunk+len(magic)-1) // overlap: a magic across chunks is found in the first
	for base := c.off + 1; base < c.limit; base += resyncChunk {
		n, err := c.f.ReadAt(buf[:min(int64(len(buf)), c.limit-base)], base)
		if err != nil && err != io.EOF {
			return 0, 0, err
		}
		for i := 0; ; i++ {
			j := bytes.Index(buf[i:n], magic[:])
			if j < 0 {
				break
			}
			if i += j; i >= resyncChunk {
				break
			}
			hdrOK, ok, err := c.intactAt(base + int64(i))
			if err != nil {
				return 0, 0, err
			}
			if ok {
				return base + int64(i), records, nil
			}
			if hdrOK {
				records++
			}
		}
		if err == io.EOF { // the file is shorter than the segment should be
			break
		}
	}
	return c.limit, records, nil
}

// legacyResync steps over a damaged record of the previous format. Those
// records have no magic, so the only safe way on is the damaged record's
// own length, and only when it leads to an intact record (or exactly to the
// end); otherwise the rest of the segment is given up, as that release did.
func (c *cursor) legacyResync() (int64, int, error) {
	var h [legacyHeaderLen]byte
	if _, err := c.f.ReadAt(h[:], c.off); err == nil {
		if n, _, ok := decodeHeader(h[:], true); ok {
			next := c.off + legacyHeaderLen + n
			if next == c.limit {
				return next, 1, nil
			}
			if next < c.limit {
				if _, ok, err := c.intactAt(next); err != nil || ok {
					return next, 1, err
				}
			}
		}
	} else if err != io.EOF {
		return 0, 0, err
	}
	return c.limit, 1, nil
}

// intactAt checks the record at off without moving the cursor: hdrOK when
// its header passes its check (for the current format), ok when the whole
// record is intact below the limit.
func (c *cursor) intactAt(off int64) (hdrOK, ok bool, err error) {
	hl := hdrLen(c.legacy)
	if c.limit-off < hl {
		return false, false, nil
	}
	h := make([]byte, hl)
	if _, err := c.f.ReadAt(h, off); err != nil {
		return false, false, shortIsDamage(err)
	}
	n, sum, hdrOK := decodeHeader(h, c.legacy)
	if !hdrOK {
		return false, false, nil
	}
	if n > c.limit-off-hl {
		return true, false, nil
	}
	data := make([]byte, n)
	if _, err := c.f.ReadAt(data, off+hl); err != nil {
		return true, false, shortIsDamage(err)
	}
	return true, crc32.Checksum(data, castagnoli) == sum, nil
}

// tornAt reports whether the bytes from off to size (the file's end) are
// a record that a crash cut short: too few for a header, or a header that
// passes its check and announces more data than the file holds.
func (c *cursor) tornAt(off, size int64) (bool, error) {
	hl := hdrLen(c.legacy)
	if size-off < hl {
		return true, nil
	}
	h := make([]byte, hl)
	if _, err := c.f.ReadAt(h, off); err != nil {
		return false, err
	}
	n, _, ok := decodeHeader(h, c.legacy)
	return ok && off+hl+n > size, nil
}

// sectionReader reads f from off up to limit, which may grow.
type sectionReader struct {
	f          *os.File
	off, limit int64
}

func (s *sectionReader) Read(p []byte) (int, error) {
	if s.off >= s.limit {
		return 0, io.EOF
	}
	if rem := s.limit - s.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := s.f.ReadAt(p, s.off)
	s.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}
