package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// The device states behind alerts, kept instead of looked up per request.
// Before, every Devices call walked every outlet's rolled hours of the
// look-back and asked InfluxDB for the last device_status of every device
// over the whole look-back (~0.2 s of InfluxDB CPU per call at 1,000
// outlets, growing with the devices). Now:
//
//   - lastReports: each device's last report among the closed hours, worked
//     out once per generation of the index (gen, index.go) and shared by
//     every call until a closed hour changes;
//   - statusTable: each device's last device_status, read once over the
//     look-back and then only from a little before where the last read
//     ended (RollupConfig.Recheck back, so that statuses stored late within
//     that are still seen), at most once per LiveTTL.
//
// A call then adds the partial hour and the newest minutes (read live,
// shared as before) and filters by its look-back.

type devKey struct{ outlet, device string }

// lastRep of a device among the closed hours, as Devices saw it before:
// the same comparisons in the same order (days in order, boots in order).
type devLast struct {
	t    int64 // ns; 0: none
	fill float64
}

type lastReports struct {
	gen      uint64
	bins     map[devKey]devLast
	counters map[devKey]int64
}

// reportsOf returns the last reports of the closed hours of snap's
// generation: kept from an earlier call, or worked out now.
func (e *InfluxEngine) reportsOf(snap *snapshot) (*lastReports, error) {
	e.devMu.Lock()
	defer e.devMu.Unlock()
	if lr := e.reports; lr != nil && lr.gen == snap.gen {
		return lr, nil
	}
	lr := &lastReports{gen: snap.gen, bins: map[devKey]devLast{}, counters: map[devKey]int64{}}
	var tmp summary
	intern := &interner{shared: snap.names, local: map[string]string{}}
	see := func(o string, s *summary) {
		for i := range s.bins {
			b := &s.bins[i]
			if b.nRep == 0 {
				continue
			}
			k := devKey{o, b.device}
			if cur := lr.bins[k]; b.tLast >= cur.t {
				lr.bins[k] = devLast{b.tLast, b.fill}
			}
		}
		for i := range s.series {
			k := devKey{o, s.series[i].device}
			if t, ok := lr.counters[k]; !ok || s.series[i].tLast > t {
				lr.counters[k] = s.series[i].tLast
			}
		}
	}
	for o, h := range snap.outlets {
		for i, b := range h.days {
			if b == nil {
				continue
			}
			day := snap.base + int64(i)*dayNS
			if b.sum != nil {
				if err := decodeSummary(&tmp, b.sum, day, intern); err != nil {
					return nil, err
				}
				see(o, &tmp)
				continue
			}
			for hi := 0; hi < 24; hi++ {
				hs := day + int64(hi)*hourNS
				data := b.hour(hi)
				if data == nil || hs < snap.r0 || hs >= snap.r1 {
					continue
				}
				if err := decodeSummary(&tmp, data, hs, intern); err != nil {
					return nil, err
				}
				see(o, &tmp)
			}
		}
	}
	e.reports = lr
	return lr, nil
}

// devTable is each device's last report in the closed hours and the
// partial hour of one snapshot, in (outlet, device) order, with each
// device's place: a Devices call copies it and adds only the newest
// minutes and the statuses, instead of building and sorting a map of
// every device of the city.
type devTable struct {
	snap   *snapshot
	states []DeviceState // State fields empty
	at     map[devKey]int
}

// devTableOf returns snap's device table: kept from an earlier call, or
// made now from the generation's last reports and the partial hour, seen
// in the order Devices saw them (bins' reports at the same time: the later
// one wins).
func (e *InfluxEngine) devTableOf(snap *snapshot) (*devTable, error) {
	lr, err := e.reportsOf(snap)
	if err != nil {
		return nil, err
	}
	e.devMu.Lock()
	defer e.devMu.Unlock()
	if t := e.devices; t != nil && t.snap == snap {
		return t, nil
	}
	type last struct {
		kind telemetry.Kind
		t    int64
		fill float64
		set  bool
	}
	m := make(map[devKey]*last, len(lr.bins)+len(lr.counters))
	get := func(k devKey, kind telemetry.Kind) *last {
		l := m[k]
		if l == nil {
			l = &last{kind: kind}
			m[k] = l
		}
		return l
	}
	bin := func(k devKey, t int64, fill float64) {
		if l := get(k, telemetry.KindBin); !l.set || t >= l.t {
			l.t, l.fill, l.set = t, fill, true
		}
	}
	counter := func(k devKey, t int64) {
		if l := get(k, telemetry.KindCounter); !l.set || t > l.t {
			l.t, l.set = t, true
		}
	}
	for k, l := range lr.bins {
		bin(k, l.t, l.fill)
	}
	for k, t := range lr.counters {
		counter(k, t)
	}
	for o, s := range snap.partial {
		for i := range s.bins {
			if b := &s.bins[i]; b.nRep > 0 {
				bin(devKey{o, b.device}, b.tLast, b.fill)
			}
		}
		for i := range s.series {
			counter(devKey{o, s.series[i].device}, s.series[i].tLast)
		}
	}
	t := &devTable{snap: snap, states: make([]DeviceState, 0, len(m)), at: make(map[devKey]int, len(m))}
	for k, l := range m {
		t.states = append(t.states, DeviceState{Outlet: k.outlet, Device: k.device, Kind: l.kind, LastReport: time.Unix(0, l.t).UTC(), FillPct: l.fill})
	}
	sortDevices(t.states)
	for i, d := range t.states {
		t.at[devKey{d.Outlet, d.Device}] = i
	}
	e.devices = t
	return t, nil
}

// statusTable is the last device_status of each device read so far.
type statusTable struct {
	mu       sync.Mutex
	from, to int64 // read for [from, to)
	at       time.Time
	rows     map[devKey]statusRow
}

// statusesFor returns the last status of each device in [a, end): from
// the table, brought up to end first unless it was within ttl.
func (e *InfluxEngine) statusesFor(ctx context.Context, src source, a, end int64, overlap, ttl time.Duration) ([]statusRow, error) {
	t := &e.statuses
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.rows == nil || a < t.from:
		rows, err := src.statuses(ctx, a, end)
		if err != nil {
			return nil, err
		}
		t.rows, t.from, t.to = map[devKey]statusRow{}, a, end
		for _, r := range rows {
			t.rows[devKey{r.outlet, r.device}] = r
		}
		t.at = time.Now()
	case end > t.to && (ttl <= 0 || time.Since(t.at) >= ttl):
		b := max(t.from, t.to-overlap.Nanoseconds())
		rows, err := src.statuses(ctx, b, end)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			k := devKey{r.outlet, r.device}
			if cur, ok := t.rows[k]; !ok || r.t >= cur.t {
				t.rows[k] = r
			}
		}
		t.to, t.at = end, time.Now()
	}
	out := make([]statusRow, 0, len(t.rows))
	for _, r := range t.rows {
		if r.t >= end {
			// A status after this call's end (read for a later call): the
			// table no longer holds the one before it; ask InfluxDB.
			return src.statuses(ctx, a, end)
		}
		if r.t >= a {
			out = append(out, r)
		}
	}
	return out, nil
}
