package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/store"
)

// The engine reads InfluxDB through minimal queries only (a time range, a
// measurement, tag equality, a list of fields) and computes everything in
// Go: Flux's increase/difference are not metrics-v1, Flux aggregates run
// outside storage in 1.8, and neither InfluxQL nor Flux can express the
// baseline and the per-class step rule. The same five questions are asked
// in two languages:
//
//   - Flux through /api/v2/query, which InfluxDB 1.8 (Flux 0.65) and 2.x
//     both serve (only range, filter, keep, group, window, reduce, last);
//   - InfluxQL through /query (1.x; 2.x through its v1 compatibility API
//     with a DBRP mapping), whose wide rows and tags-as-columns answers are
//     read about 3x faster, without one table per series.
//
// QueryLanguage chooses; Auto probes /query once and falls back to Flux.

// QueryLanguage selects how the engine and the roll-up read InfluxDB.
type QueryLanguage int

// Query languages.
const (
	Auto     QueryLanguage = iota // InfluxQL when /query answers for the bucket, else Flux
	Flux                          // Flux only: InfluxDB 2.x without a DBRP mapping, Cloud
	InfluxQL                      // InfluxQL only
)

func (l QueryLanguage) String() string {
	switch l {
	case Flux:
		return "flux"
	case InfluxQL:
		return "influxql"
	}
	return "auto"
}

// ParseQueryLanguage reads "auto", "flux" or "influxql".
func ParseQueryLanguage(s string) (QueryLanguage, error) {
	switch s {
	case "auto", "":
		return Auto, nil
	case "flux":
		return Flux, nil
	case "influxql":
		return InfluxQL, nil
	}
	return Auto, fmt.Errorf("query language %q: want auto, flux or influxql", s)
}

// Measurements this package reads and writes.
const (
	measCounter     = "counter"
	measBin         = "bin"
	measStatus      = "device_status"
	measRollup      = "rollup"
	measRollupState = "rollup_state"
)

// fingerprint is what InfluxDB says about one outlet's raw points in one
// hour: the count and the sum of seq, per measurement.
type fingerprint struct {
	counterN, counterSum, binN, binSum int64
}

type fpKey struct {
	outlet string
	hour   int64 // ns
}

// statusRow is the last device_status of one device.
type statusRow struct {
	outlet, kind, device, state string
	t                           int64
}

// source answers the engine's and the roll-up's questions.
type source interface {
	// raw reads counter points and bin reports with a <= time < e, of the
	// given outlets (all when outlets is nil).
	raw(ctx context.Context, a, e int64, outlets []string, into rawSet) error
	// fingerprints counts seq per outlet and hour in [a, e) (whole hours).
	fingerprints(ctx context.Context, a, e int64) (map[fpKey]fingerprint, error)
	// statuses returns the last device_status of each device in [a, e).
	statuses(ctx context.Context, a, e int64) ([]statusRow, error)
	// rollups streams the roll-up rows of format key v in [a, e).
	rollups(ctx context.Context, v string, a, e int64, outlets []string, fn func(outlet string, t int64, data string) error) error
	// rollupState returns the last roll-up state of format key v.
	rollupState(ctx context.Context, v string) (from, to int64, ok bool, err error)
	name() string
}

var (
	_ source = influxQLSource{}
	_ source = fluxSource{}
)

// maxOutletFilter is the most outlets a query names; above it the query
// reads every outlet and the engine drops the others (one long OR costs
// InfluxDB more than the rows it saves).
const maxOutletFilter = 64

func outletFilter(outlets []string) []string {
	if outlets == nil || len(outlets) > maxOutletFilter {
		return nil
	}
	return outlets
}

