package metrics

import "slices"

// seriesAcc is one counter series while a window is evaluated: its
// baseline (last values before the window, within 24 h) and the combined
// pieces inside the window.
type seriesAcc struct {
	device   string
	boot     int64
	baseMask uint16
	base     [numFields]int64
	win      seriesSum
	inWin    bool
}

// tally is what counter series add to an outlet's parcels, by field.
type tally [numFields]int64

// add adds (sign 1) or takes away (sign -1) what the series gives the
// window: from its baseline (0 without one) to its first value, and its
// increments after.
func (sa *seriesAcc) add(t *tally, sign int64) {
	if !sa.inWin {
		return
	}
	for f := 0; f < numFields; f++ {
		bit := uint16(1) << f
		if sa.win.mask&bit == 0 {
			continue
		}
		var b int64 // a series without a value in the look-back counts from 0
		if sa.baseMask&bit != 0 {
			b = sa.base[f]
		}
		t[f] += sign * (step(b, sa.win.f[f].first) + sa.win.f[f].inc)
	}
}

// acc evaluates one outlet over one window, piece by piece.
type acc struct {
	look    int64 // from-24h: baseline values before it do not count
	full    float64
	series  []seriesAcc
	serving int64
	count   int64
	lists
	// head, when the evaluation started from one (runs.go): its series
	// not yet copied into series count in fixed; taken marks those copied.
	// Its lists are used as they are (shared) until a piece changes them
	// (own): most outlets get no report in a request's newest minutes.
	head   *head
	fixed  tally
	taken  []bool
	shared bool
	spare  lists   // the acc's own arrays while shared, for reuse
	tmp    summary // decoding buffer
	intern *interner
	open   opener // the compact day last inflated
	// runs, when set, keeps the combination of each run of whole pieces
	// (runs.go) for the next requests, heads the state after a window's
	// stable pieces (apart: a window asked at every minute must not push
	// the runs out); runEnts and headEnts hold the entries this request
	// has used (every outlet asks for the same few).
	runs     *runCache[kept]
	heads    *runCache[head]
	runEnts  used[kept]
	headEnts used[head]
	partEnts used[head] // heads with the partial hour (fromHead)
	// plan and planStable: the plan every outlet of a window is evaluated
	// on, and stablePrefix of it, worked out once.
	plan                *piece
	planLen, planStable int
}

// stable returns stablePrefix(ps), once per plan.
func (a *acc) stable(ps []piece) int {
	if len(ps) == 0 {
		return 0
	}
	if a.plan != &ps[0] || a.planLen != len(ps) {
		a.plan, a.planLen, a.planStable = &ps[0], len(ps), stablePrefix(ps)
	}
	return a.planStable
}

// lists are the devices seen in a window and their last reports.
type lists struct {
	binDevs []string // bin devices with a report in the window
	cntDevs []string // counter devices with a point in the window
	carry   carry
}

// copyOf returns l's contents in the arrays of into.
func (l *lists) copyOf(into lists) lists {
	into.binDevs = append(into.binDevs[:0], l.binDevs...)
	into.cntDevs = append(into.cntDevs[:0], l.cntDevs...)
	into.carry.bins = append(into.carry.bins[:0], l.carry.bins...)
	into.carry.counters = append(into.carry.counters[:0], l.carry.counters...)
	return into
}

// head is one outlet's evaluation state after the stable pieces of a
// window (runs.go); read-only once kept.
type head struct {
	series         []seriesAcc
	fixed          tally // what series give
	serving, count int64
	lists
	// The lists of most outlets (two bins and a counter) fit in the head
	// itself: a request then reads one object per outlet, not five
	// scattered ones (at 10,000 outlets each was a cache miss).
	reps [4]lastRep
	devs [4]string
}

// freeze returns the acc's state as a head. Its lists have no room to
// grow: an append to one shared with a request cannot write in its array.
func (a *acc) freeze() *head {
	h := &head{series: append([]seriesAcc(nil), a.series...), serving: a.serving, count: a.count}
	if a.head != nil { // thawed: the head's series not copied are still its
		for i := range a.head.series {
			if !a.taken[i] {
				h.series = append(h.series, a.head.series[i])
			}
		}
	}
	for i := range h.series {
		h.series[i].add(&h.fixed, 1)
	}
	h.carry.bins, h.carry.counters = split(h.reps[:], a.carry.bins, a.carry.counters)
	h.binDevs, h.cntDevs = split(h.devs[:], a.binDevs, a.cntDevs)
	return h
}

// split copies x and y into buf when they fit, else into arrays of their
// own, and returns the copies without room to grow.
func split[T any](buf []T, x, y []T) ([]T, []T) {
	nx, ny := len(x), len(y)
	if nx+ny > len(buf) {
		return slices.Clip(slices.Clone(x)), slices.Clip(slices.Clone(y))
	}
	copy(buf, x)
	copy(buf[nx:], y)
	return buf[:nx:nx], buf[nx : nx+ny : nx+ny]
}

