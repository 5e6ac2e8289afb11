package metrics

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// The engine's questions in Flux (source.go says which language runs).

type fluxSource struct{ st *store.Store }

func (fluxSource) name() string { return "flux" }

// fluxNames puts the storage names into the query templates below, so they
// read as Flux and the names stay declared once (telemetry, store).
var fluxNames = strings.NewReplacer("{outlet}", telemetry.TagOutlet, "{device}", telemetry.TagDevice, "{boot}", telemetry.TagBoot,
	"{kind}", telemetry.TagKind, "{seq}", telemetry.FieldSeq, "{fill_pct}", telemetry.FieldFillPct, "{state}", telemetry.FieldState,
	"{v}", store.TagRollupVersion, "{data}", store.FieldRollupData)

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
		b.WriteString("r." + telemetry.TagOutlet + " == ")
		b.WriteString(store.FluxString(o))
	}
	b.WriteString(")")
	return b.String()
}

func (s fluxSource) from(a, e int64) string {
	return fmt.Sprintf("from(bucket: %s)\n  |> range(start: %s, stop: %s)", store.FluxString(s.st.Bucket()), fluxTime(a), fluxTime(e))
}

var fieldIndex = func() map[string]int {
	m := map[string]int{telemetry.FieldSeq: -1}
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
	q := s.from(a, e) + fmt.Sprintf(fluxNames.Replace(`
  |> filter(fn: (r) => (r._measurement == %q and (%sr._field == "{seq}")) or (r._measurement == %q and (r._field == "{fill_pct}" or r._field == "{seq}")))%s
  |> keep(columns: ["_time", "_value", "_measurement", "_field", "{outlet}", "{device}", "{boot}"])`),
		telemetry.MeasurementCounter, fields.String(), telemetry.MeasurementBin, fluxOutlets(outletFilter(outlets)))
	want := wanted(outlets)
	// Each table is one (series, field), in time order; the rows of one
	// point are merged by normalize.
	return s.st.FluxScan(ctx, q, []string{"_time", "_value", "_measurement", "_field", telemetry.TagOutlet, telemetry.TagDevice, telemetry.TagBoot}, func(v []string) error {
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
		case telemetry.MeasurementCounter:
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
		case telemetry.MeasurementBin:
			rep := binReport{t: t, boot: boot}
			if v[3] == telemetry.FieldFillPct {
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
	q := s.from(a, e) + fmt.Sprintf(fluxNames.Replace(`
  |> filter(fn: (r) => (r._measurement == %q or r._measurement == %q) and r._field == "{seq}")
  |> group(columns: ["_measurement", "{outlet}"])
  |> window(every: 1h)
  |> reduce(fn: (r, accumulator) => ({n: accumulator.n + 1, s: accumulator.s + r._value}), identity: {n: 0, s: 0})
  |> keep(columns: ["_start", "_measurement", "{outlet}", "n", "s"])`), telemetry.MeasurementCounter, telemetry.MeasurementBin)
	out := map[fpKey]fingerprint{}
	err := s.st.FluxScan(ctx, q, []string{"_start", "_measurement", telemetry.TagOutlet, "n", "s"}, func(v []string) error {
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
		if v[1] == telemetry.MeasurementCounter {
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
	q := s.from(a, e) + fmt.Sprintf(fluxNames.Replace(`
  |> filter(fn: (r) => r._measurement == %q and r._field == "{state}")
  |> last()
  |> keep(columns: ["_time", "_value", "{outlet}", "{kind}", "{device}"])`), telemetry.MeasurementStatus)
	var out []statusRow
	err := s.st.FluxScan(ctx, q, []string{"_time", "_value", telemetry.TagOutlet, telemetry.TagKind, telemetry.TagDevice}, func(v []string) error {
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
	q := s.from(a, e) + fmt.Sprintf(fluxNames.Replace(`
  |> filter(fn: (r) => r._measurement == %q and r.{v} == %s and r._field == "{data}")%s
  |> keep(columns: ["_time", "_value", "{outlet}"])`), store.MeasurementRollup, store.FluxString(v), fluxOutlets(outletFilter(outlets)))
	return s.st.FluxScan(ctx, q, []string{"_time", "_value", telemetry.TagOutlet}, func(vals []string) error {
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
	q := fmt.Sprintf(fluxNames.Replace(`from(bucket: %s)
  |> range(start: 1970-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == %q and r.{v} == %s)
  |> last()
  |> keep(columns: ["_field", "_value"])`), store.FluxString(s.st.Bucket()), store.MeasurementRollupState, store.FluxString(v))
	var haveFrom, haveTo bool
	err = s.st.FluxScan(ctx, q, []string{"_field", "_value"}, func(vals []string) error {
		n, err := strconv.ParseInt(vals[1], 10, 64)
		if err != nil {
			return fmt.Errorf("flux roll-up state %q: %w", vals[1], err)
		}
		switch vals[0] {
		case store.FieldRollupBuiltFrom:
			from, haveFrom = n, true
		case store.FieldRollupBuiltTo:
			to, haveTo = n, true
		}
		return nil
	})
	return from, to, haveFrom && haveTo, err
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
