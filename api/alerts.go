package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
//
// In a city's outage the answer is every device and outlet (46,000 alerts
// at 10,000 outlets), and what a request allocates sets how often the GC
// marks the API's whole heap: so the alerts are counted first and built
// once into a slice of their exact size, their times and values in one
// slab each, and the outlets are matched to the registry by a search in
// its id-ordered selection instead of a copy of each.
func (a *alerter) alerts(ctx context.Context, now time.Time, kinds []string, f outletFilter) ([]alert, error) {
	wanted := func(k string) bool { return len(kinds) == 0 || slices.Contains(kinds, k) }
	wantFull, wantOffline, wantSilent := wanted(alertBinFull), wanted(alertDeviceOffline), wanted(alertOutletSilent)
	var devs []metrics.DeviceState
	if wantFull || wantOffline || wantSilent {
		var err error
		if devs, err = a.states(ctx, now); err != nil {
			return nil, err
		}
	}
	// A device of an outlet missing from the registry is in no district:
	// only an unfiltered, city-wide caller sees it.
	filtered := f.District != "" || f.Operator != "" || !scopeOf(ctx).all
	f.ActiveOnly = false
	sel := a.reg.Select(ctx, f) // in id order, inactive ones too
	// First pass: what each device raises, and each selected outlet's
	// latest report (Unix ns; 0: none), one registry search per outlet.
	full := make([]bool, len(devs))
	why := make([]offlineWhy, len(devs)) // online: no device_offline alert
	at := make([]int32, len(devs))       // the device's outlet in sel; -1: unregistered
	last := make([]int64, len(sel))
	var nFull, nOffline int
	pos, ok := int32(-1), false
	for i := range devs {
		d := &devs[i]
		// Devices come in outlet order: one search per outlet.
		if i == 0 || d.Outlet != devs[i-1].Outlet {
			j, found := slices.BinarySearchFunc(sel, d.Outlet, func(o Outlet, id string) int { return strings.Compare(o.ID, id) })
			pos, ok = int32(j), found && sel[j].Active
			if !found {
				pos, ok = -1, !filtered
			}
		}
		at[i] = pos
		if !ok {
			continue
		}
		if pos >= 0 && !d.LastReport.IsZero() {
			last[pos] = max(last[pos], d.LastReport.UnixNano())
		}
		if wantFull && d.Kind == telemetry.KindBin && !d.LastReport.IsZero() && d.FillPct >= a.opts.FullPct {
			full[i] = true
			nFull++
		}
		if wantOffline {
			if why[i] = offlineReason(d, now, a.opts.Staleness); why[i] != online {
				nOffline++
			}
		}
	}
	nSilent := 0
	if wantSilent {
		for i := range sel {
			if sel[i].Active && (last[i] == 0 || now.Sub(time.Unix(0, last[i])) > a.opts.Staleness) {
				nSilent++
			}
		}
	}
	// below_target: judged by the set in force now; none when it has no
	// green_rate target.
	var below []alert
	w := metrics.Window{From: now.Add(-belowTargetWindow).Truncate(time.Minute), To: now.Truncate(time.Minute)}
	if target := a.targets.For(w.To).GreenRate; wanted(alertBelowTarget) && target != nil {
		f.ActiveOnly = true
		outlets := a.reg.Select(ctx, f)
		res, _, err := a.rater.compute(ctx, w, outlets)
		if err != nil {
			return nil, err
		}
		for i, o := range outlets {
			gr := res[i].Parcels.Rates().Green
			if gr != nil && *gr < *target {
				below = append(below, withOutlet(alert{Kind: alertBelowTarget, Value: gr,
					Detail: fmt.Sprintf("green_rate %s over the last 7 days is below the target %g", metrics.ShowBelow(*gr, *target), *target)}, o))
			}
		}
	}
	// Second pass: the alerts, in alertKinds' order, into one slice.
	n := nFull + nSilent + nOffline
	out := make([]alert, 0, n+len(below))
	times, values := make([]time.Time, 0, n), make([]float64, 0, n)
	since := func(t time.Time) *time.Time { times = append(times, t); return &times[len(times)-1] }
	value := func(v float64) *float64 { values = append(values, v); return &values[len(values)-1] }
	outletOf := func(i int) Outlet {
		if at[i] < 0 {
			return Outlet{ID: devs[i].Outlet}
		}
		return sel[at[i]]
	}
	for i := range devs {
		if d := &devs[i]; full[i] {
			out = append(out, withOutlet(alert{Kind: alertBinFull, Device: d.Device, Since: since(d.LastReport), Value: value(d.FillPct),
				Detail: "fill_pct " + strconv.FormatFloat(d.FillPct, 'f', 1, 64) + " at or above " + strconv.FormatFloat(a.opts.FullPct, 'f', 0, 64)}, outletOf(i)))
		}
	}
	if nFull > 0 {
		if err := a.fullSince(ctx, out, now); err != nil {
			return nil, err
		}
	}
	// "no report for N minutes": few N in an outage, each written once.
	silentDetails, offlineDetails := minutesMemo{}, minutesMemo{}
	for i := range sel {
		o := &sel[i]
		if !wantSilent || !o.Active {
			continue
		}
		al := withOutlet(alert{Kind: alertOutletSilent}, *o)
		switch t := last[i]; {
		case t == 0:
			al.Detail = fmt.Sprintf("no device of this outlet has reported (in the last %s)", fmtDuration(a.lookback))
		case now.Sub(time.Unix(0, t)) > a.opts.Staleness:
			v := now.Sub(time.Unix(0, t)).Minutes()
			al.Since, al.Value = since(time.Unix(0, t)), value(v)
			al.Detail = silentDetails.of(v, func(string) string { return silentDetail(v, a.opts.Staleness) })
		default:
			continue
		}
		out = append(out, al)
	}
	for i := range devs {
		if why[i] != online {
			out = append(out, withOutlet(offline(&devs[i], why[i], now, a.opts.Staleness, since, value, offlineDetails), outletOf(i)))
		}
	}
	out = append(out, below...)
	return sortAlerts(out), nil
}