// ---------------------------------------------------------------- InfluxQL

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
		b.WriteString(`"outlet" = `)
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
	q := fmt.Sprintf(`SELECT %s"seq","outlet","device","boot" FROM %q WHERE time >= %d AND time < %d%s;`+
		`SELECT "fill_pct","seq","outlet","device","boot" FROM %q WHERE time >= %d AND time < %d%s`,
		fields.String(), measCounter, a, e, filter, measBin, a, e, filter)
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
			o, d, bt := jsonStr(row[numFields+2]), jsonStr(row[numFields+3]), jsonStr(row[numFields+4])
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
		o, d, bt := jsonStr(row[3]), jsonStr(row[4]), jsonStr(row[5])
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
	q := fmt.Sprintf(`SELECT count("seq"), sum("seq") FROM %q WHERE time >= %d AND time < %d GROUP BY time(1h), "outlet" fill(none);`+
		`SELECT count("seq"), sum("seq") FROM %q WHERE time >= %d AND time < %d GROUP BY time(1h), "outlet" fill(none)`,
		measCounter, a, e, measBin, a, e)
	out := map[fpKey]fingerprint{}
	err := s.st.InfluxQLScan(ctx, q, func(stmt int, _ string, tags map[string]string, row []json.RawMessage) error {
		if len(row) != 3 {
			return fmt.Errorf("influxql fingerprint row of %d columns", len(row))
		}
		k := fpKey{outlet: tags["outlet"], hour: jsonInt(row[0])}
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
	q := fmt.Sprintf(`SELECT last("state") FROM %q WHERE time >= %d AND time < %d GROUP BY "outlet","kind","device"`, measStatus, a, e)
	var out []statusRow
	err := s.st.InfluxQLScan(ctx, q, func(_ int, _ string, tags map[string]string, row []json.RawMessage) error {
		if len(row) != 2 {
			return fmt.Errorf("influxql status row of %d columns", len(row))
		}
		out = append(out, statusRow{outlet: tags["outlet"], kind: tags["kind"], device: tags["device"], state: jsonStr(row[1]), t: jsonInt(row[0])})
		return nil
	})
	return out, err
}

func (s influxQLSource) rollups(ctx context.Context, v string, a, e int64, outlets []string, fn func(outlet string, t int64, data string) error) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	want := wanted(outlets)
	q := fmt.Sprintf(`SELECT "data","outlet" FROM %q WHERE "v" = %s AND time >= %d AND time < %d%s`,
		measRollup, store.InfluxQLString(v), a, e, qlOutlets(outletFilter(outlets)))
	return s.st.InfluxQLScan(ctx, q, func(_ int, _ string, _ map[string]string, row []json.RawMessage) error {
		if len(row) != 3 {
			return fmt.Errorf("influxql roll-up row of %d columns", len(row))
		}
		o := jsonStr(row[2])
		if want != nil && !want[o] {
			return nil
		}
		return fn(o, jsonInt(row[0]), jsonStr(row[1]))
	})
}

func (s influxQLSource) rollupState(ctx context.Context, v string) (from, to int64, ok bool, err error) {
	q := fmt.Sprintf(`SELECT last("built_from"), last("built_to") FROM %q WHERE "v" = %s`, measRollupState, store.InfluxQLString(v))
	err = s.st.InfluxQLScan(ctx, q, func(_ int, _ string, _ map[string]string, row []json.RawMessage) error {
		if len(row) != 3 {
			return fmt.Errorf("influxql roll-up state row of %d columns", len(row))
		}
		from, to, ok = jsonInt(row[1]), jsonInt(row[2]), true
		return nil
	})
	return from, to, ok, err
}

// -------------------------------------------------------------------- Flux

type fluxSource struct{ st *store.Store }

func (fluxSource) name() string { return "flux" }

func fluxTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func fluxOutlets(outlets []string) string {
	if len(outlets) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n  |> filter(fn: (r) => ")
	for i, o := range outlets {
		if i > 0 {
			b.WriteString(" or ")
		}
		b.WriteString("r.outlet == ")
		b.WriteString(store.FluxString(o))
	}
	b.WriteString(")")
	return b.String()
}

func (s fluxSource) from(a, e int64) string {
	return fmt.Sprintf("from(bucket: %s)\n  |> range(start: %s, stop: %s)", store.FluxString(s.st.Bucket()), fluxTime(a), fluxTime(e))
}

var fieldIndex = func() map[string]int {
	m := map[string]int{"seq": -1}
	for i, n := range fieldNames {
		m[n] = i
	}
	return m
}()

func (s fluxSource) raw(ctx context.Context, a, e int64, outlets []string, into rawSet) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	var fields strings.Builder
	for _, f := range fieldNames {
		fmt.Fprintf(&fields, "r._field == %q or ", f)
	}
	q := s.from(a, e) + fmt.Sprintf(`
  |> filter(fn: (r) => (r._measurement == %q and (%sr._field == "seq")) or (r._measurement == %q and (r._field == "fill_pct" or r._field == "seq")))%s
  |> keep(columns: ["_time", "_value", "_measurement", "_field", "outlet", "device", "boot"])`,
		measCounter, fields.String(), measBin, fluxOutlets(outletFilter(outlets)))
	want := wanted(outlets)
	// Each table is one (series, field), in time order; the rows of one
	// point are merged by normalize.
	return s.st.FluxScan(ctx, q, []string{"_time", "_value", "_measurement", "_field", "outlet", "device", "boot"}, func(v []string) error {
		o := v[4]
		if want != nil && !want[o] {
			return nil
		}
		t, err := parseFluxTime(v[0])
		if err != nil {
			return err
		}
		r := into.outlet(o)
		boot := parseBoot(v[6])
		switch v[2] {
		case measCounter:
			f, ok := fieldIndex[v[3]]
			if !ok {
				return nil
			}
			n, err := strconv.ParseInt(v[1], 10, 64)
			if err != nil {
				return fmt.Errorf("flux %s %s: %w", v[2], v[3], err)
			}
			p := counterPoint{t: t}
			if f < 0 {
				p.seq, p.hasSeq = n, true
			} else {
				p.v[f] = n
				p.has = 1 << f
			}
			cs := r.series(v[5], boot)
			cs.pts = append(cs.pts, p)
		case measBin:
			rep := binReport{t: t, boot: boot}
			if v[3] == "fill_pct" {
				x, err := strconv.ParseFloat(v[1], 64)
				if err != nil {
					return fmt.Errorf("flux bin fill_pct: %w", err)
				}
				rep.fill, rep.hasFill = x, true
			} else {
				n, err := strconv.ParseInt(v[1], 10, 64)
				if err != nil {
					return fmt.Errorf("flux bin seq: %w", err)
				}
				rep.seq, rep.hasSeq = n, true
			}
			bd := r.bin(v[5])
			bd.reps = append(bd.reps, rep)
		}
		return nil
	})
}

func (s fluxSource) fingerprints(ctx context.Context, a, e int64) (map[fpKey]fingerprint, error) {
	q := s.from(a, e) + fmt.Sprintf(`
  |> filter(fn: (r) => (r._measurement == %q or r._measurement == %q) and r._field == "seq")
  |> group(columns: ["_measurement", "outlet"])
  |> window(every: 1h)
  |> reduce(fn: (r, accumulator) => ({n: accumulator.n + 1, s: accumulator.s + r._value}), identity: {n: 0, s: 0})
  |> keep(columns: ["_start", "_measurement", "outlet", "n", "s"])`, measCounter, measBin)
	out := map[fpKey]fingerprint{}
	err := s.st.FluxScan(ctx, q, []string{"_start", "_measurement", "outlet", "n", "s"}, func(v []string) error {
		h, err := parseFluxTime(v[0])
		if err != nil {
			return err
		}
		n, err1 := strconv.ParseInt(v[3], 10, 64)
		sum, err2 := strconv.ParseInt(v[4], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("flux fingerprint %q %q", v[3], v[4])
		}
		k := fpKey{outlet: v[2], hour: h}
		fp := out[k]
		if v[1] == measCounter {
			fp.counterN, fp.counterSum = n, sum
		} else {
			fp.binN, fp.binSum = n, sum
		}
		out[k] = fp
		return nil
	})
	return out, err
}

