package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Alert kinds of GET /v1/alerts.
const (
	alertBinFull       = "bin_full"
	alertDeviceOffline = "device_offline"
	alertBelowTarget   = "below_target"
)

var alertKinds = []string{alertBinFull, alertDeviceOffline, alertBelowTarget}

// belowTargetWindow is how far back below_target looks.
const belowTargetWindow = 7 * 24 * time.Hour

// alert is one current alert. Value depends on the kind: the fill_pct of a
// full bin, the minutes since an offline device's last report, the green
// rate of an outlet below target.
type alert struct {
	Kind   string    `json:"kind"`
	Outlet string    `json:"outlet"`
	Device string    `json:"device"`
	Since  time.Time `json:"since"`
	Value  *float64  `json:"value"`
	Detail string    `json:"detail"`
}

// alerter computes alerts from device states and the 7-day rates.
type alerter struct {
	reg      *registry
	engine   metrics.Engine
	rater    *rater
	opts     metrics.Options
	lookback time.Duration
	targets  *targetBook
}

// alerts returns the current alerts of the given kinds (all when empty),
// sorted by kind, outlet and device. Outlets that the registry lists as
// inactive raise none; devices of outlets missing from the registry do (a
// device nobody registered is worth a look).
func (a *alerter) alerts(ctx context.Context, now time.Time, kinds []string) ([]alert, error) {
	want := map[string]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	all := len(kinds) == 0
	out := []alert{}
	inactive := func(outlet string) bool {
		o, ok := a.reg.Get(outlet)
		return ok && !o.Active
	}
	if all || want[alertBinFull] || want[alertDeviceOffline] {
		devs, err := a.states(ctx, now)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			if inactive(d.Outlet) {
				continue
			}
			if (all || want[alertBinFull]) && d.Kind == telemetry.KindBin && !d.LastReport.IsZero() && d.FillPct >= a.opts.FullPct {
				v := d.FillPct
				out = append(out, alert{Kind: alertBinFull, Outlet: d.Outlet, Device: d.Device, Since: d.LastReport, Value: &v,
					Detail: fmt.Sprintf("fill_pct %.1f at or above %.0f", d.FillPct, a.opts.FullPct)})
			}
			if all || want[alertDeviceOffline] {
				if al, ok := offline(d, now, a.opts.Staleness); ok {
					out = append(out, al)
				}
			}
		}
	}
	// below_target: judged by the set in force now; none when it has no
	// green_rate target.
	w := metrics.Window{From: now.Add(-belowTargetWindow).Truncate(time.Minute), To: now.Truncate(time.Minute)}
	if target := a.targets.For(w.To).GreenRate; (all || want[alertBelowTarget]) && target != nil {
		outlets := a.reg.Select(outletFilter{ActiveOnly: true})
		res, err := a.rater.compute(ctx, w, outlets)
		if err != nil {
			return nil, err
		}
		for _, o := range outlets {
			gr := res[o.ID].Parcels.Rates().Green
			if gr != nil && *gr < *target {
				out = append(out, alert{Kind: alertBelowTarget, Outlet: o.ID, Since: w.From, Value: gr,
					Detail: fmt.Sprintf("green_rate %.4f over the last 7 days is below the target %.2f", *gr, *target)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := &out[i], &out[j]
		if x.Kind != y.Kind {
			return x.Kind < y.Kind
		}
		if x.Outlet != y.Outlet {
			return x.Outlet < y.Outlet
		}
		return x.Device < y.Device
	})
	return out, nil
}

// offline decides whether a device is offline: it said so (status offline,
// not followed by telemetry), or its last report is older than staleness.
func offline(d metrics.DeviceState, now time.Time, staleness time.Duration) (alert, bool) {
	al := alert{Kind: alertDeviceOffline, Outlet: d.Outlet, Device: d.Device}
	silentFor := func(since time.Time) *float64 {
		v := now.Sub(since).Minutes()
		return &v
	}
	switch {
	case d.State == telemetry.StateOffline && !d.LastReport.After(d.StateSince):
		al.Since = d.StateSince
		if !d.LastReport.IsZero() {
			al.Value = silentFor(d.LastReport)
		}
		al.Detail = "the device reported itself offline"
		return al, true
	case d.LastReport.IsZero():
		// Only a status, no telemetry within the lookback: worth an alert
		// once the device has had staleness to send its first report.
		if d.State == telemetry.StateOnline && now.Sub(d.StateSince) > staleness {
			al.Since = d.StateSince
			al.Detail = "online, but no telemetry within the lookback"
			return al, true
		}
		return al, false
	case now.Sub(d.LastReport) > staleness:
		al.Since = d.LastReport
		al.Value = silentFor(d.LastReport)
		al.Detail = fmt.Sprintf("no report for %.0f minutes (staleness %s)", *al.Value, staleness)
		return al, true
	}
	return al, false
}