// sortAlerts orders alerts by kind (alertKinds' order), then full bins by
// since (longest full first), then by outlet and device, in place. Kind,
// outlet and device name one alert: the order is total, so no stable sort
// is needed. It sorts the alerts' indices, kind by kind, and moves each
// 128-byte alert at most once: a kind's alerts come in order already
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
	moved := false
	for i, k := range kind {
		order[next[k]] = int32(i)
		moved = moved || next[k] != i
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
			moved = true
		}
	}
	if moved {
		permute(out, order)
	}
	return out
}

// permute puts out[order[j]] at j for every j, in place: each cycle of the
// permutation is followed once, with one alert held aside. order is used
// up (its followed entries set to -1).
func permute(out []alert, order []int32) {
	for j := range order {
		if order[j] < 0 || int(order[j]) == j {
			continue
		}
		held := out[j]
		k := j
		for {
			src := int(order[k])
			order[k] = -1
			if src == j {
				out[k] = held
				break
			}
			out[k] = out[src]
			k = src
		}
	}
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

// silentDetail is fmt's "no device of this outlet has reported for %.0f
// minutes (staleness %s)" without its reflection (one per silent outlet:
// 10,000 in a city's outage).
func silentDetail(minutes float64, staleness time.Duration) string {
	return "no device of this outlet has reported for " + strconv.FormatFloat(minutes, 'f', 0, 64) + " minutes (staleness " + staleness.String() + ")"
}

// minutesMemo keeps texts by a number of minutes as fmt's %.0f writes it.
type minutesMemo map[string]string

// of returns the text of v's minutes, written by text the first time.
func (m minutesMemo) of(v float64, text func(minutes string) string) string {
	var buf [32]byte
	n := strconv.AppendFloat(buf[:0], v, 'f', 0, 64)
	if s, ok := m[string(n)]; ok {
		return s
	}
	s := text(string(n))
	m[string(n)] = s
	return s
}

// offlineWhy says whether and why a device is offline.
type offlineWhy uint8

const (
	online        offlineWhy = iota
	saidOffline              // its status said offline, no telemetry after it
	noTelemetry              // only a status, online, staleness ago or more
	silentTooLong            // its last report is older than staleness
)

// offlineReason decides whether a device is offline: it said so (status
// offline, not followed by telemetry), its last report is older than
// staleness, or it sent only a status, online, staleness ago or more (no
// telemetry within the lookback: it has had the time to send its first).
func offlineReason(d *metrics.DeviceState, now time.Time, staleness time.Duration) offlineWhy {
	switch {
	case d.State == telemetry.StateOffline && !d.LastReport.After(d.StateSince):
		return saidOffline
	case d.LastReport.IsZero():
		if d.State == telemetry.StateOnline && now.Sub(d.StateSince) > staleness {
			return noTelemetry
		}
		return online
	case now.Sub(d.LastReport) > staleness:
		return silentTooLong
	}
	return online
}

// offline is the alert of a device offline for the reason why: since and
// value are where it keeps its time and value, details the "no report for
// N minutes" already written.
func offline(d *metrics.DeviceState, why offlineWhy, now time.Time, staleness time.Duration, since func(time.Time) *time.Time, value func(float64) *float64, details minutesMemo) alert {
	al := alert{Kind: alertDeviceOffline, Outlet: d.Outlet, Device: d.Device}
	switch why {
	case saidOffline:
		al.Since = since(d.StateSince)
		if !d.LastReport.IsZero() {
			al.Value = value(now.Sub(d.LastReport).Minutes())
		}
		al.Detail = "the device reported itself offline"
	case noTelemetry:
		al.Since = since(d.StateSince)
		al.Detail = "online, but no telemetry within the lookback"
	case silentTooLong:
		al.Since = since(d.LastReport)
		al.Value = value(now.Sub(d.LastReport).Minutes())
		// As fmt's "%.0f minutes (staleness %s)", without its reflection
		// (one per offline device), and once for each N.
		al.Detail = details.of(*al.Value, func(n string) string {
			return "no report for " + n + " minutes (staleness " + staleness.String() + ")"
		})
	}
	return al
}
