package metrics

import (
	"sort"
	"time"
)

// A window is answered from pieces that cover [from-24h, to) without gaps
// or overlaps, in time order: whole days and whole hours from the roll-up,
// the partial summary of the current hour, and raw data for the rest (the
// hours cut by from or to, the minutes after the roll-up, anything outside
// the roll-up's range). Pieces before from only give the baseline (the last
// value of each series); pieces inside the window are combined.

type pieceKind uint8

const (
	pieceDay pieceKind = iota
	pieceHour
	piecePartial
	pieceRaw
)

type piece struct {
	kind       pieceKind
	start, end int64 // ns
	pre        bool  // before the window: baseline and last reports only
	// raw pieces: the closed hour whose cached raw data holds the piece,
	// or -1 for data read live for this request.
	cacheHour int64
	// carry: the last reports of this piece decide minutes of a raw piece
	// after it (within staleness), so the evaluation must track them.
	carry bool
}

// planWindow cuts [w.From-24h, w.To) into pieces against snapshot s
// (nil: everything raw, uncached). stale is the options' staleness.
func planWindow(s *snapshot, w Window, stale time.Duration) []piece {
	ps := cutWindow(s, w)
	// Only pieces that end within staleness before a raw piece can hold a
	// device's last report that decides that raw piece's minutes: tracking
	// last reports through the other pieces would be wasted work.
	next := int64(1<<63 - 1) // start of the next raw piece
	for i := len(ps) - 1; i >= 0; i-- {
		p := &ps[i]
		p.carry = p.kind == pieceRaw || p.end > next-stale.Nanoseconds()
		if p.kind == pieceRaw {
			next = p.start
		}
	}
	return ps
}

func cutWindow(s *snapshot, w Window) []piece {
	from, to := w.From.UnixNano(), w.To.UnixNano()
	look := from - dayNS
	// A piece an hour at most (mergeDays makes days of them in place): one
	// allocation, where growing it was about a seventh of one outlet's
	// question (CPU profile at 1,000 outlets).
	out := make([]piece, 0, (to-look)/hourNS+3)
	add := func(p piece) {
		// Merge adjacent live raw pieces of the same side: fewer, longer reads.
		if n := len(out); n > 0 && p.kind == pieceRaw && p.cacheHour < 0 {
			q := &out[n-1]
			if q.kind == pieceRaw && q.cacheHour < 0 && q.pre == p.pre && q.end == p.start {
				q.end = p.end
				return
			}
		}
		out = append(out, p)
	}
	for c := look; c < to; {
		h := floorDiv(c, hourNS) * hourNS
		end := min(h+hourNS, to)
		pre := c < from
		if pre {
			end = min(end, from)
		}
		switch {
		case s != nil && h >= s.r0 && h+hourNS <= s.r1:
			// A rolled hour. Whole: its summary. The first hour of the
			// look-back may start before from-24h: its summary still gives
			// the right baseline, because a series' last value in it counts
			// only when it is at or after from-24h (acc.apply skips values before acc.look).
			if (c == h && end == h+hourNS) || (pre && c == look && end == h+hourNS) {
				add(piece{kind: pieceHour, start: h, end: h + hourNS, pre: pre})
			} else {
				add(piece{kind: pieceRaw, start: c, end: end, pre: pre, cacheHour: h})
			}
		case s != nil && h == s.r1 && s.p > s.r1 && c == h && end >= s.p:
			add(piece{kind: piecePartial, start: h, end: s.p, pre: pre})
			if end > s.p {
				add(piece{kind: pieceRaw, start: s.p, end: end, pre: pre, cacheHour: -1})
			}
		default:
			add(piece{kind: pieceRaw, start: c, end: end, pre: pre, cacheHour: -1})
		}
		c = end
	}
	return mergeDays(s, out)
}

// mergeDays replaces runs of 24 hour pieces that make up a complete day on
// one side of from by one day piece.
func mergeDays(s *snapshot, ps []piece) []piece {
	if s == nil {
		return ps
	}
	out := ps[:0] // in place: a day is written only after its 24 hours are read
	for i := 0; i < len(ps); {
		p := ps[i]
		if p.kind == pieceHour && p.start%dayNS == 0 && s.dayComplete(p.start) && i+24 <= len(ps) {
			ok := true
			for j := 1; j < 24; j++ {
				q := ps[i+j]
				if q.kind != pieceHour || q.pre != p.pre || q.start != p.start+int64(j)*hourNS {
					ok = false
					break
				}
			}
			if ok {
				out = append(out, piece{kind: pieceDay, start: p.start, end: p.start + dayNS, pre: p.pre})
				i += 24
				continue
			}
		}
		out = append(out, p)
		i++
	}
	return out
}

// rawNeeds lists what the pieces of some windows need from raw data: the
// closed hours to read whole (cacheable) and the live ranges.
type rawNeeds struct {
	hours []int64
	live  [][2]int64
}

func needsOf(plans [][]piece) rawNeeds {
	var n rawNeeds
	hours := map[int64]bool{}
	for _, ps := range plans {
		for _, p := range ps {
			if p.kind != pieceRaw {
				continue
			}
			if p.cacheHour >= 0 {
				hours[p.cacheHour] = true
			} else {
				n.live = append(n.live, [2]int64{p.start, p.end})
			}
		}
	}
	for h := range hours {
		n.hours = append(n.hours, h)
	}
	sort.Slice(n.hours, func(i, j int) bool { return n.hours[i] < n.hours[j] })
	n.live = coalesce(n.live)
	return n
}

// coalesce sorts ranges and merges those that touch or overlap.
func coalesce(r [][2]int64) [][2]int64 {
	sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
	out := r[:0]
	for _, x := range r {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

// span is the total time of some ranges.
func span(r [][2]int64) time.Duration {
	var d int64
	for _, x := range r {
		d += x[1] - x[0]
	}
	return time.Duration(d)
}
