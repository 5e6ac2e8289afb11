package metrics

import (
	"sort"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// This file is metrics-v1 read literally, on raw points: the reference that
// the roll-up path is tested against, and the engine's path when there is
// no roll-up. It favours being obviously right over being fast.

// numFields counts the counter fields that metrics-v1 sums: the seven
// classes, then boxes_recovered.
const numFields = telemetry.NumClasses + 1

// fieldBoxes is the index of boxes_recovered among the counter fields.
const fieldBoxes = telemetry.NumClasses

// fieldNames are the InfluxDB field names of the counter fields, by index.
var fieldNames = func() [numFields]string {
	var n [numFields]string
	copy(n[:], telemetry.ClassNames[:])
	n[fieldBoxes] = "boxes_recovered"
	return n
}()

// counterPoint is one point of a counter series. A field is present when
// its bit is set in has (storage-v1 always writes the seven classes; boxes
// only when sent).
type counterPoint struct {
	t   int64 // ns
	v   [numFields]int64
	has uint16
	seq int64
	// hasSeq tells a seq of 0 from a point without seq.
	hasSeq bool
}

// counterSeries is one (device, boot) series, points sorted by time.
type counterSeries struct {
	device string
	boot   int64
	pts    []counterPoint
}

// binReport is one report of a bin device (any boot).
type binReport struct {
	t       int64 // ns
	boot    int64
	fill    float64
	seq     int64
	hasFill bool // a point without fill_pct is not a report
	hasSeq  bool
}

// binDevice is one bin device with its reports sorted by (time, boot): of
// two reports with the same time the later boot is the later report.
type binDevice struct {
	device string
	reps   []binReport
}

// outletRaw is the raw data of one outlet over some interval.
type outletRaw struct {
	counters []*counterSeries
	bins     []*binDevice
}

// rawSet is raw data by outlet.
type rawSet map[string]*outletRaw

func (rs rawSet) outlet(o string) *outletRaw {
	r := rs[o]
	if r == nil {
		r = &outletRaw{}
		rs[o] = r
	}
	return r
}

func (r *outletRaw) series(device string, boot int64) *counterSeries {
	for _, s := range r.counters {
		if s.boot == boot && s.device == device {
			return s
		}
	}
	s := &counterSeries{device: device, boot: boot}
	r.counters = append(r.counters, s)
	return s
}

func (r *outletRaw) bin(device string) *binDevice {
	for _, b := range r.bins {
		if b.device == device {
			return b
		}
	}
	b := &binDevice{device: device}
	r.bins = append(r.bins, b)
	return b
}

// normalize sorts every list by time and merges points of one series that
// arrived as separate rows (one per field) into one point per time.
func (rs rawSet) normalize() {
	for _, r := range rs {
		for _, s := range r.counters {
			sort.SliceStable(s.pts, func(i, j int) bool { return s.pts[i].t < s.pts[j].t })
			out := s.pts[:0]
			for _, p := range s.pts {
				if n := len(out); n > 0 && out[n-1].t == p.t {
					q := &out[n-1]
					for f := 0; f < numFields; f++ {
						if p.has&(1<<f) != 0 {
							q.v[f] = p.v[f]
							q.has |= 1 << f
						}
					}
					if p.hasSeq {
						q.seq, q.hasSeq = p.seq, true
					}
					continue
				}
				out = append(out, p)
			}
			s.pts = out
		}
		for _, b := range r.bins {
			sort.SliceStable(b.reps, func(i, j int) bool {
				if b.reps[i].t != b.reps[j].t {
					return b.reps[i].t < b.reps[j].t
				}
				return b.reps[i].boot < b.reps[j].boot
			})
			out := b.reps[:0]
			for _, p := range b.reps {
				if n := len(out); n > 0 && out[n-1].t == p.t && out[n-1].boot == p.boot {
					q := &out[n-1]
					if p.hasFill {
						q.fill, q.hasFill = p.fill, true
					}
					if p.hasSeq {
						q.seq, q.hasSeq = p.seq, true
					}
					continue
				}
				out = append(out, p)
			}
			b.reps = out
		}
		sort.Slice(r.counters, func(i, j int) bool {
			if r.counters[i].device != r.counters[j].device {
				return r.counters[i].device < r.counters[j].device
			}
			return r.counters[i].boot < r.counters[j].boot
		})
		sort.Slice(r.bins, func(i, j int) bool { return r.bins[i].device < r.bins[j].device })
	}
}

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
