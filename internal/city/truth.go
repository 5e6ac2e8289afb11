package city

import (
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// The bin-coverage rules of metrics-v1, restated here on purpose: the truth
// is computed independently of the code that computes the API's numbers.
const (
	Staleness = 15 * time.Minute // a report serves for at most this long (limit included)
	FullPct   = 90.0             // a bin at or above this fill_pct is not serving
)

// Truth records what the simulator actually published (messages the broker
// acknowledged) and computes, from that alone, what the API must answer.
// It is safe for concurrent use.
type Truth struct {
	mu        sync.Mutex
	city      *City
	counters  map[seriesKey]*counterSeries
	bins      map[string]*binReports
	malformed map[string]map[telemetry.Reason]int // by outlet
	minTS     int64
	maxTS     int64
	any       bool
}

type seriesKey struct {
	device string
	boot   int64
}

type counterSeries struct {
	outlet  string
	last    [telemetry.NumClasses]int64
	boxes   int64
	lastSeq int64
	reports map[int64]struct{} // distinct ts
}

type binReport struct {
	ts   int64
	boot int64
	fill float64
}

type binReports struct {
	outlet  string
	reports []binReport
	seen    map[[2]int64]struct{} // (boot, ts): a duplicate is the same report
}

// NewTruth starts an empty record for the city's outlets.
func NewTruth(c *City) *Truth {
	return &Truth{
		city:      c,
		counters:  map[seriesKey]*counterSeries{},
		bins:      map[string]*binReports{},
		malformed: map[string]map[telemetry.Reason]int{},
	}
}

// Published records a valid telemetry message that the broker acknowledged.
// Messages of one device arrive in the order the device sent them.
func (t *Truth) Published(m *telemetry.Message) {
	if m.Topic.Channel != telemetry.ChannelTelemetry {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.any || m.TS < t.minTS {
		t.minTS = m.TS
	}
	if !t.any || m.TS > t.maxTS {
		t.maxTS = m.TS
	}
	t.any = true
	switch m.Topic.Kind {
	case telemetry.KindCounter:
		k := seriesKey{m.Topic.Device, m.Boot}
		s := t.counters[k]
		if s == nil {
			s = &counterSeries{outlet: m.Topic.Outlet, reports: map[int64]struct{}{}, lastSeq: -1}
			t.counters[k] = s
		}
		// A counter's values only grow within a boot; the last one sent is
		// the one that carries every parcel counted before it.
		if m.Seq >= s.lastSeq {
			s.last, s.boxes, s.lastSeq = m.Counter.Parcels, m.Counter.BoxesRecovered, m.Seq
		}
		s.reports[m.TS] = struct{}{}
	case telemetry.KindBin:
		b := t.bins[m.Topic.Device]
		if b == nil {
			b = &binReports{outlet: m.Topic.Outlet, seen: map[[2]int64]struct{}{}}
			t.bins[m.Topic.Device] = b
		}
		key := [2]int64{m.Boot, m.TS}
		if _, dup := b.seen[key]; dup {
			return
		}
		b.seen[key] = struct{}{}
		b.reports = append(b.reports, binReport{ts: m.TS, boot: m.Boot, fill: m.Bin.FillPct})
	}
}

// Malformed records a deliberately malformed message the broker acknowledged.
func (t *Truth) Malformed(outlet string, r telemetry.Reason) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.malformed[outlet]
	if m == nil {
		m = map[telemetry.Reason]int{}
		t.malformed[outlet] = m
	}
	m[r]++
}

// Report is the truth file of runtime-v1, with a few more keys.
type Report struct {
	From          time.Time                `json:"from"`
	To            time.Time                `json:"to"`
	Seed          int64                    `json:"seed"`
	WindowMinutes int                      `json:"window_minutes"`
	Outlets       []OutletTruth            `json:"outlets"`
	Malformed     map[telemetry.Reason]int `json:"malformed"`
}

// OutletTruth is one outlet's truth over the window.
type OutletTruth struct {
	Outlet         string                   `json:"outlet"`
	District       string                   `json:"district"`
	Parcels        map[string]int64         `json:"parcels"`
	Total          int64                    `json:"total"`
	Green          int64                    `json:"green"`
	GreenRate      *float64                 `json:"green_rate"` // null when total is 0 (metrics-v1)
	BoxesRecovered int64                    `json:"boxes_recovered"`
	BinsReporting  int                      `json:"bins_reporting"`
	ServingMinutes int                      `json:"serving_minutes"`
	BinCoverage    float64                  `json:"bin_coverage"`
	Bins           []BinTruth               `json:"bins"`
	Counters       []CounterTruth           `json:"counters"`
	Malformed      map[telemetry.Reason]int `json:"malformed,omitempty"`
}

// BinTruth is one bin's truth over the window.
type BinTruth struct {
	Device         string `json:"device"`
	Reports        int    `json:"reports"`
	ServingMinutes int    `json:"serving_minutes"`
}

// CounterTruth is one parcel counter's truth: per boot, the last value sent.
type CounterTruth struct {
	Device string        `json:"device"`
	Series []SeriesTruth `json:"series"`
}

// SeriesTruth is the last value a counter sent in one boot.
type SeriesTruth struct {
	Boot           int64            `json:"boot"`
	Reports        int              `json:"reports"`
	Parcels        map[string]int64 `json:"parcels"`
	BoxesRecovered int64            `json:"boxes_recovered"`
}

// Report computes the truth over the run that lasted from start to end. The
// window [from, to) is whole minutes: start rounded down and end rounded up,
// widened if needed so that it holds every published ts (a device with a
// skewed clock may stamp reports outside the run).
func (t *Truth) Report(start, end time.Time) Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	from, to := start.UnixMilli(), end.UnixMilli()
	if t.any {
		from = min(from, t.minTS)
		to = max(to, t.maxTS+1) // to is exclusive
	}
	const minute = int64(time.Minute / time.Millisecond)
	from = floorDiv(from, minute) * minute
	to = floorDiv(to+minute-1, minute) * minute
	if to <= from {
		to = from + minute
	}
	minutes := int((to - from) / minute)
	rep := Report{
		From: time.UnixMilli(from).UTC(), To: time.UnixMilli(to).UTC(),
		Seed: t.city.Seed, WindowMinutes: minutes, Malformed: map[telemetry.Reason]int{},
	}
	serving := make([]bool, minutes)
	byOutlet := map[string][]seriesKey{}
	for k, s := range t.counters {
		byOutlet[s.outlet] = append(byOutlet[s.outlet], k)
	}
	for _, o := range t.city.Outlets {
		ot := OutletTruth{Outlet: o.ID, District: o.District, Parcels: map[string]int64{}}
		var byClass [telemetry.NumClasses]int64
		counters := map[string]*CounterTruth{}
		for _, k := range byOutlet[o.ID] {
			s := t.counters[k]
			for c := range byClass {
				byClass[c] += s.last[c]
			}
			ot.BoxesRecovered += s.boxes
			ct := counters[k.device]
			if ct == nil {
				ct = &CounterTruth{Device: k.device}
				counters[k.device] = ct
			}
			ct.Series = append(ct.Series, SeriesTruth{Boot: k.boot, Reports: len(s.reports), Parcels: classMap(s.last), BoxesRecovered: s.boxes})
		}
		for _, ct := range counters {
			slices.SortFunc(ct.Series, func(a, b SeriesTruth) int { return cmp.Compare(a.Boot, b.Boot) })
			ot.Counters = append(ot.Counters, *ct)
		}
		slices.SortFunc(ot.Counters, func(a, b CounterTruth) int { return cmp.Compare(a.Device, b.Device) })
		ot.Parcels = classMap(byClass)
		for c, v := range byClass {
			ot.Total += v
			if telemetry.Class(c).Green() {
				ot.Green += v
			}
		}
		if ot.Total > 0 {
			r := float64(ot.Green) / float64(ot.Total)
			ot.GreenRate = &r
		}
		clear(serving)
		for _, id := range o.BinIDs {
			bt := BinTruth{Device: id}
			if b := t.bins[id]; b != nil {
				bt.Reports, bt.ServingMinutes = b.serving(from, minutes, serving)
			}
			if bt.Reports > 0 {
				ot.BinsReporting++
			}
			ot.Bins = append(ot.Bins, bt)
		}
		for _, s := range serving {
			if s {
				ot.ServingMinutes++
			}
		}
		ot.BinCoverage = float64(ot.ServingMinutes) / float64(minutes)
		if m := t.malformed[o.ID]; len(m) > 0 {
			ot.Malformed = map[telemetry.Reason]int{}
			for r, n := range m {
				ot.Malformed[r] = n
				rep.Malformed[r] += n
			}
		}
		rep.Outlets = append(rep.Outlets, ot)
	}
	return rep
}