// thaw starts the evaluation (after reset) from h, its lists shared.
func (a *acc) thaw(h *head) {
	a.head, a.fixed = h, h.fixed
	a.taken = slices.Grow(a.taken[:0], len(h.series))[:len(h.series)]
	clear(a.taken)
	a.serving, a.count = h.serving, h.count
	if !a.shared {
		a.spare = a.lists
	}
	a.lists, a.shared = h.lists, true
}

// own makes the lists the acc's own before a change: copied from the
// head's when they are shared.
func (a *acc) own() {
	if a.shared {
		a.lists, a.shared = a.copyOf(a.spare), false
	}
}

// run returns the combination of the run ps for one outlet (number num):
// kept from an earlier request of the same generation, or combined now and
// kept.
func (a *acc) run(s *snapshot, outlet string, num int, ps []piece) (*kept, error) {
	e := a.runEnts.of(a.runs, runKey{gen: s.gen, start: ps[0].start, end: ps[len(ps)-1].end, pre: ps[0].pre}, s.nOut)
	if k := e.get(num); k != nil {
		return k, nil
	}
	sum, err := a.combineRun(s, outlet, ps)
	if err != nil {
		return nil, err
	}
	k := keep(sum, a.full)
	e.put(num, k)
	return k, nil
}

// rawPiece applies the raw piece p of one outlet, summarized now (a head
// keeps what a request cut from closed hours, runs.go).
func (a *acc) rawPiece(outlet string, p piece, opts Options, rawFor func(piece) rawSet) {
	summarize := summarizeRaw
	if p.pre {
		summarize = summarizeLast // before the window: no minutes
	}
	var r *outletRaw
	if rs := rawFor(p); rs != nil {
		r = rs[outlet]
	}
	if p.pre || !carriedOnlyFor(r, p.start, p.end) {
		a.own() // the summary advances the carry
	}
	sum := summarize(r, p.start, p.end, opts, &a.carry)
	a.apply(&sum, p.pre, false)
}

func (a *acc) reset(look int64, full float64) {
	a.look, a.full = look, full
	a.series = a.series[:0]
	if a.shared {
		a.lists, a.shared = a.spare, false
	}
	a.binDevs = a.binDevs[:0]
	a.cntDevs = a.cntDevs[:0]
	a.serving, a.count = 0, 0
	a.carry.reset()
	a.head, a.fixed = nil, tally{}
}

// seriesOf returns the series (device, boot), copied from the head when it
// is there (and taken out of the head's sum), new when it is nowhere.
func (a *acc) seriesOf(device string, boot int64) *seriesAcc {
	for i := range a.series {
		if a.series[i].boot == boot && sameName(a.series[i].device, device) {
			return &a.series[i]
		}
	}
	if h := a.head; h != nil {
		for i := range h.series {
			hs := &h.series[i]
			if hs.boot == boot && !a.taken[i] && sameName(hs.device, device) {
				a.taken[i] = true
				hs.add(&a.fixed, -1)
				a.series = append(a.series, *hs)
				return &a.series[len(a.series)-1]
			}
		}
	}
	a.series = append(a.series, seriesAcc{device: device, boot: boot})
	return &a.series[len(a.series)-1]
}

func addDevice(l *[]string, d string) {
	for _, x := range *l {
		if sameName(x, d) {
			return
		}
	}
	*l = append(*l, d)
}

// apply adds a summarized piece. withCarry is false for raw pieces, whose
// summarizer has already advanced the carry, and for pieces whose last
// reports cannot matter (see planWindow).
func (a *acc) apply(s *summary, pre, withCarry bool) {
	if withCarry || len(s.series) > 0 || len(s.bins) > 0 {
		a.own()
	}
	if withCarry {
		a.carry.addSummary(s, a.full)
	}
	if pre {
		for i := range s.series {
			ss := &s.series[i]
			var sa *seriesAcc
			for f := 0; f < numFields; f++ {
				bit := uint16(1) << f
				if ss.mask&bit == 0 || ss.f[f].tLast < a.look {
					continue
				}
				if sa == nil {
					sa = a.seriesOf(ss.device, ss.boot)
				}
				sa.base[f] = ss.f[f].last
				sa.baseMask |= bit
			}
		}
		return
	}
	a.serving += s.serving
	a.count += s.counting
	for i := range s.series {
		ss := &s.series[i]
		sa := a.seriesOf(ss.device, ss.boot)
		if !sa.inWin {
			sa.win = *ss
			sa.inWin = true
		} else {
			sa.win.add(ss)
		}
		addDevice(&a.cntDevs, ss.device)
	}
	for i := range s.bins {
		if s.bins[i].nRep > 0 {
			addDevice(&a.binDevs, s.bins[i].device)
		}
	}
}

