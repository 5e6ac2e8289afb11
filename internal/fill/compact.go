package fill

import (
	"encoding/binary"
	"math"
	"slices"
)

// The older days of a bin's reports are kept compact: once a day has
// fallen HotDays behind the tracker's day, its reports are encoded as one
// chunk of varints (times as their distance from a grid of the bin's usual
// step, which a report far off the grid, after a gap, restarts; readings
// as the change in tenths of a point when every reading of the day is a
// whole tenth, else as the float32's bits XORed with the one before),
// about 4 bytes a report instead of 8 (2 for the time of a report 6 s
// off the grid, 1 for a reading). Only the day's curve (learned once a
// day), the reprint of a list for a time more than HotDays back, a "full
// since" reaching back that far (once per change of the bin: its memo
// keeps the times it needs) and a late report for such a day read them;
// they decode a bin's compact days at once, into the view that asked (a
// reader's own copy, dropped with it). A day is compacted once, for all
// bins, outside the index's lock (compact, below).

// HotDays is how many whole days before the current one stay uncompressed:
// a prediction at the current time looks back Cycle (48 h), so the days it
// reads are all hot.
const HotDays = 2

// chunk is a run of a bin's reports within one UTC day, compactly
// encoded (the load may split a day in two chunks).
type chunk struct {
	first, last int64   // ms: the times of its first and last report
	lastPct     float32 // the reading of its last report (noCycle's "the one before", without decoding)
	n           int32   // reports
	step        int64   // ms: the grid's step (the median step between reports)
	tenths      bool    // readings encoded as tenths of a point
	data        []byte
}

// tenthsOf returns the reading as a whole number of tenths, when decoding
// that number gives the same float32 back, bit for bit (−0 does not).
func tenthsOf(p float32) (int64, bool) {
	f := math.Round(float64(p) * 10)
	if math.IsNaN(f) || math.Abs(f) > 1<<40 {
		return 0, false
	}
	k := int64(f)
	return k, math.Float32bits(float32(float64(k)/10)) == math.Float32bits(p)
}

// encodeChunk encodes the reports (ts[i] ms, ps[i]), all of one day, in
// time order.
func encodeChunk(ts []int64, ps []float32) chunk {
	n := len(ts)
	c := chunk{first: ts[0], last: ts[n-1], lastPct: ps[n-1], n: int32(n), tenths: true}
	for _, p := range ps {
		if _, ok := tenthsOf(p); !ok {
			c.tenths = false
			break
		}
	}
	if n > 1 {
		steps := make([]int64, n-1)
		for i := range steps {
			steps[i] = ts[i+1] - ts[i]
		}
		slices.Sort(steps)
		c.step = steps[len(steps)/2]
	}
	buf := make([]byte, 0, 3*n)
	g := ts[0]
	for _, t := range ts[1:] {
		buf = binary.AppendVarint(buf, t-c.next(&g, t))
	}
	var prevK int64
	var prevBits uint32
	for _, p := range ps {
		if c.tenths {
			k, _ := tenthsOf(p)
			buf = binary.AppendVarint(buf, k-prevK)
			prevK = k
		} else {
			b := math.Float32bits(p)
			buf = binary.AppendUvarint(buf, uint64(b^prevBits))
			prevBits = b
		}
	}
	c.data = slices.Clip(buf)
	return c
}

// next moves the grid point g a step on and returns it; a time t half a
// step or more off it restarts the grid at t (encoder and decoder both
// call it, with the time just encoded or decoded).
func (c *chunk) next(g *int64, t int64) int64 {
	*g += c.step
	p := *g
	if d := t - p; d >= c.step/2 || -d >= c.step/2 || c.step <= 0 {
		*g = t
	}
	return p
}

// decode appends the chunk's times (ms) and readings to ts and ps.
func (c *chunk) decode(ts []int64, ps []float32) ([]int64, []float32) {
	data := c.data
	g := c.first
	ts = append(ts, g)
	for i := int32(1); i < c.n; i++ {
		d, k := binary.Varint(data)
		data = data[k:]
		p := g + c.step
		t := p + d
		c.next(&g, t)
		ts = append(ts, t)
	}
	var prevK int64
	var prevBits uint32
	for range c.n {
		if c.tenths {
			d, k := binary.Varint(data)
			data = data[k:]
			prevK += d
			ps = append(ps, float32(float64(prevK)/10))
		} else {
			x, k := binary.Uvarint(data)
			data = data[k:]
			prevBits ^= uint32(x)
			ps = append(ps, math.Float32frombits(prevBits))
		}
	}
	return ts, ps
}

// decoded is a view's compact days, decoded on first use.
type decoded struct {
	t []int64
	p []float32
}