func (s fluxSource) statuses(ctx context.Context, a, e int64) ([]statusRow, error) {
	q := s.from(a, e) + fmt.Sprintf(`
  |> filter(fn: (r) => r._measurement == %q and r._field == "state")
  |> last()
  |> keep(columns: ["_time", "_value", "outlet", "kind", "device"])`, measStatus)
	var out []statusRow
	err := s.st.FluxScan(ctx, q, []string{"_time", "_value", "outlet", "kind", "device"}, func(v []string) error {
		t, err := parseFluxTime(v[0])
		if err != nil {
			return err
		}
		out = append(out, statusRow{outlet: v[2], kind: v[3], device: v[4], state: v[1], t: t})
		return nil
	})
	return out, err
}

func (s fluxSource) rollups(ctx context.Context, v string, a, e int64, outlets []string, fn func(outlet string, t int64, data string) error) error {
	if outlets != nil && len(outlets) == 0 {
		return nil
	}
	want := wanted(outlets)
	q := s.from(a, e) + fmt.Sprintf(`
  |> filter(fn: (r) => r._measurement == %q and r.v == %s and r._field == "data")%s
  |> keep(columns: ["_time", "_value", "outlet"])`, measRollup, store.FluxString(v), fluxOutlets(outletFilter(outlets)))
	return s.st.FluxScan(ctx, q, []string{"_time", "_value", "outlet"}, func(vals []string) error {
		if want != nil && !want[vals[2]] {
			return nil
		}
		t, err := parseFluxTime(vals[0])
		if err != nil {
			return err
		}
		return fn(vals[2], t, vals[1])
	})
}

func (s fluxSource) rollupState(ctx context.Context, v string) (from, to int64, ok bool, err error) {
	q := fmt.Sprintf(`from(bucket: %s)
  |> range(start: 1970-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == %q and r.v == %s)
  |> last()
  |> keep(columns: ["_field", "_value"])`, store.FluxString(s.st.Bucket()), measRollupState, store.FluxString(v))
	var haveFrom, haveTo bool
	err = s.st.FluxScan(ctx, q, []string{"_field", "_value"}, func(vals []string) error {
		n, err := strconv.ParseInt(vals[1], 10, 64)
		if err != nil {
			return fmt.Errorf("flux roll-up state %q: %w", vals[1], err)
		}
		switch vals[0] {
		case "built_from":
			from, haveFrom = n, true
		case "built_to":
			to, haveTo = n, true
		}
		return nil
	})
	return from, to, haveFrom && haveTo, err
}

// ----------------------------------------------------------------- helpers

func wanted(outlets []string) map[string]bool {
	if outlets == nil {
		return nil
	}
	m := make(map[string]bool, len(outlets))
	for _, o := range outlets {
		m[o] = true
	}
	return m
}

// parseBoot reads the boot tag; a series without a readable boot is kept
// apart from every real boot.
func parseBoot(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func jsonStr(m json.RawMessage) string {
	if len(m) >= 2 && m[0] == '"' && !strings.ContainsRune(string(m[1:len(m)-1]), '\\') {
		return string(m[1 : len(m)-1])
	}
	var s string
	if json.Unmarshal(m, &s) != nil {
		return ""
	}
	return s
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

// parseFluxTime reads Flux's RFC 3339 times (UTC, "Z") fast, falling back
// to the library for anything else.
func parseFluxTime(s string) (int64, error) {
	// 2006-01-02T15:04:05[.fraction]Z
	if len(s) >= 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[len(s)-1] == 'Z' {
		y, ok1 := atoi(s[0:4])
		mo, ok2 := atoi(s[5:7])
		d, ok3 := atoi(s[8:10])
		h, ok4 := atoi(s[11:13])
		mi, ok5 := atoi(s[14:16])
		se, ok6 := atoi(s[17:19])
		frac := int64(0)
		ok7 := true
		if len(s) > 20 {
			if s[19] != '.' || len(s) > 30 {
				ok7 = false
			} else {
				digits := s[20 : len(s)-1]
				n, ok := atoi(digits)
				ok7 = ok && len(digits) > 0
				frac = int64(n)
				for i := len(digits); i < 9; i++ {
					frac *= 10
				}
			}
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 {
			return time.Date(y, time.Month(mo), d, h, mi, se, 0, time.UTC).UnixNano() + frac, nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("flux time %q: %w", s, err)
	}
	return t.UnixNano(), nil
}

func atoi(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