// result is the outlet's figures once every piece is applied.
func (a *acc) result(minutes int) Outlet {
	out := Outlet{
		WindowMinutes:           minutes,
		ServingMinutes:          int(a.serving),
		CounterReportingMinutes: int(a.count),
		BinsReporting:           len(a.binDevs),
		CountersReporting:       len(a.cntDevs),
	}
	t := a.fixed
	for i := range a.series {
		a.series[i].add(&t, 1)
	}
	for f, v := range t {
		if f == fieldBoxes {
			out.Parcels.BoxesRecovered += v
		} else {
			out.Parcels.ByClass[f] += v
		}
	}
	return out
}

// evalOutlet answers one outlet over one window from its pieces. rawFor
// gives the raw data that holds a raw piece.
func (a *acc) evalOutlet(s *snapshot, outlet string, w Window, ps []piece, opts Options, rawFor func(piece) rawSet) (Outlet, error) {
	return a.eval(s, outlet, s.outlets[outlet], w, ps, opts, rawFor)
}

// eval is evalOutlet with the outlet's history looked up (nil: none).
func (a *acc) eval(s *snapshot, outlet string, hist *outletHist, w Window, ps []piece, opts Options, rawFor func(piece) rawSet) (Outlet, error) {
	a.reset(w.From.UnixNano()-dayNS, opts.FullPct)
	num := -1
	if hist != nil {
		num = hist.num
	}
	if k := a.stable(ps); a.heads != nil && num >= 0 && k > 0 {
		if err := a.fromHead(s, outlet, num, w, ps[:k], opts, rawFor); err != nil {
			return Outlet{}, err
		}
		ps = ps[k:]
	}
	if err := a.pieces(s, outlet, num, ps, opts, rawFor, false); err != nil {
		return Outlet{}, err
	}
	return a.result(w.Minutes()), nil
}

// fromHead starts the evaluation from the head of the window's stable
// pieces ps: kept, or made now (with every last report, whatever pieces
// follow). When ps ends with the partial hour, two heads are kept: the one
// before it, which lives as long as the generation, and the one with it,
// made from the first for each new set of partial summaries (every cycle)
// at the cost of one apply per outlet.
func (a *acc) fromHead(s *snapshot, outlet string, num int, w Window, ps []piece, opts Options, rawFor func(piece) rawSet) error {
	key := runKey{gen: s.gen, start: ps[0].start, end: ps[len(ps)-1].end, cut: w.From.UnixNano()}
	base := ps
	var withPartial *runEntry[head]
	if ps[len(ps)-1].kind == piecePartial {
		pkey := key
		pkey.pgen = s.pgen
		withPartial = a.partEnts.of(a.heads, pkey, s.nOut)
		if h := withPartial.get(num); h != nil {
			a.thaw(h)
			return nil
		}
		base = ps[:len(ps)-1]
		if len(base) > 0 {
			key.end = base[len(base)-1].end
		}
	}
	if len(base) > 0 {
		e := a.headEnts.of(a.heads, key, s.nOut)
		if h := e.get(num); h != nil {
			a.thaw(h)
		} else {
			if err := a.pieces(s, outlet, num, base, opts, rawFor, true); err != nil {
				return err
			}
			e.put(num, a.freeze())
		}
	}
	if withPartial != nil {
		if err := a.pieces(s, outlet, num, ps[len(base):], opts, rawFor, true); err != nil {
			return err
		}
		withPartial.put(num, a.freeze())
	}
	return nil
}

// pieces applies the pieces ps of one outlet (number num) in order. With
// allLast, every piece's last reports go into the carry, not only those
// that can decide a raw piece of this window (a head serves other windows).
func (a *acc) pieces(s *snapshot, outlet string, num int, ps []piece, opts Options, rawFor func(piece) rawSet, allLast bool) error {
	for i := 0; i < len(ps); i++ {
		p := ps[i]
		if a.runs != nil && (p.kind == pieceDay || p.kind == pieceHour) {
			if j := runEnd(ps, i); j-i >= minRun {
				k, err := a.run(s, outlet, num, ps[i:j])
				if err != nil {
					return err
				}
				for _, q := range ps[i:j] {
					if q.carry || allLast {
						a.own()
						a.carry.merge(&k.last)
						break
					}
				}
				a.apply(k.sum, p.pre, false)
				i = j - 1
				continue
			}
		}
		switch p.kind {
		case pieceDay:
			b := s.block(outlet, p.start)
			if b == nil || b.sum == nil {
				continue // no data that day (complete days always have sum)
			}
			if err := decodeSummary(&a.tmp, b.sum, p.start, a.intern); err != nil {
				return err
			}
			a.apply(&a.tmp, p.pre, p.carry || allLast)
		case pieceHour:
			data, err := s.hourVia(&a.open, outlet, p.start)
			if err != nil {
				return err
			}
			if data == nil {
				continue
			}
			if err := decodeSummary(&a.tmp, data, p.start, a.intern); err != nil {
				return err
			}
			a.apply(&a.tmp, p.pre, p.carry || allLast)
		case piecePartial:
			if ps := s.partial[outlet]; ps != nil {
				a.apply(ps, p.pre, p.carry || allLast)
			}
		case pieceRaw:
			a.rawPiece(outlet, p, opts, rawFor)
		}
	}
	return nil
}
