package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// The engine's questions in InfluxQL (source.go says which language runs).

type influxQLSource struct{ st *store.Store }

func (influxQLSource) name() string { return "influxql" }

func qlOutlets(outlets []string) string {
	if len(outlets) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" AND (")
	for i, o := range outlets {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString(strconv.Quote(telemetry.TagOutlet) + " = ")
		b.WriteString(store.InfluxQLString(o))
	}
	b.WriteString(")")
	return b.String()
}

func (s influxQLSource) raw(ctx context.Context, a, e int64, outlets []string, into rawSet) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	filter := qlOutlets(outletFilter(outlets))
	var fields strings.Builder
	for _, f := range fieldNames {
		fmt.Fprintf(&fields, "%q,", f)
	}
	// Tags are selected as columns and the series are not grouped: InfluxDB
	// then merges all series into one stream instead of answering series by
	// series, which costs it about 40 µs per series.
	q := fmt.Sprintf(`SELECT %s%q,%q,%q,%q FROM %q WHERE time >= %d AND time < %d%s;`+
		`SELECT %q,%q,%q,%q,%q FROM %q WHERE time >= %d AND time < %d%s`,
		fields.String(), telemetry.FieldSeq, telemetry.TagOutlet, telemetry.TagDevice, telemetry.TagBoot, telemetry.MeasurementCounter, a, e, filter,
		telemetry.FieldFillPct, telemetry.FieldSeq, telemetry.TagOutlet, telemetry.TagDevice, telemetry.TagBoot, telemetry.MeasurementBin, a, e, filter)
	want := wanted(outlets)
	var cs *counterSeries
	var bd *binDevice
	var lastOutlet, lastDevice, lastBoot string
	var r *outletRaw
	return s.st.InfluxQLScan(ctx, q, func(stmt int, _ string, _ map[string]string, row []json.RawMessage) error {
		if stmt == 0 {
			if len(row) != numFields+5 {
				return fmt.Errorf("influxql counter row of %d columns", len(row))
			}
			o, d, bt := store.JSONString(row[numFields+2]), store.JSONString(row[numFields+3]), store.JSONString(row[numFields+4])
			if want != nil && !want[o] {
				return nil
			}
			if cs == nil || o != lastOutlet || d != lastDevice || bt != lastBoot {
				r = into.outlet(o)
				cs = r.series(d, parseBoot(bt))
				lastOutlet, lastDevice, lastBoot = o, d, bt
				bd = nil
			}
			p := counterPoint{t: jsonInt(row[0])}
			for f := 0; f < numFields; f++ {
				if v, ok := jsonIntOK(row[1+f]); ok {
					p.v[f] = v
					p.has |= 1 << f
				}
			}
			p.seq, p.hasSeq = jsonIntOK(row[numFields+1])
			cs.pts = append(cs.pts, p)
			return nil
		}
		if len(row) != 6 {
			return fmt.Errorf("influxql bin row of %d columns", len(row))
		}
		o, d, bt := store.JSONString(row[3]), store.JSONString(row[4]), store.JSONString(row[5])
		if want != nil && !want[o] {
			return nil
		}
		if bd == nil || o != lastOutlet || d != lastDevice {
			r = into.outlet(o)
			bd = r.bin(d)
			lastOutlet, lastDevice = o, d
			cs = nil
		}
		rep := binReport{t: jsonInt(row[0]), boot: parseBoot(bt)}
		rep.fill, rep.hasFill = jsonFloatOK(row[1])
		rep.seq, rep.hasSeq = jsonIntOK(row[2])
		bd.reps = append(bd.reps, rep)
		return nil
	})
}

