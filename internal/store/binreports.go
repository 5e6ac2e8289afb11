package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// maxOutletFilter is the most outlets a query names; above it the query
// reads every outlet and the caller's list is applied here (one long OR
// costs InfluxDB more than the rows it saves).
const maxOutletFilter = 64

// BinReports streams the bins' fill reports (storage-v1: measurement bin,
// field fill_pct) with from <= time < to, of the given outlets (all when
// outlets is nil): fn gets the outlet, the device, the boot, the time in
// ms and the reading. Each series comes in time order, series one after
// the other. The strings are only valid during the call.
func (s *Store) BinReports(ctx context.Context, from, to time.Time, outlets []string, fn func(outlet, device string, boot, t int64, pct float64) error) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	var want map[string]bool
	filter := ""
	if outlets != nil {
		want = make(map[string]bool, len(outlets))
		for _, o := range outlets {
			want[o] = true
		}
		if len(outlets) <= maxOutletFilter {
			parts := make([]string, len(outlets))
			for i, o := range outlets {
				parts[i] = "r." + telemetry.TagOutlet + " == " + FluxString(o)
			}
			filter = "\n  |> filter(fn: (r) => " + strings.Join(parts, " or ") + ")"
		}
	}
	flux := `from(bucket: ` + FluxString(s.cfg.Bucket) + `)
  |> range(start: ` + from.UTC().Format(time.RFC3339Nano) + `, stop: ` + to.UTC().Format(time.RFC3339Nano) + `)
  |> filter(fn: (r) => r._measurement == "` + telemetry.MeasurementBin + `" and r._field == "` + telemetry.FieldFillPct + `")` + filter + `
  |> keep(columns: ["_time", "_value", "` + telemetry.TagOutlet + `", "` + telemetry.TagDevice + `", "` + telemetry.TagBoot + `"])`
	cols := []string{"_time", "_value", telemetry.TagOutlet, telemetry.TagDevice, telemetry.TagBoot}
	return s.FluxScan(ctx, flux, cols, func(v []string) error {
		if want != nil && !want[v[2]] {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, v[0])
		if err != nil {
			return fmt.Errorf("bin report time %q: %w", v[0], err)
		}
		if t.Before(from) || !t.Before(to) {
			// InfluxDB 1.8's Flux returns points at the stop time too.
			return nil
		}
		pct, err := strconv.ParseFloat(v[1], 64)
		if err != nil {
			return fmt.Errorf("bin report fill_pct %q: %w", v[1], err)
		}
		boot, _ := strconv.ParseInt(v[4], 10, 64)
		return fn(v[2], v[3], boot, t.UnixMilli(), pct)
	})
}
