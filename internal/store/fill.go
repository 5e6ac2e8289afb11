package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// MaxFill returns, for each step of [from, to) starting at from (the last
// may be shorter), the highest fill_pct any bin of the outlet reported in
// it (nil for a step without a report): the highest of FillByBin's.
func (s *Store) MaxFill(ctx context.Context, outlet string, from, to time.Time, step time.Duration) ([]*float64, error) {
	byBin, err := s.FillByBin(ctx, outlet, from, to, step)
	if err != nil {
		return nil, err
	}
	out := make([]*float64, steps(from, to, step))
	for _, vals := range byBin {
		for i, v := range vals {
			if v != nil && (out[i] == nil || *v > *out[i]) {
				out[i] = v
			}
		}
	}
	return out, nil
}

// FillByBin returns, for each bin of the outlet with a report in
// [from, to), the highest fill_pct it reported in each step starting at
// from (nil for a step without a report). Raw points are bucketed here, so
// steps start at from whatever its alignment (Flux 0.65's windows align to
// the epoch).
func (s *Store) FillByBin(ctx context.Context, outlet string, from, to time.Time, step time.Duration) (map[string][]*float64, error) {
	if step <= 0 || !from.Before(to) {
		return nil, fmt.Errorf("fill levels of %s: empty window or step", outlet)
	}
	flux := `from(bucket: ` + FluxString(s.cfg.Bucket) + `)
  |> range(start: ` + from.UTC().Format(time.RFC3339Nano) + `, stop: ` + to.UTC().Format(time.RFC3339Nano) + `)
  |> filter(fn: (r) => r._measurement == "` + telemetry.MeasurementBin + `" and r._field == "` + telemetry.FieldFillPct + `" and r.` + telemetry.TagOutlet + ` == ` + FluxString(outlet) + `)
  |> keep(columns: ["_time", "_value", "` + telemetry.TagDevice + `"])`
	rows, err := s.Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("fill levels of %s: %w", outlet, err)
	}
	n := steps(from, to, step)
	out := map[string][]*float64{}
	for _, r := range rows {
		d, ok0 := r[telemetry.TagDevice].(string)
		t, ok1 := r["_time"].(time.Time)
		v, ok2 := r["_value"].(float64)
		if !ok0 || !ok1 || !ok2 || t.Before(from) || !t.Before(to) {
			continue
		}
		i := int(t.Sub(from) / step)
		if i >= n {
			continue
		}
		if out[d] == nil {
			out[d] = make([]*float64, n)
		}
		if out[d][i] == nil || v > *out[d][i] {
			out[d][i] = &v
		}
	}
	return out, nil
}

func steps(from, to time.Time, step time.Duration) int { return int((to.Sub(from) + step - 1) / step) }

// Batteries returns each bin of the outlet's last battery_pct reported
// since since.
func (s *Store) Batteries(ctx context.Context, outlet string, since time.Time) (map[string]float64, error) {
	flux := `from(bucket: ` + FluxString(s.cfg.Bucket) + `)
  |> range(start: ` + since.UTC().Format(time.RFC3339Nano) + `)
  |> filter(fn: (r) => r._measurement == "` + telemetry.MeasurementBin + `" and r._field == "` + telemetry.FieldBatteryPct + `" and r.` + telemetry.TagOutlet + ` == ` + FluxString(outlet) + `)
  |> group(columns: ["` + telemetry.TagDevice + `"])
  |> last()
  |> keep(columns: ["` + telemetry.TagDevice + `", "_value"])`
	rows, err := s.Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("batteries of %s: %w", outlet, err)
	}
	out := map[string]float64{}
	for _, r := range rows {
		d, ok1 := r[telemetry.TagDevice].(string)
		v, ok2 := r["_value"].(float64)
		if ok1 && ok2 {
			out[d] = v
		}
	}
	return out, nil
}

// FullSince finds, per bin device, since when it has been full: the first
// fill_pct report at or above fullPct after the device's last report below
// it, within lookback before now (all boots of a device as one). Two small
// queries: the last report below, then the first report after it.
//
// They read every fill report of the range (Flux 0.65 filters values
// outside storage), so the last day is asked first: a bin whose last report
// below is in it has its answer there (both reports lie after it); only the
// bins full for longer are asked again over the whole lookback.
func (s *Store) FullSince(ctx context.Context, devices []string, fullPct float64, now time.Time, lookback time.Duration) (map[string]time.Time, error) {
	near := min(lookback, fullSinceFirst)
	out, longer, err := s.fullSince(ctx, devices, fullPct, now, near)
	if err != nil || len(longer) == 0 || near == lookback {
		return out, err
	}
	more, _, err := s.fullSince(ctx, longer, fullPct, now, lookback)
	for d, t := range more {
		out[d] = t
	}
	return out, err
}

// fullSinceFirst is how far back FullSince looks first.
const fullSinceFirst = 24 * time.Hour

// fullSince is FullSince over one lookback; it also returns the devices
// without a report below fullPct in it.
func (s *Store) fullSince(ctx context.Context, devices []string, fullPct float64, now time.Time, lookback time.Duration) (map[string]time.Time, []string, error) {
	out := map[string]time.Time{}
	if len(devices) == 0 {
		return out, nil, nil
	}
	isDevice := func(d string) string { return "r." + telemetry.TagDevice + " == " + FluxString(d) }
	anyDevice := make([]string, len(devices))
	for i, d := range devices {
		anyDevice[i] = isDevice(d)
	}
	base := `from(bucket: ` + FluxString(s.cfg.Bucket) + `)
  |> range(start: ` + now.Add(-lookback).UTC().Format(time.RFC3339Nano) + `, stop: ` + now.Add(time.Nanosecond).UTC().Format(time.RFC3339Nano) + `)
  |> filter(fn: (r) => r._measurement == "` + telemetry.MeasurementBin + `" and r._field == "` + telemetry.FieldFillPct + `")
  |> filter(fn: (r) => ` + strings.Join(anyDevice, " or ") + `)`
	last := func(flux string) (map[string]time.Time, error) {
		rows, err := s.Query(ctx, flux+`
  |> keep(columns: ["`+telemetry.TagDevice+`", "_time"])`)
		if err != nil {
			return nil, fmt.Errorf("since when bins are full: %w", err)
		}
		m := map[string]time.Time{}
		for _, r := range rows {
			d, ok1 := r[telemetry.TagDevice].(string)
			t, ok2 := r["_time"].(time.Time)
			if ok1 && ok2 {
				m[d] = t
			}
		}
		return m, nil
	}
	below, err := last(base + `
  |> filter(fn: (r) => r._value < ` + strconv.FormatFloat(fullPct, 'f', -1, 64) + `)
  |> group(columns: ["` + telemetry.TagDevice + `"])
  |> last()`)
	if err != nil {
		return nil, nil, err
	}
	after := make([]string, len(devices))
	var none []string
	for i, d := range devices {
		after[i] = isDevice(d)
		if t, ok := below[d]; ok {
			after[i] = "(" + after[i] + " and r._time > " + t.UTC().Format(time.RFC3339Nano) + ")"
		} else {
			none = append(none, d)
		}
	}
	out, err = last(base + `
  |> filter(fn: (r) => ` + strings.Join(after, " or ") + `)
  |> group(columns: ["` + telemetry.TagDevice + `"])
  |> first()`)
	return out, none, err
}