// searchOff returns the first index of off with base + off >= t.
func searchOff(base int64, off []uint32, t int64) int {
	if t <= base {
		return 0
	}
	d := t - base
	if d > int64(^uint32(0)) {
		return len(off)
	}
	i, _ := slices.BinarySearch(off, uint32(d))
	return i
}

// compact encodes, per bin, the hot reports before split (a day start) as
// compact days. It changes no report, and no report's index in a view, so
// what was worked out from the reports (profiles, fits, "full since")
// stays good.
//
// It encodes without the index's lock — the tracker's goroutine is the
// index's only writer (merge, trim, compact), so no series changes under
// it — and swaps the results in under the write lock a batch of bins at a
// time: readers wait for a swap, not for a city's day of encoding (~0.5 s
// for 20,000 bins, BenchmarkCompactCityDay).
func (x *index) compact(split int64) {
	x.mu.RLock()
	all := make([]*series, 0, len(x.bins))
	for _, s := range x.bins {
		all = append(all, s)
	}
	x.mu.RUnlock()
	const batch = 256
	var done []compacted
	for i := 0; i < len(all); i += batch {
		done = done[:0]
		for _, s := range all[i:min(i+batch, len(all))] {
			if c, ok := s.compacted(split); ok {
				done = append(done, c)
			}
		}
		x.mu.Lock()
		for _, c := range done {
			c.s.old, c.s.oldN = c.old, c.oldN
			c.s.base, c.s.off, c.s.pct = c.base, c.off, c.pct
		}
		x.mu.Unlock()
	}
}

// compacted is a series' reports with those before a split compact, made
// but not yet swapped in.
type compacted struct {
	s    *series
	old  []chunk
	oldN int
	base int64
	off  []uint32
	pct  []float32
}

// compacted encodes the series' hot reports before split, in new arrays
// (readers may hold the old ones); ok is false when there are none.
func (s *series) compacted(split int64) (compacted, bool) {
	k := searchOff(s.base, s.off, split)
	if k == 0 {
		return compacted{}, false
	}
	old := slices.Clip(s.old) // appending makes a new array
	ts := make([]int64, k)
	for i := range ts {
		ts[i] = s.base + int64(s.off[i])
	}
	for a := 0; a < k; {
		b := a + searchOff(s.base, s.off[a:k], DayStart(ts[a])+dayMs)
		old = append(old, encodeChunk(ts[a:b], s.pct[a:b]))
		a = b
	}
	c := compacted{s: s, old: old, oldN: s.oldN + k}
	c.base, c.off, c.pct = dropFirst(s.base, s.off, s.pct, k)
	return c, true
}

// dropFirst drops the first k of the reports (base + off[i], pct[i]), in
// new arrays (readers may hold the old ones), the base moved to the first
// one left.
func dropFirst(base int64, off []uint32, pct []float32, k int) (int64, []uint32, []float32) {
	if k == len(off) {
		return 0, nil, nil
	}
	nb := base + int64(off[k])
	rest := make([]uint32, len(off)-k)
	for i := range rest {
		rest[i] = uint32(base + int64(off[k+i]) - nb)
	}
	return nb, rest, slices.Clone(pct[k:])
}

// trimOld drops the compact reports before t; it reports whether it
// dropped any.
func (s *series) trimOld(t int64) bool {
	j := 0
	for j < len(s.old) && s.old[j].last < t {
		s.oldN -= int(s.old[j].n)
		j++
	}
	cut := j < len(s.old) && s.old[j].first < t
	if j == 0 && !cut {
		return false
	}
	old := slices.Clone(s.old[j:])
	if cut {
		// The day that holds t: its reports from t on, encoded again.
		c := &old[0]
		ts, ps := c.decode(nil, nil)
		i, _ := slices.BinarySearch(ts, t)
		s.oldN -= i
		*c = encodeChunk(ts[i:], ps[i:])
	}
	if len(old) == 0 {
		old = nil
	}
	s.old = old
	return true
}

// thawLocked makes every report hot again (for a merge into a compact
// day); the next compact encodes them again.
func (s *series) thawLocked() {
	if s.oldN == 0 {
		return
	}
	v := s.view()
	n := v.len()
	base := v.t(0)
	off := make([]uint32, n)
	pct := make([]float32, n)
	for i := range n {
		off[i], pct[i] = uint32(v.t(i)-base), v.p(i)
	}
	s.old, s.oldN, s.base, s.off, s.pct = nil, 0, base, off, pct
}

// bytes is what the series' reports take: 8 bytes a hot report and the
// compact days' encodings.
func (s *series) bytes() int {
	n := 8 * len(s.off)
	for i := range s.old {
		n += len(s.old[i].data) + 56
	}
	return n
}
