package metrics

import (
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

// add appends a later piece of the same series to s.
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
		if a.series[i].boot == boot && sameName(a.series[i].device, device) {
			return &a.series[i]
		}
	}
	return nil
}

func (a *summary) findBin(device string, boot int64) *binSum {
	for i := range a.bins {
		if a.bins[i].boot == boot && sameName(a.bins[i].device, device) {
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

// sort puts series and bins in a fixed order, so that equal
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