// serving counts the bin's reports in the window and the minutes
// from, from+1m, ... at which it was serving, marking them in outlet.
// A minute m is served by the last report at or before m when that report
// is at most Staleness old (the limit included) and below FullPct.
func (b *binReports) serving(from int64, minutes int, outlet []bool) (reports, served int) {
	const minute = int64(time.Minute / time.Millisecond)
	rs := slices.Clone(b.reports)
	slices.SortStableFunc(rs, func(x, y binReport) int { return cmp.Compare(x.ts, y.ts) })
	to := from + int64(minutes)*minute
	for _, r := range rs {
		if r.ts >= from && r.ts < to {
			reports++
		}
	}
	j := 0
	for i := range minutes {
		m := from + int64(i)*minute
		for j < len(rs) && rs[j].ts <= m {
			j++
		}
		if j == 0 {
			continue
		}
		last := rs[j-1]
		if m-last.ts <= int64(Staleness/time.Millisecond) && last.fill < FullPct {
			served++
			outlet[i] = true
		}
	}
	return reports, served
}

// Write writes the report as indented JSON.
// Reports counts the valid reports the truth holds: every bin report and
// every counter report, over all outlets.
func (r Report) Reports() int {
	n := 0
	for _, o := range r.Outlets {
		for _, b := range o.Bins {
			n += b.Reports
		}
		for _, c := range o.Counters {
			for _, s := range c.Series {
				n += s.Reports
			}
		}
	}
	return n
}

func (r Report) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r)
}

func classMap(v [telemetry.NumClasses]int64) map[string]int64 {
	m := make(map[string]int64, telemetry.NumClasses)
	for c, name := range telemetry.ClassNames {
		m[name] = v[c]
	}
	return m
}
