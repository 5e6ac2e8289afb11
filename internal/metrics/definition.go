package metrics

import (
	"sort"
	"time"
)

// This file is metrics-v1 read literally, on raw points: the reference that
// the roll-up path is tested against, and the engine's path when there is
// no roll-up. It favours being obviously right over being fast.

// step is metrics-v1's step: the increase from p to v, where a value lower
// than the one before it is a reset (the counter restarted from 0).
func step(p, v int64) int64 {
	if v >= p {
		return v - p
	}
	return v
}

// referenceOutlet computes one outlet over w from raw data that holds at
// least the counter points in [w.From-24h, w.To) and every bin and counter
// report in [w.From-opts.Staleness, w.To).
func referenceOutlet(r *outletRaw, w Window, opts Options) Outlet {
	out := Outlet{WindowMinutes: w.Minutes()}
	if r == nil {
		return out
	}
	from, to := w.From.UnixNano(), w.To.UnixNano()
	look := w.From.Add(-24 * time.Hour).UnixNano()
	counting := map[string]bool{}
	for _, s := range r.counters {
		for f := 0; f < numFields; f++ {
			// b: the series' last value in [from-24h, from), else 0.
			var prev int64
			var inc int64
			for _, p := range s.pts {
				if p.has&(1<<f) == 0 {
					continue
				}
				switch {
				case p.t >= look && p.t < from:
					prev = p.v[f]
				case p.t >= from && p.t < to:
					inc += step(prev, p.v[f])
					prev = p.v[f]
				}
			}
			if f == fieldBoxes {
				out.Parcels.BoxesRecovered += inc
			} else {
				out.Parcels.ByClass[f] += inc
			}
		}
		for _, p := range s.pts {
			if p.t >= from && p.t < to {
				counting[s.device] = true
				break
			}
		}
	}
	out.CountersReporting = len(counting)

	stale := opts.Staleness.Nanoseconds()
	minutes := w.Minutes()
	for _, b := range r.bins {
		for _, rep := range b.reps {
			if rep.t >= from && rep.t < to && rep.hasFill {
				out.BinsReporting++
				break
			}
		}
	}
	// Minute by minute, bin by bin: the last report at or before m decides.
	for i := 0; i < minutes; i++ {
		m := from + int64(i)*int64(time.Minute)
		for _, b := range r.bins {
			k := sort.Search(len(b.reps), func(j int) bool { return b.reps[j].t > m }) - 1
			for k >= 0 && !b.reps[k].hasFill {
				k--
			}
			if k >= 0 && m-b.reps[k].t <= stale && b.reps[k].fill < opts.FullPct {
				out.ServingMinutes++
				break
			}
		}
		if counterFresh(r.counters, m, stale) {
			out.CounterReportingMinutes++
		}
	}
	return out
}

// counterFresh reports whether some counter device's last report at or
// before m is at most stale old.
func counterFresh(series []*counterSeries, m, stale int64) bool {
	for _, s := range series {
		k := sort.Search(len(s.pts), func(j int) bool { return s.pts[j].t > m }) - 1
		if k >= 0 && m-s.pts[k].t <= stale {
			return true
		}
	}
	return false
}
