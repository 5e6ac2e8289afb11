package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Alert kinds of GET /v1/alerts, in the order the answer lists them: full
// bins first, since they are what someone must act on today.
const (
	alertBinFull       = "bin_full"
	alertOutletSilent  = "outlet_silent"
	alertDeviceOffline = "device_offline"
	alertBelowTarget   = "below_target"
)

var alertKinds = alertKindOrder[:]

// alertKindOrder is alertKinds as an array (its length a constant).
var alertKindOrder = [...]string{alertBinFull, alertOutletSilent, alertDeviceOffline, alertBelowTarget}

// belowTargetWindow is how far back below_target looks.
const belowTargetWindow = 7 * 24 * time.Hour

// alert is one current alert, with the outlet as the registry knows it
// (name, district and address are empty for an unregistered outlet). Value
// depends on the kind: the fill_pct of a full bin, the minutes since an
// offline device's or a silent outlet's last report, the green rate of an
// outlet below target. Since is null where no true date exists: an outlet
// that never reported, and below_target, which is about the last 7 days as
// a whole.
type alert struct {
	Kind     string     `json:"kind"`
	Outlet   string     `json:"outlet"`
	Name     string     `json:"name"`
	District string     `json:"district"`
	Address  string     `json:"address"`
	Device   string     `json:"device"`
	Since    *time.Time `json:"since"`
	Value    *float64   `json:"value"`
	Detail   string     `json:"detail"`
}

// fullSource tells since when each full bin has been full: the first report
// at or above fullPct after its last report below it (within lookback
// before now), every boot of the device as one; keyed by device. The engine
// keeps only each device's last report: the collection list's tracker
// answers from the reports it holds, InfluxDB the rest (trackerFull).
type fullSource interface {
	FullSince(ctx context.Context, bins []fill.FullBin, fullPct float64, now time.Time, lookback time.Duration) (map[string]time.Time, error)
}

// alerter computes alerts from device states and the 7-day rates.
type alerter struct {
	reg      *registry
	engine   metrics.Engine
	rater    *rater
	full     fullSource
	opts     metrics.Options
	lookback time.Duration
	targets  *targetBook
}

// alerts returns the current alerts of the given kinds (all when empty) for
// the outlets matching f, full bins first (longest full first), then by
// kind, outlet and device. Outlets that the registry lists as inactive raise
// none; devices of outlets missing from the registry do (a device nobody
// registered is worth a look) unless f filters by district or operator.
func (a *alerter) alerts(ctx context.Context, now time.Time, kinds []string, f outletFilter) ([]alert, error) {
	want := map[string]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	all := len(kinds) == 0
	out := []alert{}
	// A device of an outlet missing from the registry is in no district:
	// only an unfiltered, city-wide caller sees it.
	filtered := f.District != "" || f.Operator != "" || !scopeOf(ctx).all
	// outletOf returns the registry's outlet and whether its alerts are
	// wanted: active, and matching the filter.
	outletOf := func(id string) (Outlet, bool) {
		o, ok := a.reg.Get(ctx, id)
		if !ok {
			return Outlet{ID: id}, !filtered
		}
		return o, o.Active && f.match(&o)
	}
	if all || want[alertBinFull] || want[alertDeviceOffline] || want[alertOutletSilent] {
		devs, err := a.states(ctx, now)
		if err != nil {
			return nil, err
		}
		var full []alert
		var o Outlet
		var ok bool
		for i, d := range devs {
			// Devices come in outlet order: one registry look-up per outlet.
			if i == 0 || d.Outlet != devs[i-1].Outlet {
				o, ok = outletOf(d.Outlet)
			}
			if !ok {
				continue
			}
			if (all || want[alertBinFull]) && d.Kind == telemetry.KindBin && !d.LastReport.IsZero() && d.FillPct >= a.opts.FullPct {
				v, since := d.FillPct, d.LastReport
				full = append(full, withOutlet(alert{Kind: alertBinFull, Device: d.Device, Since: &since, Value: &v,
					Detail: fmt.Sprintf("fill_pct %.1f at or above %.0f", d.FillPct, a.opts.FullPct)}, o))
			}
			if all || want[alertDeviceOffline] {
				if al, ok := offline(d, now, a.opts.Staleness); ok {
					out = append(out, withOutlet(al, o))
				}
			}
		}
		if len(full) > 0 {
			if err := a.fullSince(ctx, full, now); err != nil {
				return nil, err
			}
			out = append(out, full...)
		}
		if all || want[alertOutletSilent] {
			out = append(out, a.silent(ctx, devs, now, f)...)
		}
	}
	// below_target: judged by the set in force now; none when it has no
	// green_rate target.
	w := metrics.Window{From: now.Add(-belowTargetWindow).Truncate(time.Minute), To: now.Truncate(time.Minute)}
	if target := a.targets.For(w.To).GreenRate; (all || want[alertBelowTarget]) && target != nil {
		f.ActiveOnly = true
		outlets := a.reg.Select(ctx, f)
		res, _, err := a.rater.compute(ctx, w, outlets)
		if err != nil {
			return nil, err
		}
		for i, o := range outlets {
			gr := res[i].Parcels.Rates().Green
			if gr != nil && *gr < *target {
				out = append(out, withOutlet(alert{Kind: alertBelowTarget, Value: gr,
					Detail: fmt.Sprintf("green_rate %s over the last 7 days is below the target %g", metrics.ShowBelow(*gr, *target), *target)}, o))
			}
		}
	}
	return sortAlerts(out), nil
}

