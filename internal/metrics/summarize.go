package metrics

import (
	"math/bits"
	"time"
)

// Summarizing raw points into one piece of time (summary.go), with the
// minute-by-minute rules of coverage and counter freshness.

const minuteNS = int64(time.Minute)

// lastRep is the last report of a device before some time: what decides
// whether the device serves (bins) or is fresh (counters) at the next
// minutes. Of two reports at the same time the later boot wins.
type lastRep struct {
	device string
	t      int64
	boot   int64
	ok     bool // bins: fill_pct below full; counters: always
	set    bool
}

func (l *lastRep) later(t, boot int64) bool {
	return !l.set || t > l.t || (t == l.t && boot >= l.boot)
}

// carry holds the last report of every device seen so far, by kind.
type carry struct {
	bins, counters []lastRep
}

func (c *carry) reset() { c.bins, c.counters = c.bins[:0], c.counters[:0] }

// sameName is a == b, first ruling out by the last byte: a city's device
// names share their length and all but the end ("b-00042-1", "b-00042-2"),
// so a plain compare reads both whole to tell two bins of an outlet apart.
func sameName(a, b string) bool {
	return len(a) == len(b) && (len(a) == 0 || a[len(a)-1] == b[len(b)-1]) && a == b
}

func findRep(l []lastRep, device string) *lastRep {
	for i := range l {
		if sameName(l[i].device, device) {
			return &l[i]
		}
	}
	return nil
}

func updateRep(l *[]lastRep, device string, t, boot int64, ok bool) {
	r := findRep(*l, device)
	if r == nil {
		*l = append(*l, lastRep{device: device})
		r = &(*l)[len(*l)-1]
	}
	if r.later(t, boot) {
		r.t, r.boot, r.ok, r.set = t, boot, ok, true
	}
}

// addSummary records the last reports of a summarized piece.
func (c *carry) addSummary(s *summary, full float64) {
	for i := range s.bins {
		b := &s.bins[i]
		if b.nRep > 0 {
			updateRep(&c.bins, b.device, b.tLast, b.boot, b.fill < full)
		}
	}
	for i := range s.series {
		se := &s.series[i]
		updateRep(&c.counters, se.device, se.tLast, se.boot, true)
	}
}

// merge adds another carry's last reports: the same as adding, one by one,
// the summaries that made it.
func (c *carry) merge(o *carry) {
	for _, l := range o.bins {
		updateRep(&c.bins, l.device, l.t, l.boot, l.ok)
	}
	for _, l := range o.counters {
		updateRep(&c.counters, l.device, l.t, l.boot, l.ok)
	}
}

// minuteSet is a set of minutes of [a, a+n·1m).
type minuteSet struct {
	a    int64
	n    int
	bits []uint64
}

func (m *minuteSet) init(a int64, n int) {
	m.a, m.n = a, n
	w := (n + 63) / 64
	if cap(m.bits) < w {
		m.bits = make([]uint64, w)
	}
	m.bits = m.bits[:w]
	clear(m.bits)
}

// mark adds the minutes m with lo <= m <= hi (ns, inclusive).
func (m *minuteSet) mark(lo, hi int64) {
	k0 := ceilDiv(lo-m.a, minuteNS)
	k1 := floorDiv(hi-m.a, minuteNS)
	if k0 < 0 {
		k0 = 0
	}
	if k1 > int64(m.n)-1 {
		k1 = int64(m.n) - 1
	}
	for k := k0; k <= k1; k++ {
		m.bits[k>>6] |= 1 << (k & 63)
	}
}

