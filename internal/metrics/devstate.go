package metrics

import (
	"context"
	"sync"
	"time"
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