// sortAlerts orders alerts by kind (alertKinds' order), then full bins by
// since (longest full first), then by outlet and device. Kind, outlet and
// device name one alert: the order is total, so no stable sort is needed.
// It sorts the alerts' indices, kind by kind, and moves each 128-byte
// alert once, into the answer: a kind's alerts come in order already
// (devices and outlets are listed by id), which the check sees at once.
// (Grouping copies of the alerts by kind and sorting those was 14 % of
// an alerts request's CPU at 10,000 outlets with 46,000 alerts: moving
// structs that hold pointers costs the GC's write barriers too.)
func sortAlerts(out []alert) []alert {
	kind := make([]uint8, len(out))
	var at [len(alertKindOrder) + 1]int // where each kind's indices start
	for i := range out {
		k := slices.Index(alertKinds, out[i].Kind)
		kind[i] = uint8(k)
		at[k+1]++
	}
	for k := range len(alertKinds) {
		at[k+1] += at[k]
	}
	order := make([]int32, len(out))
	next := at
	for i, k := range kind {
		order[next[k]] = int32(i)
		next[k]++
	}
	for k := range alertKinds {
		full := alertKinds[k] == alertBinFull
		byKey := func(a, b int32) int {
			x, y := &out[a], &out[b]
			if full {
				if c := x.Since.Compare(*y.Since); c != 0 {
					return c // longest full first
				}
			}
			return cmp.Or(cmp.Compare(x.Outlet, y.Outlet), cmp.Compare(x.Device, y.Device))
		}
		if g := order[at[k]:at[k+1]]; !slices.IsSortedFunc(g, byKey) {
			slices.SortFunc(g, byKey)
		}
	}
	sorted := make([]alert, len(out))
	for j, i := range order {
		sorted[j] = out[i]
	}
	return sorted
}

// withOutlet fills the alert's outlet fields from the registry's outlet.
func withOutlet(al alert, o Outlet) alert {
	al.Outlet, al.Name, al.District, al.Address = o.ID, o.Name, o.District, o.Address
	return al
}

// fullSince sets each full bin's since to when it first reached full_pct
// and stayed there (its last report's time when the history says nothing
// more).
func (a *alerter) fullSince(ctx context.Context, full []alert, now time.Time) error {
	bins := make([]fill.FullBin, len(full))
	for i := range full {
		bins[i] = fill.FullBin{Outlet: full[i].Outlet, Device: full[i].Device, Last: *full[i].Since}
	}
	since, err := a.full.FullSince(ctx, bins, a.opts.FullPct, now, a.lookback)
	if err != nil {
		return fmt.Errorf("since when bins are full: %w", err)
	}
	for i := range full {
		if t, ok := since[full[i].Device]; ok && t.Before(*full[i].Since) {
			full[i].Since = &t
		}
	}
	return nil
}

// silent raises outlet_silent for every active registered outlet matching
// f of which no device reported within staleness: one that never reported
// (no device at all, within the lookback), or whose devices all went quiet.
// Such an outlet counts as not covered in every roll-up.
func (a *alerter) silent(ctx context.Context, devs []metrics.DeviceState, now time.Time, f outletFilter) []alert {
	last := map[string]time.Time{} // each outlet's latest report, of any device
	for _, d := range devs {
		if d.LastReport.After(last[d.Outlet]) {
			last[d.Outlet] = d.LastReport
		}
	}
	var out []alert
	f.ActiveOnly = true
	for _, o := range a.reg.Select(ctx, f) {
		t := last[o.ID]
		al := withOutlet(alert{Kind: alertOutletSilent}, o)
		switch {
		case t.IsZero():
			al.Detail = fmt.Sprintf("no device of this outlet has reported (in the last %s)", fmtDuration(a.lookback))
		case now.Sub(t) > a.opts.Staleness:
			v := now.Sub(t).Minutes()
			al.Since, al.Value = &t, &v
			al.Detail = silentDetail(v, a.opts.Staleness)
		default:
			continue
		}
		out = append(out, al)
	}
	return out
}

// silentDetail is fmt's "no device of this outlet has reported for %.0f
// minutes (staleness %s)" without its reflection (one per silent outlet:
// 10,000 in a city's outage).
func silentDetail(minutes float64, staleness time.Duration) string {
	return "no device of this outlet has reported for " + strconv.FormatFloat(minutes, 'f', 0, 64) + " minutes (staleness " + staleness.String() + ")"
}

// offline decides whether a device is offline: it said so (status offline,
// not followed by telemetry), or its last report is older than staleness.
func offline(d metrics.DeviceState, now time.Time, staleness time.Duration) (alert, bool) {
	al := alert{Kind: alertDeviceOffline, Outlet: d.Outlet, Device: d.Device}
	silentFor := func(since time.Time) *float64 {
		v := now.Sub(since).Minutes()
		return &v
	}
	at := func(t time.Time) *time.Time { return &t }
	switch {
	case d.State == telemetry.StateOffline && !d.LastReport.After(d.StateSince):
		al.Since = at(d.StateSince)
		if !d.LastReport.IsZero() {
			al.Value = silentFor(d.LastReport)
		}
		al.Detail = "the device reported itself offline"
		return al, true
	case d.LastReport.IsZero():
		// Only a status, no telemetry within the lookback: worth an alert
		// once the device has had staleness to send its first report.
		if d.State == telemetry.StateOnline && now.Sub(d.StateSince) > staleness {
			al.Since = at(d.StateSince)
			al.Detail = "online, but no telemetry within the lookback"
			return al, true
		}
		return al, false
	case now.Sub(d.LastReport) > staleness:
		al.Since = at(d.LastReport)
		al.Value = silentFor(d.LastReport)
		// As fmt's "%.0f minutes (staleness %s)", without its reflection
		// (one per offline device).
		al.Detail = "no report for " + strconv.FormatFloat(*al.Value, 'f', 0, 64) + " minutes (staleness " + staleness.String() + ")"
		return al, true
	}
	return al, false
}
