package metrics

import (
	"encoding/binary"
	"errors"
	"math"
)

// The encoding of a summary, used in memory for hours and in the roll-up
// measurement (base64 of it). Integers are varints (signed ones zigzag);
// counter values are stored as first, last-first and inc-(last-first),
// which are small. Format 2 (written now) stores times after the piece's
// start in ms when they are whole ms (telemetry's are), and a fill_pct with
// one decimal as an integer: a third smaller than format 1, which is still
// read.
//
//	version  serving  counting  nSeries
//	  per series: device  boot  nSeq  sumSeq  tLast  mask
//	    per field in mask: tLast(series)-tLast(field)  first  last-first  inc-(last-first)
//	nBins
//	  per bin: device  boot  nRep  nSeq  sumSeq  [tLast  fill, when nRep > 0]
//
// Format 1: times are plain ns, fill is 8 bytes. Format 2: a time is
// 2·ms+1 when whole ms, else 2·ns; a fill is 2·(10·fill)+1 when that is
// exact, else 0 and 8 bytes.
const summaryFormat = 2

var errBadSummary = errors.New("bad roll-up summary encoding")

func appendTimeOff(dst []byte, ns int64) []byte {
	if ns%1e6 == 0 {
		return binary.AppendVarint(dst, ns/1e6*2+1)
	}
	return binary.AppendVarint(dst, ns*2)
}

func (d *decoder) timeOff() int64 {
	v := d.varint()
	if d.version == 1 {
		return v
	}
	if v&1 != 0 {
		return (v >> 1) * 1e6
	}
	return v >> 1
}

func appendFill(dst []byte, f float64) []byte {
	if n := math.Round(f * 10); n >= 0 && n <= 1<<30 && float64(int64(n))/10 == f {
		return binary.AppendUvarint(dst, uint64(n)<<1|1)
	}
	dst = append(dst, 0)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

func (d *decoder) fill() float64 {
	if d.version != 1 {
		if u := d.uvarint(); u&1 != 0 {
			return float64(int64(u>>1)) / 10
		}
	}
	return math.Float64frombits(d.uint64())
}

func appendSummary(dst []byte, a *summary, start int64) []byte {
	dst = append(dst, summaryFormat)
	dst = binary.AppendUvarint(dst, uint64(a.serving))
	dst = binary.AppendUvarint(dst, uint64(a.counting))
	dst = binary.AppendUvarint(dst, uint64(len(a.series)))
	for i := range a.series {
		s := &a.series[i]
		dst = appendString(dst, s.device)
		dst = binary.AppendVarint(dst, s.boot)
		dst = binary.AppendVarint(dst, s.nSeq)
		dst = binary.AppendVarint(dst, s.sumSeq)
		dst = appendTimeOff(dst, s.tLast-start)
		dst = binary.AppendUvarint(dst, uint64(s.mask))
		for f := 0; f < numFields; f++ {
			if s.mask&(1<<f) == 0 {
				continue
			}
			fs := &s.f[f]
			d := fs.last - fs.first
			dst = appendTimeOff(dst, s.tLast-fs.tLast)
			dst = binary.AppendVarint(dst, fs.first)
			dst = binary.AppendVarint(dst, d)
			dst = binary.AppendVarint(dst, fs.inc-d)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(a.bins)))
	for i := range a.bins {
		b := &a.bins[i]
		dst = appendString(dst, b.device)
		dst = binary.AppendVarint(dst, b.boot)
		dst = binary.AppendVarint(dst, b.nRep)
		dst = binary.AppendVarint(dst, b.nSeq)
		dst = binary.AppendVarint(dst, b.sumSeq)
		if b.nRep > 0 {
			dst = appendTimeOff(dst, b.tLast-start)
			dst = appendFill(dst, b.fill)
		}
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeSummary decodes an encoded summary into a (reusing its slices).
// Device names come from in (nil: a new string each).
func decodeSummary(a *summary, b []byte, start int64, in *interner) error {
	d := decoder{b: b}
	if d.version = d.byte(); d.version != 1 && d.version != 2 {
		return errBadSummary
	}
	a.serving = int64(d.uvarint())
	a.counting = int64(d.uvarint())
	n := int(d.uvarint())
	if n > len(b) {
		return errBadSummary
	}
	a.series = a.series[:0]
	for i := 0; i < n && d.err == nil; i++ {
		var s seriesSum
		s.device = d.str(in)
		s.boot = d.varint()
		s.nSeq = d.varint()
		s.sumSeq = d.varint()
		s.tLast = d.timeOff() + start
		s.mask = uint16(d.uvarint())
		for f := 0; f < numFields; f++ {
			if s.mask&(1<<f) == 0 {
				continue
			}
			fs := &s.f[f]
			fs.tLast = s.tLast - d.timeOff()
			fs.first = d.varint()
			dl := d.varint()
			fs.last = fs.first + dl
			fs.inc = d.varint() + dl
		}
		a.series = append(a.series, s)
	}
	n = int(d.uvarint())
	if n > len(b) {
		return errBadSummary
	}
	a.bins = a.bins[:0]
	for i := 0; i < n && d.err == nil; i++ {
		var bs binSum
		bs.device = d.str(in)
		bs.boot = d.varint()
		bs.nRep = d.varint()
		bs.nSeq = d.varint()
		bs.sumSeq = d.varint()
		if bs.nRep > 0 {
			bs.tLast = d.timeOff() + start
			bs.fill = d.fill()
		}
		a.bins = append(a.bins, bs)
	}
	if d.err != nil || d.i != len(b) {
		return errBadSummary
	}
	return nil
}

// decoder reads varints and remembers the first error.
type decoder struct {
	b       []byte
	i       int
	err     error
	version byte
}

func (d *decoder) byte() byte {
	if d.i >= len(d.b) {
		d.err = errBadSummary
		return 0
	}
	c := d.b[d.i]
	d.i++
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b[d.i:])
	if n <= 0 {
		d.err = errBadSummary
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b[d.i:])
	if n <= 0 {
		d.err = errBadSummary
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) uint64() uint64 {
	if d.i+8 > len(d.b) {
		d.err = errBadSummary
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.i:])
	d.i += 8
	return v
}

func (d *decoder) str(in *interner) string {
	n := int(d.uvarint())
	if d.err != nil || n > len(d.b)-d.i {
		d.err = errBadSummary
		return ""
	}
	raw := d.b[d.i : d.i+n]
	d.i += n
	return in.get(raw)
}

// interner gives one string per device name, so that the evaluation's
// many comparisons of names are pointer comparisons. shared is read-only
// (a snapshot's names, used by concurrent requests); local takes the rest.
type interner struct {
	shared map[string]string
	local  map[string]string
}

func (in *interner) get(raw []byte) string {
	if in == nil {
		return string(raw)
	}
	if s, ok := in.shared[string(raw)]; ok { // no allocation for the lookup
		return s
	}
	if s, ok := in.local[string(raw)]; ok {
		return s
	}
	s := string(raw)
	if in.local != nil {
		in.local[s] = s
	}
	return s
}
