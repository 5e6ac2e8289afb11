package metrics

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"
)

// A summary is what the roll-up keeps of one outlet over one piece of time
// (an hour, a day, or the part of the current hour rolled so far). It is
// built so that pieces combine exactly (see combine): what metrics-v1 needs
// of a counter series over consecutive pieces is, per field, the first
// value, the last value and the increase between them by the step rule; of
// a bin, whether it reported and its last report; of coverage, the count of
// serving minutes, which is additive because whether a minute is serving
// does not depend on the window.

// fieldSum is one counter field of one series over a piece.
type fieldSum struct {
	first, last int64
	inc         int64 // sum of step() between consecutive values inside the piece
	tLast       int64 // ns of the last value
}

// seriesSum is one counter series (device, boot) over a piece.
type seriesSum struct {
	device string
	boot   int64
	mask   uint16 // fields with at least one value in the piece
	f      [numFields]fieldSum
	tLast  int64 // ns of the series' last point
	// nSeq and sumSeq fingerprint the raw points (count and sum of seq):
	// the roll-up compares them with InfluxDB to find hours that changed.
	nSeq, sumSeq int64
}

// binSum is one bin series (device, boot) over a piece.
type binSum struct {
	device       string
	boot         int64
	nRep         int64   // reports (points with fill_pct)
	tLast        int64   // ns of the last report (when nRep > 0)
	fill         float64 // its fill_pct
	nSeq, sumSeq int64
}

// summary is one outlet over one piece.
type summary struct {
	serving  int64 // minutes of the piece at which at least one bin was serving
	counting int64 // minutes at which some counter's last report was fresh
	series   []seriesSum
	bins     []binSum
}

// combineField appends b (later) to a (earlier), exactly: the step from
// a's last value to b's first is the one step neither piece could see.
func combineField(a *fieldSum, b fieldSum) {
	a.inc += step(a.last, b.first) + b.inc
	a.last = b.last
	a.tLast = b.tLast
}

// addSeries appends a later piece of the same series to s.
func (s *seriesSum) add(b *seriesSum) {
	for f := 0; f < numFields; f++ {
		bit := uint16(1) << f
		switch {
		case b.mask&bit == 0:
		case s.mask&bit == 0:
			s.f[f] = b.f[f]
		default:
			combineField(&s.f[f], b.f[f])
		}
	}
	s.mask |= b.mask
	s.tLast = max(s.tLast, b.tLast)
	s.nSeq += b.nSeq
	s.sumSeq += b.sumSeq
}

// combine appends b (the piece right after a) to a.
func (a *summary) combine(b *summary) {
	a.serving += b.serving
	a.counting += b.counting
	for i := range b.series {
		bs := &b.series[i]
		if s := a.findSeries(bs.device, bs.boot); s != nil {
			s.add(bs)
		} else {
			a.series = append(a.series, *bs)
		}
	}
	for i := range b.bins {
		bb := &b.bins[i]
		s := a.findBin(bb.device, bb.boot)
		if s == nil {
			a.bins = append(a.bins, *bb)
			continue
		}
		if bb.nRep > 0 {
			s.tLast, s.fill = bb.tLast, bb.fill
		}
		s.nRep += bb.nRep
		s.nSeq += bb.nSeq
		s.sumSeq += bb.sumSeq
	}
}

func (a *summary) findSeries(device string, boot int64) *seriesSum {
	for i := range a.series {
		if a.series[i].boot == boot && a.series[i].device == device {
			return &a.series[i]
		}
	}
	return nil
}

func (a *summary) findBin(device string, boot int64) *binSum {
	for i := range a.bins {
		if a.bins[i].boot == boot && a.bins[i].device == device {
			return &a.bins[i]
		}
	}
	return nil
}

// fingerprint sums the seq fingerprints of the counter and bin series.
func (a *summary) fingerprint() (counterN, counterSum, binN, binSum int64) {
	for _, s := range a.series {
		counterN += s.nSeq
		counterSum += s.sumSeq
	}
	for _, b := range a.bins {
		binN += b.nSeq
		binSum += b.sumSeq
	}
	return
}

// empty reports whether the summary holds nothing at all.
func (a *summary) empty() bool {
	return a.serving == 0 && a.counting == 0 && len(a.series) == 0 && len(a.bins) == 0
}

// sortSeries puts series and bins in a fixed order, so that equal
// summaries encode to equal bytes.
func (a *summary) sort() {
	sort.Slice(a.series, func(i, j int) bool {
		if a.series[i].device != a.series[j].device {
			return a.series[i].device < a.series[j].device
		}
		return a.series[i].boot < a.series[j].boot
	})
	sort.Slice(a.bins, func(i, j int) bool {
		if a.bins[i].device != a.bins[j].device {
			return a.bins[i].device < a.bins[j].device
		}
		return a.bins[i].boot < a.bins[j].boot
	})
}

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