func (m *minuteSet) count() int64 {
	var c int
	for _, w := range m.bits {
		c += bits.OnesCount64(w)
	}
	return int64(c)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// markDevice marks the minutes of set at which one device serves (or is
// fresh): each report decides the minutes from its time until the next
// report, for at most stale, when it is ok. start is the device's last
// report before the reports given (may be unset); reps are in order.
func markDevice(set *minuteSet, start lastRep, reps func(yield func(t, boot int64, ok bool) bool), stale int64) {
	cur := start
	reps(func(t, boot int64, ok bool) bool {
		if cur.set && cur.ok {
			// cur decides [cur.t, t): the minutes before the next report.
			set.mark(cur.t, min(t-1, cur.t+stale))
		}
		if cur.later(t, boot) {
			cur = lastRep{t: t, boot: boot, ok: ok, set: true}
		}
		return true
	})
	if cur.set && cur.ok {
		set.mark(cur.t, cur.t+stale)
	}
}

// summarizeRaw summarizes one outlet over [a, e) (whole minutes) from raw
// data. The minutes need each device's last report before a: taken from c
// (the pieces before, may be nil) and from any raw reports before a.
// Raw points at or after e are ignored. c, when given, is advanced to e.
// noRaw is an outlet without raw data (read only).
var noRaw outletRaw

func summarizeRaw(r *outletRaw, a, e int64, opts Options, c *carry) summary {
	if c != nil && carriedOnlyFor(r, a, e) {
		return carriedOnly(c, a, int((e-a)/minuteNS), opts.Staleness.Nanoseconds())
	}
	if r == nil {
		r = &noRaw // no raw data, but devices may still serve from c
	}
	s := summarizePoints(r, a, e)
	countMinutes(&s, r, a, e, opts, c)
	if c != nil {
		c.addSummary(&s, opts.FullPct)
	}
	return s
}

// carriedOnlyFor reports whether summarizeRaw of [a, e) with the raw data
// r is carriedOnly's: it reads the carry and leaves it as it is.
func carriedOnlyFor(r *outletRaw, a, e int64) bool { return r == nil && (e-a)/minuteNS <= 64 }

// carriedOnly is summarizeRaw of a piece of n <= 64 minutes from a
// without raw data: only the carried last reports serve (or count), each
// from its time to staleness after (as markDevice), and the carry is left
// as it is. The newest minutes of a window usually hold no report of an
// outlet (one every 5 minutes), and this is every request's last piece.
func carriedOnly(c *carry, a int64, n int, stale int64) summary {
	var s summary
	mark := func(l []lastRep) int64 {
		var set uint64
		for i := range l {
			if !l[i].set || !l[i].ok {
				continue
			}
			k0 := max(ceilDiv(l[i].t-a, minuteNS), 0)
			k1 := min(floorDiv(l[i].t+stale-a, minuteNS), int64(n)-1)
			for k := k0; k <= k1; k++ {
				set |= 1 << k
			}
		}
		return int64(bits.OnesCount64(set))
	}
	s.serving, s.counting = mark(c.bins), mark(c.counters)
	return s
}

// summarizeLast is summarizeRaw without the minutes (serving and
// counting left 0): all that a piece before the window gives is its last
// values and last reports.
func summarizeLast(r *outletRaw, a, e int64, opts Options, c *carry) summary {
	if r == nil {
		r = &noRaw
	}
	s := summarizePoints(r, a, e)
	if c != nil {
		c.addSummary(&s, opts.FullPct)
	}
	return s
}

// summarizePoints is the points of [a, e) summarized: counter series and
// bin reports, without the minutes.
func summarizePoints(r *outletRaw, a, e int64) summary {
	var s summary
	for _, cs := range r.counters {
		var ss seriesSum
		any := false
		for i := range cs.pts {
			p := &cs.pts[i]
			if p.t < a || p.t >= e {
				continue
			}
			any = true
			ss.tLast = p.t
			if p.hasSeq {
				ss.nSeq++
				ss.sumSeq += p.seq
			}
			for f := 0; f < numFields; f++ {
				bit := uint16(1) << f
				if p.has&bit == 0 {
					continue
				}
				fs := &ss.f[f]
				if ss.mask&bit == 0 {
					*fs = fieldSum{first: p.v[f], last: p.v[f], tLast: p.t}
					ss.mask |= bit
					continue
				}
				fs.inc += step(fs.last, p.v[f])
				fs.last, fs.tLast = p.v[f], p.t
			}
		}
		if any {
			ss.device, ss.boot = cs.device, cs.boot
			s.series = append(s.series, ss)
		}
	}
	for _, b := range r.bins {
		for i := range b.reps {
			rep := &b.reps[i]
			if rep.t < a || rep.t >= e {
				continue
			}
			bs := s.findBin(b.device, rep.boot)
			if bs == nil {
				s.bins = append(s.bins, binSum{device: b.device, boot: rep.boot})
				bs = &s.bins[len(s.bins)-1]
			}
			if rep.hasFill {
				bs.nRep++
				bs.tLast, bs.fill = rep.t, rep.fill
			}
			if rep.hasSeq {
				bs.nSeq++
				bs.sumSeq += rep.seq
			}
		}
	}
	s.sort()
	return s
}

// countMinutes sets s's serving and counting minutes of [a, e), with each
// device's last report before a from c and the raw data.
func countMinutes(s *summary, r *outletRaw, a, e int64, opts Options, c *carry) {
	stale := opts.Staleness.Nanoseconds()
	n := int((e - a) / minuteNS)
	var set minuteSet
	set.init(a, n)
	for _, b := range r.bins {
		start := lastBefore(c, true, b.device)
		for i := range b.reps {
			rep := &b.reps[i]
			if rep.t < a && rep.hasFill && start.later(rep.t, rep.boot) {
				start = lastRep{t: rep.t, boot: rep.boot, ok: rep.fill < opts.FullPct, set: true}
			}
		}
		markDevice(&set, start, func(yield func(t, boot int64, ok bool) bool) {
			for i := range b.reps {
				rep := &b.reps[i]
				if rep.t >= a && rep.t < e && rep.hasFill && !yield(rep.t, rep.boot, rep.fill < opts.FullPct) {
					return
				}
			}
		}, stale)
	}
	if c != nil {
		// Devices the raw data does not hold may still serve from a report
		// before a.
		for _, l := range c.bins {
			if r.findBinDevice(l.device) == nil {
				markDevice(&set, l, func(func(t, boot int64, ok bool) bool) {}, stale)
			}
		}
	}
	s.serving = set.count()

	set.init(a, n)
	for _, dev := range r.counterDevices() {
		start := lastBefore(c, false, dev)
		merged := mergedTimes(r, dev, a, e, &start)
		markDevice(&set, start, func(yield func(t, boot int64, ok bool) bool) {
			for _, tb := range merged {
				if !yield(tb[0], tb[1], true) {
					return
				}
			}
		}, stale)
	}
	if c != nil {
		for _, l := range c.counters {
			if !r.hasCounterDevice(l.device) {
				markDevice(&set, l, func(func(t, boot int64, ok bool) bool) {}, stale)
			}
		}
	}
	s.counting = set.count()
}

func lastBefore(c *carry, bin bool, device string) lastRep {
	if c == nil {
		return lastRep{}
	}
	l := c.counters
	if bin {
		l = c.bins
	}
	if r := findRep(l, device); r != nil {
		return *r
	}
	return lastRep{}
}

// mergedTimes returns the (time, boot) of a counter device's points in
// [a, e) in order, and moves start to its last point before a.
func mergedTimes(r *outletRaw, dev string, a, e int64, start *lastRep) [][2]int64 {
	var out [][2]int64
	for _, s := range r.counters {
		if s.device != dev {
			continue
		}
		for i := range s.pts {
			t := s.pts[i].t
			switch {
			case t < a:
				if start.later(t, s.boot) {
					*start = lastRep{t: t, boot: s.boot, ok: true, set: true}
				}
			case t < e:
				out = append(out, [2]int64{t, s.boot})
			}
		}
	}
	sortPairs(out)
	return out
}

func sortPairs(p [][2]int64) {
	// Insertion sort: the lists are short and mostly in order already.
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && (p[j][0] < p[j-1][0] || (p[j][0] == p[j-1][0] && p[j][1] < p[j-1][1])); j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}
