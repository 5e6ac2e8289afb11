package metrics

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync"
	"time"
)

// Compact days. A day block holds 24 encoded hour summaries (~3 KB per
// outlet-day in the simulator's city), yet a window needs the hours of an
// old day only where the window starts inside that day (its look-back and
// first hours); every whole day is answered from the day's summary. So once
// a day is complete and older than the index's keep (default 48 hours),
// its hours are kept deflated in one buffer (~4× smaller) and inflated when
// a window needs them: runs of whole pieces are combined once per
// generation of the index (runs.go), so an old day is inflated about once
// an hour per outlet and window length, not once per request.
//
// The compact form is exactly the hours' bytes: every answer from a compact
// day equals the answer from the day as it was.
//
//	z = uvarint(len(raw)) deflate(raw)
//	raw = 24 × uvarint(len(hour i)) then the hours back to back

// defaultKeep: days that end within this of the newest rolled hour keep
// their hours as they are (the windows of the last day or two start there
// every hour).
const defaultKeep = 48 * time.Hour

var errBadCompact = errors.New("bad compact day block")

var flateWriters = sync.Pool{New: func() any {
	w, err := flate.NewWriter(io.Discard, flate.BestSpeed)
	if err != nil {
		panic(err) // only for a bad level
	}
	return w
}}

var flateReaders = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// compact returns b with its hours deflated (its day summary kept).
func (b *dayBlock) compact() (*dayBlock, error) {
	var hours [24][]byte
	for i := range hours {
		hours[i] = b.hour(i)
	}
	if err := shiftHours(&hours, -1); err != nil {
		return nil, err
	}
	n := 0
	for _, h := range hours {
		n += len(h)
	}
	raw := make([]byte, 0, n+24*2)
	for _, h := range hours {
		raw = binary.AppendUvarint(raw, uint64(len(h)))
	}
	for _, h := range hours {
		raw = append(raw, h...)
	}
	var buf bytes.Buffer
	buf.Write(binary.AppendUvarint(nil, uint64(len(raw))))
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(raw) // a bytes.Buffer does not fail
	_ = w.Close()
	flateWriters.Put(w)
	return &dayBlock{z: bytes.Clone(buf.Bytes()), sum: b.sum}, nil
}

// Before they are deflated, the hours of a compact day are written as
// differences from the hour before: the counters' values, the report
// sequence sums and the boots grow through the day, so that each hour's
// bytes are nearly those of the hour before (deflate then stores them in a
// few bytes). A series or bin is taken as the same as the previous hour's
// when it is at the same position with the same device.

// shiftHours writes each hour against the hour before (sign -1) or back
// (sign +1). Times are not touched: an hour's times are offsets from its
// start in its encoding, and decoding and encoding again from one start (0
// here) gives the same offsets.
func shiftHours(hours *[24][]byte, sign int64) error {
	var prev, cur summary // prev: the hour before, its own values
	for i := range 24 {
		if hours[i] == nil {
			continue
		}
		if err := decodeSummary(&cur, hours[i], 0, nil); err != nil {
			return err
		}
		out := cur.clone()
		out.shift(&prev, sign)
		hours[i] = appendSummary(nil, &out, 0)
		if sign > 0 {
			cur = out
		}
		prev, cur = cur, prev
	}
	return nil
}

// clone copies s with its own slices.
func (s *summary) clone() summary {
	c := *s
	c.series = append([]seriesSum(nil), s.series...)
	c.bins = append([]binSum(nil), s.bins...)
	return c
}

// shift adds sign × p's growing values to s's, series and bins matched by
// position and device.
func (s *summary) shift(p *summary, sign int64) {
	for i := range min(len(s.series), len(p.series)) {
		a, q := &s.series[i], &p.series[i]
		if a.device != q.device {
			continue
		}
		a.boot += sign * q.boot
		a.nSeq += sign * q.nSeq
		a.sumSeq += sign * q.sumSeq
		for f := range numFields {
			if a.mask&q.mask&(1<<f) != 0 {
				// first and last move together: the encoding keeps last-first.
				a.f[f].first += sign * q.f[f].last
				a.f[f].last += sign * q.f[f].last
			}
		}
	}
	for i := range min(len(s.bins), len(p.bins)) {
		a, q := &s.bins[i], &p.bins[i]
		if a.device != q.device {
			continue
		}
		a.boot += sign * q.boot
		a.nSeq += sign * q.nSeq
		a.sumSeq += sign * q.sumSeq
	}
}

// unpack returns a compact block's hours inflated (b itself when it is not
// compact).
func (b *dayBlock) unpack() (*dayBlock, error) {
	if !b.isCompact() {
		return b, nil
	}
	z, err := b.compactHours()
	if err != nil {
		return nil, err
	}
	n, k := binary.Uvarint(z)
	if k <= 0 || n > 1<<24 {
		return nil, errBadCompact
	}
	raw := make([]byte, n)
	r := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(z[k:]), nil); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, errBadCompact
	}
	out := &dayBlock{off: new([25]uint32)}
	d := decoder{b: raw}
	var at uint32
	for i := 0; i < 24; i++ {
		out.off[i] = at
		at += uint32(d.uvarint())
	}
	out.off[24] = at
	if d.err != nil || int(at) != len(raw)-d.i {
		return nil, errBadCompact
	}
	var hours [24][]byte
	body := raw[d.i:]
	for i := range hours {
		if out.off[i] != out.off[i+1] {
			hours[i] = body[out.off[i]:out.off[i+1]]
		}
	}
	if err := shiftHours(&hours, +1); err != nil {
		return nil, err
	}
	ob := packDay(&hours)
	ob.sum = b.sum
	return ob, nil
}

// opener inflates compact blocks for one caller, keeping the last one: a
// caller that walks an outlet's hours in time order inflates each day once.
// The zero value is ready; an opener is not shared between goroutines.
type opener struct {
	from, to *dayBlock
}

func (o *opener) open(b *dayBlock) (*dayBlock, error) {
	if b == nil || !b.isCompact() {
		return b, nil
	}
	if o.from == b {
		return o.to, nil
	}
	ub, err := b.unpack()
	if err != nil {
		return nil, err
	}
	o.from, o.to = b, ub
	return ub, nil
}

// hour returns the encoded summary of an outlet's hour (nil: no data),
// inflating its day through o when the day is compact.
func (s *snapshot) hourVia(o *opener, outlet string, h int64) ([]byte, error) {
	day := floorDiv(h, dayNS) * dayNS
	b, err := o.open(s.block(outlet, day))
	if b == nil || err != nil {
		return nil, err
	}
	return b.hour(int((h - day) / hourNS)), nil
}

// compactAll compacts the given blocks in place, on every core: at a
// restart this is every outlet's every old day. It fails when a block does
// not decode (the index holds only what it encoded itself: a bug).
func compactAll(blocks []blockAt) error {
	workers := min(runtime.GOMAXPROCS(0), len(blocks)/64+1)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(blocks); i += workers {
				c, err := (*blocks[i].p).compact()
				if err != nil {
					errs[w] = err
					return
				}
				*blocks[i].p = c
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