func (s influxQLSource) fingerprints(ctx context.Context, a, e int64) (map[fpKey]fingerprint, error) {
	const fp = `SELECT count(%[1]q), sum(%[1]q) FROM %[2]q WHERE time >= %[3]d AND time < %[4]d GROUP BY time(1h), %[5]q fill(none)`
	q := fmt.Sprintf(fp, telemetry.FieldSeq, telemetry.MeasurementCounter, a, e, telemetry.TagOutlet) + ";" +
		fmt.Sprintf(fp, telemetry.FieldSeq, telemetry.MeasurementBin, a, e, telemetry.TagOutlet)
	out := map[fpKey]fingerprint{}
	err := s.st.InfluxQLScan(ctx, q, func(stmt int, _ string, tags map[string]string, row []json.RawMessage) error {
		if len(row) != 3 {
			return fmt.Errorf("influxql fingerprint row of %d columns", len(row))
		}
		k := fpKey{outlet: tags[telemetry.TagOutlet], hour: jsonInt(row[0])}
		fp := out[k]
		if stmt == 0 {
			fp.counterN, fp.counterSum = jsonInt(row[1]), jsonInt(row[2])
		} else {
			fp.binN, fp.binSum = jsonInt(row[1]), jsonInt(row[2])
		}
		out[k] = fp
		return nil
	})
	return out, err
}

func (s influxQLSource) statuses(ctx context.Context, a, e int64) ([]statusRow, error) {
	q := fmt.Sprintf(`SELECT last(%q) FROM %q WHERE time >= %d AND time < %d GROUP BY %q,%q,%q`,
		telemetry.FieldState, telemetry.MeasurementStatus, a, e, telemetry.TagOutlet, telemetry.TagKind, telemetry.TagDevice)
	var out []statusRow
	err := s.st.InfluxQLScan(ctx, q, func(_ int, _ string, tags map[string]string, row []json.RawMessage) error {
		if len(row) != 2 {
			return fmt.Errorf("influxql status row of %d columns", len(row))
		}
		out = append(out, statusRow{outlet: tags[telemetry.TagOutlet], kind: tags[telemetry.TagKind], device: tags[telemetry.TagDevice], state: store.JSONString(row[1]), t: jsonInt(row[0])})
		return nil
	})
	return out, err
}

func (s influxQLSource) rollups(ctx context.Context, v string, a, e int64, outlets []string, fn func(outlet string, t int64, data string) error) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	want := wanted(outlets)
	q := fmt.Sprintf(`SELECT %q,%q FROM %q WHERE %q = %s AND time >= %d AND time < %d%s`,
		store.FieldRollupData, telemetry.TagOutlet, store.MeasurementRollup, store.TagRollupVersion, store.InfluxQLString(v), a, e, qlOutlets(outletFilter(outlets)))
	return s.st.InfluxQLScan(ctx, q, func(_ int, _ string, _ map[string]string, row []json.RawMessage) error {
		if len(row) != 3 {
			return fmt.Errorf("influxql roll-up row of %d columns", len(row))
		}
		o := store.JSONString(row[2])
		if want != nil && !want[o] {
			return nil
		}
		return fn(o, jsonInt(row[0]), store.JSONString(row[1]))
	})
}

func (s influxQLSource) rollupState(ctx context.Context, v string) (from, to int64, ok bool, err error) {
	q := fmt.Sprintf(`SELECT last(%q), last(%q) FROM %q WHERE %q = %s`,
		store.FieldRollupBuiltFrom, store.FieldRollupBuiltTo, store.MeasurementRollupState, store.TagRollupVersion, store.InfluxQLString(v))
	err = s.st.InfluxQLScan(ctx, q, func(_ int, _ string, _ map[string]string, row []json.RawMessage) error {
		if len(row) != 3 {
			return fmt.Errorf("influxql roll-up state row of %d columns", len(row))
		}
		from, to, ok = jsonInt(row[1]), jsonInt(row[2]), true
		return nil
	})
	return from, to, ok, err
}

func jsonInt(m json.RawMessage) int64 {
	n, _ := jsonIntOK(m)
	return n
}

func jsonIntOK(m json.RawMessage) (int64, bool) {
	if len(m) == 0 || string(m) == "null" {
		return 0, false
	}
	n, err := strconv.ParseInt(string(m), 10, 64)
	if err != nil {
		// A float field where an int was expected: take its integer part
		// rather than drop the point.
		f, err := strconv.ParseFloat(string(m), 64)
		if err != nil {
			return 0, false
		}
		return int64(f), true
	}
	return n, true
}

func jsonFloatOK(m json.RawMessage) (float64, bool) {
	if len(m) == 0 || string(m) == "null" {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(m), 64)
	return f, err == nil
}
