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
func (b *dayBlock) compact() *dayBlock {
	raw := make([]byte, 0, len(b.data)+24*2)
	for i := 0; i < 24; i++ {
		raw = binary.AppendUvarint(raw, uint64(b.off[i+1]-b.off[i]))
	}
	raw = append(raw, b.data...)
	var buf bytes.Buffer
	buf.Write(binary.AppendUvarint(nil, uint64(len(raw))))
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(raw) // a bytes.Buffer does not fail
	_ = w.Close()
	flateWriters.Put(w)
	return &dayBlock{z: bytes.Clone(buf.Bytes()), sum: b.sum}
}

// unpack returns a compact block's hours inflated (b itself when it is not
// compact).
func (b *dayBlock) unpack() (*dayBlock, error) {
	if b.z == nil {
		return b, nil
	}
	n, k := binary.Uvarint(b.z)
	if k <= 0 || n > 1<<24 {
		return nil, errBadCompact
	}
	raw := make([]byte, n)
	r := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(b.z[k:]), nil); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, errBadCompact
	}
	out := &dayBlock{sum: b.sum, off: new([25]uint32)}
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
	out.data = raw[d.i:len(raw):len(raw)]
	return out, nil
}

// opener inflates compact blocks for one caller, keeping the last one: a
// caller that walks an outlet's hours in time order inflates each day once.
// The zero value is ready; an opener is not shared between goroutines.
type opener struct {
	from, to *dayBlock
}

func (o *opener) open(b *dayBlock) (*dayBlock, error) {
	if b == nil || b.z == nil {
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
// restart this is every outlet's every old day.
func compactAll(blocks []**dayBlock) {
	workers := min(runtime.GOMAXPROCS(0), len(blocks)/64+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(blocks); i += workers {
				*blocks[i] = (*blocks[i]).compact()
			}
		}()
	}
	wg.Wait()
}
