package store

import (
	"bytes"
	"context"
	"encoding/json"
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
// ms and the reading, in no particular order. The strings are only valid
// during the call.
//
// It asks in InfluxQL where the server answers it (1.8; 2.x with a DBRP
// mapping), else in Flux: on 1.8, Flux reads a day of 20,000 bins' reports
// in ~37 s of InfluxDB time (the collection list's tracker loads 9 days at
// its start, then reads every 30 s), InfluxQL in a fraction of it.
func (s *Store) BinReports(ctx context.Context, from, to time.Time, outlets []string, fn func(outlet, device string, boot, t int64, pct float64) error) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	ql, err := s.SpeaksInfluxQL(ctx)
	if err != nil {
		return err
	}
	if ql {
		return s.binReportsInfluxQL(ctx, from, to, outlets, fn)
	}
	return s.binReportsFlux(ctx, from, to, outlets, fn)
}

// SpeaksInfluxQL asks the server once whether it answers InfluxQL for this
// store's bucket (/query: 1.8, or 2.x with a DBRP mapping) and remembers
// the answer; a network error decides nothing. Every reader of the store
// (the metrics engine, BinReports) shares the one probe.
func (s *Store) SpeaksInfluxQL(ctx context.Context) (bool, error) {
	switch s.ql.Load() {
	case 1:
		return true, nil
	case 2:
		return false, nil
	}
	err := s.InfluxQLScan(ctx, `SHOW MEASUREMENTS LIMIT 1`, func(int, string, map[string]string, []json.RawMessage) error { return nil })
	switch {
	case err == nil:
		s.ql.Store(1)
		return true, nil
	case ClassOf(err) == Retryable || ctx.Err() != nil:
		return false, err
	}
	s.ql.Store(2)
	return false, nil
}

func (s *Store) binReportsInfluxQL(ctx context.Context, from, to time.Time, outlets []string, fn func(outlet, device string, boot, t int64, pct float64) error) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	want, parts := outletFilter(outlets, func(o string) string { return fmt.Sprintf("%q = %s", telemetry.TagOutlet, InfluxQLString(o)) })
	filter := ""
	if parts != nil {
		filter = " AND (" + strings.Join(parts, " OR ") + ")"
	}
	q := fmt.Sprintf(`SELECT %q, %q, %q, %q FROM %q WHERE time >= %d AND time < %d%s`,
		telemetry.FieldFillPct, telemetry.TagOutlet, telemetry.TagDevice, telemetry.TagBoot, telemetry.MeasurementBin,
		from.UnixNano(), to.UnixNano(), filter)
	return s.InfluxQLScan(ctx, q, func(_ int, _ string, _ map[string]string, row []json.RawMessage) error {
		if len(row) != 5 {
			return fmt.Errorf("influxql bin report row of %d columns", len(row))
		}
		if string(row[1]) == "null" {
			return nil // a bin point without a fill level
		}
		outlet, device := JSONString(row[2]), JSONString(row[3])
		if want != nil && !want[outlet] {
			return nil
		}
		t, err := strconv.ParseInt(string(row[0]), 10, 64)
		if err != nil {
			return fmt.Errorf("bin report time %q: %w", row[0], err)
		}
		pct, err := strconv.ParseFloat(string(row[1]), 64)
		if err != nil {
			return fmt.Errorf("bin report fill_pct %q: %w", row[1], err)
		}
		boot, _ := strconv.ParseInt(JSONString(row[4]), 10, 64)
		return fn(outlet, device, boot, time.Unix(0, t).UnixMilli(), pct)
	})
}

// outletFilter returns the outlets as a set (nil: every outlet) and, when
// they are few enough to name in a query, each one's condition.
func outletFilter(outlets []string, cond func(string) string) (map[string]bool, []string) {
	if outlets == nil {
		return nil, nil
	}
	want := make(map[string]bool, len(outlets))
	for _, o := range outlets {
		want[o] = true
	}
	if len(outlets) > maxOutletFilter {
		return want, nil
	}
	parts := make([]string, len(outlets))
	for i, o := range outlets {
		parts[i] = cond(o)
	}
	return want, parts
}

// JSONString reads a JSON string value of an InfluxQL answer (a tag), ""
// for null or anything else.
func JSONString(m json.RawMessage) string {
	if len(m) >= 2 && m[0] == '"' && !bytes.ContainsRune(m[1:len(m)-1], '\\') {
		return string(m[1 : len(m)-1])
	}
	var s string
	if json.Unmarshal(m, &s) != nil {
		return ""
	}
	return s
}

func (s *Store) binReportsFlux(ctx context.Context, from, to time.Time, outlets []string, fn func(outlet, device string, boot, t int64, pct float64) error) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	want, parts := outletFilter(outlets, func(o string) string { return "r." + telemetry.TagOutlet + " == " + FluxString(o) })
	filter := ""
	if parts != nil {
		filter = "\n  |> filter(fn: (r) => " + strings.Join(parts, " or ") + ")"
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
