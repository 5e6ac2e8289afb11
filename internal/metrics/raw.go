package metrics

import (
	"sort"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// Raw points in memory, as the queries of influxql.go and flux.go deliver
// them: what the reference (definition.go) and the summarizer read.

// numFields counts the counter fields that metrics-v1 sums: the seven
// classes, then boxes_recovered.
const numFields = telemetry.NumClasses + 1

// fieldBoxes is the index of boxes_recovered among the counter fields.
const fieldBoxes = telemetry.NumClasses

// fieldNames are the InfluxDB field names of the counter fields, by index.
var fieldNames = func() [numFields]string {
	var n [numFields]string
	copy(n[:], telemetry.ClassNames[:])
	n[fieldBoxes] = telemetry.FieldBoxesRecovered
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
		if s.boot == boot && sameName(s.device, device) {
			return s
		}
	}
	s := &counterSeries{device: device, boot: boot}
	r.counters = append(r.counters, s)
	return s
}

func (r *outletRaw) bin(device string) *binDevice {
	for _, b := range r.bins {
		if sameName(b.device, device) {
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

// mergeRaw moves the data of src into dst (normalize sorts it after).
func mergeRaw(dst, src rawSet) {
	for o, r := range src {
		d := dst.outlet(o)
		for _, s := range r.counters {
			ds := d.series(s.device, s.boot)
			ds.pts = append(ds.pts, s.pts...)
		}
		for _, b := range r.bins {
			db := d.bin(b.device)
			db.reps = append(db.reps, b.reps...)
		}
	}
}

func (r *outletRaw) findBinDevice(device string) *binDevice {
	for _, b := range r.bins {
		if sameName(b.device, device) {
			return b
		}
	}
	return nil
}

func (r *outletRaw) hasCounterDevice(device string) bool {
	for _, s := range r.counters {
		if sameName(s.device, device) {
			return true
		}
	}
	return false
}

// counterDevices lists the distinct counter devices (all boots as one).
func (r *outletRaw) counterDevices() []string {
	var out []string
	for _, s := range r.counters {
		seen := false
		for _, d := range out {
			if d == s.device {
				seen = true
				break
			}
		}
		if !seen {
			out = append(out, s.device)
		}
	}
	return out
}
