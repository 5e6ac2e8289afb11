package metrics

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// Device states for alerts: the roll-up's last reports, raw data for the
// rest, and the last device_status of each device.

// Devices returns the latest state of every device seen in [now-lookback, now].
func (e *InfluxEngine) Devices(ctx context.Context, now time.Time, lookback time.Duration) ([]DeviceState, error) {
	src, err := e.src.get(ctx)
	if err != nil {
		return nil, err
	}
	a, end := now.Add(-lookback).UnixNano(), now.UnixNano()+1
	// The devices so far: the kept table's first (copied, those without a
	// report in [a, end) not yet seen), then any new ones.
	var ds []DeviceState
	var seen []bool
	var at map[devKey]int
	extra := map[devKey]int{}
	get := func(outlet, device string, kind telemetry.Kind) *DeviceState {
		k := devKey{outlet, device}
		if i, ok := at[k]; ok {
			if !seen[i] { // its kept report is outside [a, end): as if new
				seen[i] = true
				ds[i] = DeviceState{Outlet: outlet, Device: device, Kind: kind}
			}
			return &ds[i]
		}
		if i, ok := extra[k]; ok {
			return &ds[i]
		}
		extra[k] = len(ds)
		ds = append(ds, DeviceState{Outlet: outlet, Device: device, Kind: kind})
		seen = append(seen, true)
		return &ds[len(ds)-1]
	}
	seeBin := func(outlet string, b *binSum) {
		if b.nRep == 0 || b.tLast < a || b.tLast >= end {
			return
		}
		d := get(outlet, b.device, telemetry.KindBin)
		if t := time.Unix(0, b.tLast).UTC(); !t.Before(d.LastReport) {
			d.LastReport, d.FillPct = t, b.fill
		}
	}
	seeCounter := func(outlet string, s *seriesSum) {
		if s.tLast < a || s.tLast >= end {
			return
		}
		d := get(outlet, s.device, telemetry.KindCounter)
		if t := time.Unix(0, s.tLast).UTC(); t.After(d.LastReport) {
			d.LastReport = t
		}
	}
	see := func(outlet string, s *summary) {
		for i := range s.bins {
			seeBin(outlet, &s.bins[i])
		}
		for i := range s.series {
			seeCounter(outlet, &s.series[i])
		}
	}

	var ranges [][2]int64 // read raw
	var tbl *devTable
	if e.roll != nil {
		snap, err := e.roll.snapshot(ctx)
		if err != nil {
			return nil, err
		}
		if a < snap.r0 {
			ranges = append(ranges, [2]int64{a, min(snap.r0, end)})
		}
		// The closed hours and the partial hour: each device's last
		// report, kept per snapshot (devstate.go); this call takes those
		// in [a, end). (Asked at now, the partial hour is before end.)
		if tbl, err = e.devTableOf(snap); err != nil {
			return nil, err
		}
		if tail := max(snap.p, snap.r1, a); tail < end {
			ranges = append(ranges, [2]int64{tail, end})
		}
		if float64(len(snap.outlets))*span(ranges).Hours() > maxLiveOutletHours {
			return nil, fmt.Errorf("%w: %v of raw data for the devices", ErrNotReady, span(ranges))
		}
	} else {
		ranges = append(ranges, [2]int64{a, end})
	}
	if tbl != nil {
		ds = append(make([]DeviceState, 0, len(tbl.states)+64), tbl.states...)
		seen = make([]bool, len(ds), cap(ds))
		at = tbl.at
		for i := range ds {
			if t := ds[i].LastReport.UnixNano(); !ds[i].LastReport.IsZero() && t >= a && t < end {
				seen[i] = true
			}
		}
	}
	for _, r := range ranges {
		// Read to the next whole minute, so that calls within a minute can
		// share the read (LiveTTL); points after now are left out below.
		e1 := ceilDiv(r[1], minuteNS) * minuteNS
		rs, err := e.live.get(ctx, liveKey{r[0], e1, "*"}, func(ctx context.Context) (rawSet, error) {
			rs := rawSet{}
			if err := src.raw(ctx, r[0], e1, nil, rs); err != nil {
				return nil, err
			}
			rs.normalize()
			return rs, nil
		})
		if err != nil {
			return nil, err
		}
		for o, raw := range rs {
			s := summarizePoints(raw, r[0], r[1]) // last reports only: no minutes
			see(o, &s)
		}
	}
	var sts []statusRow
	if e.roll != nil {
		sts, err = e.statusesFor(ctx, src, a, end, e.roll.cfg.Recheck, e.live.ttl)
	} else {
		sts, err = src.statuses(ctx, a, end)
	}
	if err != nil {
		return nil, err
	}
	for _, st := range sts {
		kind := telemetry.KindCounter
		if st.kind == telemetry.KindBin.String() {
			kind = telemetry.KindBin
		}
		d := get(st.outlet, st.device, kind)
		if t := time.Unix(0, st.t).UTC(); !t.Before(d.StateSince) {
			d.State, d.StateSince = st.state, t
		}
	}
	out := ds[:0]
	for i := range ds {
		if seen[i] {
			out = append(out, ds[i])
		}
	}
	if len(extra) > 0 { // the table's are in order; new ones go in their place
		sortDevices(out)
	}
	return out, nil
}

// sortDevices orders device states by outlet, then device.
func sortDevices(ds []DeviceState) {
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].Outlet != ds[j].Outlet {
			return ds[i].Outlet < ds[j].Outlet
		}
		return ds[i].Device < ds[j].Device
	})
}
