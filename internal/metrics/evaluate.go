package metrics

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

// acc evaluates one outlet over one window, piece by piece.
type acc struct {
	look    int64 // from-24h: baseline values before it do not count
	full    float64
	series  []seriesAcc
	binDevs []string // bin devices with a report in the window
	cntDevs []string // counter devices with a point in the window
	serving int64
	count   int64
	carry   carry
	tmp     summary // decoding buffer
	intern  *interner
	open    opener // the compact day last inflated
	// runs, when set, keeps the combination of each run of whole pieces
	// (runs.go) for the next requests.
	runs *runCache
}

// run returns the combination of the run ps for one outlet: kept from an
// earlier request of the same generation, or combined now and kept.
func (a *acc) run(s *snapshot, outlet string, ps []piece) (*summary, error) {
	e := a.runs.entry(runKey{gen: s.gen, start: ps[0].start, end: ps[len(ps)-1].end, pre: ps[0].pre})
	if v, ok := e.sums.Load(outlet); ok {
		return v.(*summary), nil
	}
	sum, err := a.combineRun(s, outlet, ps)
	if err != nil {
		return nil, err
	}
	e.sums.Store(outlet, sum)
	return sum, nil
}

func (a *acc) reset(look int64, full float64) {
	a.look, a.full = look, full
	a.series = a.series[:0]
	a.binDevs = a.binDevs[:0]
	a.cntDevs = a.cntDevs[:0]
	a.serving, a.count = 0, 0
	a.carry.reset()
}

func (a *acc) seriesOf(device string, boot int64) *seriesAcc {
	for i := range a.series {
		if a.series[i].boot == boot && a.series[i].device == device {
			return &a.series[i]
		}
	}
	a.series = append(a.series, seriesAcc{device: device, boot: boot})
	return &a.series[len(a.series)-1]
}

func addDevice(l *[]string, d string) {
	for _, x := range *l {
		if x == d {
			return
		}
	}
	*l = append(*l, d)
}

// apply adds a summarized piece. withCarry is false for raw pieces, whose
// summarizer has already advanced the carry, and for pieces whose last
// reports cannot matter (see planWindow).
func (a *acc) apply(s *summary, pre, withCarry bool) {
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
	for i := range a.series {
		sa := &a.series[i]
		if !sa.inWin {
			continue
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
			inc := step(b, sa.win.f[f].first) + sa.win.f[f].inc
			if f == fieldBoxes {
				out.Parcels.BoxesRecovered += inc
			} else {
				out.Parcels.ByClass[f] += inc
			}
		}
	}
	return out
}

// evalOutlet answers one outlet over one window from its pieces. rawFor
// gives the raw data that holds a raw piece.
func (a *acc) evalOutlet(s *snapshot, outlet string, w Window, ps []piece, opts Options, rawFor func(piece) rawSet) (Outlet, error) {
	a.reset(w.From.UnixNano()-dayNS, opts.FullPct)
	for i := 0; i < len(ps); i++ {
		p := ps[i]
		if a.runs != nil && (p.kind == pieceDay || p.kind == pieceHour) {
			if j := runEnd(ps, i); j-i >= minRun {
				sum, err := a.run(s, outlet, ps[i:j])
				if err != nil {
					return Outlet{}, err
				}
				carry := false
				for _, q := range ps[i:j] {
					carry = carry || q.carry
				}
				a.apply(sum, p.pre, carry)
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
				return Outlet{}, err
			}
			a.apply(&a.tmp, p.pre, p.carry)
		case pieceHour:
			data, err := s.hourVia(&a.open, outlet, p.start)
			if err != nil {
				return Outlet{}, err
			}
			if data == nil {
				continue
			}
			if err := decodeSummary(&a.tmp, data, p.start, a.intern); err != nil {
				return Outlet{}, err
			}
			a.apply(&a.tmp, p.pre, p.carry)
		case piecePartial:
			if ps := s.partial[outlet]; ps != nil {
				a.apply(ps, p.pre, p.carry)
			}
		case pieceRaw:
			var r *outletRaw
			if rs := rawFor(p); rs != nil {
				r = rs[outlet]
			}
			summarize := summarizeRaw
			if p.pre {
				summarize = summarizeLast // before the window: no minutes
			}
			sum := summarize(r, p.start, p.end, opts, &a.carry)
			a.apply(&sum, p.pre, false)
		}
	}
	return a.result(w.Minutes()), nil
}
