package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/testenv"
)

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			RefID      string `json:"refId"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			Query string `json:"query"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(deployPath(t, "monitoring", "grafana", "greenpost.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("greenpost.json: %v", err)
	}
	return d
}

// fluxQueries returns the dashboard's Flux queries by panel title (and
// variable name), and its Prometheus expressions.
func dashboardQueries(t *testing.T) (flux map[string]string, promql []string) {
	d := readDashboard(t)
	flux = map[string]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			switch tg.Datasource.Type {
			case "influxdb":
				flux[p.Title+"/"+tg.RefID] = tg.Query
			case "prometheus":
				promql = append(promql, tg.Expr)
			default:
				t.Errorf("panel %q: data source type %q", p.Title, tg.Datasource.Type)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			flux["$"+v.Name] = v.Query
		}
	}
	return flux, promql
}

var grafanaMacro = regexp.MustCompile(`\$\{[a-z_]+\}|\bv\.(timeRangeStart|timeRangeStop|windowPeriod|defaultBucket|organization)\b`)

// interpolate does what Grafana does to a Flux query before sending it:
// its time range and interval macros and the dashboard's variables.
func interpolate(t *testing.T, q string, vars map[string]string) string {
	t.Helper()
	out := grafanaMacro.ReplaceAllStringFunc(q, func(m string) string {
		v, ok := vars[m]
		if !ok {
			t.Errorf("the dashboard uses %s, which the test does not fill", m)
		}
		return v
	})
	return out
}

type lineSet struct{ b []byte }

func (l *lineSet) add(format string, args ...any) { l.b = fmt.Appendf(l.b, format+"\n", args...) }

// TestDashboardFluxOnInfluxDB runs every Flux query of the dashboard, as
// Grafana sends it, against InfluxDB 1.8.10 holding a small city whose
// figures are worked out by hand: fill levels, parcels by class with a
// reset, a reboot, the 24 h baseline and a series whose earlier point is
// too old, green rate by district over the registry (a deleted and an
// inactive outlet left out), bin coverage from the roll-up rows of the
// chosen roll-up version (another version beside them), dead letters by
// reason. The telemetry bucket is named without a retention policy ("gp"),
// the API's with one, as the two ways 1.8 takes.
func TestDashboardFluxOnInfluxDB(t *testing.T) {
	in := testenv.StartInflux(t)
	if err := in.Exec("CREATE DATABASE gp_api"); err != nil {
		t.Fatal(err)
	}
	h0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	from, to := h0, h0.Add(3*time.Hour)
	ns := func(d time.Duration) int64 { return from.Add(d).UnixNano() }
	m := time.Minute

	var tele, own lineSet
	counter := func(outlet, dev string, boot int, at time.Duration, reusable, recyclable, plastic, foam int) {
		tele.add("counter,outlet=%s,device=%s,boot=%d reusable=%di,recyclable=%di,biodegradable=0i,original=0i,plastic=%di,foam=%di,other=0i,seq=1i %d",
			outlet, dev, boot, reusable, recyclable, plastic, foam, ns(at))
	}
	counter("o-1", "c-1", 1, -2*time.Hour, 10, 100, 20, 0)          // the baseline (within 24 h)
	counter("o-1", "c-1", 1, 10*m, 12, 130, 25, 0)                  // +2 +30 +5
	counter("o-1", "c-1", 1, 70*m, 1, 4, 2, 0)                      // a reset: +1 +4 +2
	counter("o-1", "c-1", 2, 80*m, 0, 7, 0, 0)                      // a new boot counts from 0: +7
	counter("o-2", "c-2", 1, -25*time.Hour, 0, 1000, 0, 0)          // too old to be a baseline
	counter("o-2", "c-2", 1, 30*m, 0, 1010, 0, 5)                   // so +1010 +5
	counter("o-3", "c-3", 1, 30*m, 0, 50, 0, 0)                     // deleted from the registry
	counter("o-4", "c-4", 1, 30*m, 0, 0, 9, 0)                      // inactive
	counter("o-1", "c-1", 2, 3*time.Hour+time.Minute, 0, 900, 0, 0) // after the range
	bin := func(outlet, dev string, boot int, at time.Duration, fill float64) {
		tele.add("bin,outlet=%s,device=%s,boot=%d fill_pct=%g,deposits=1i,seq=1i %d", outlet, dev, boot, fill, ns(at))
	}
	bin("o-1", "b-1", 1, 5*m, 30)
	bin("o-1", "b-1", 1, 65*m, 95)
	bin("o-2", "b-2", 1, 20*m, 50)
	bin("o-1", "b-1", 2, 100*m, 10) // after a reboot: b-1's last report
	for i, reason := range []string{"bad_json", "bad_json", "bad_json", "bad_topic"} {
		tele.add(`deadletter,reason=%s topic="gp/v1/x",payload="{" %d`, reason, ns(time.Duration(i+1)*m))
	}
	reg := func(id, district string, active, deleted bool, at time.Duration) {
		own.add(`outlet_registry,id=%s name="%s",district="%s",address="",operator="sf",lat=30,lon=114,active=%t,active_since="",deleted=%t %d`,
			id, id, district, active, deleted, ns(at))
	}
	reg("o-1", "jianghan", true, false, -48*time.Hour)
	reg("o-2", "wuchang", true, false, -48*time.Hour)
	reg("o-3", "jianghan", true, false, -48*time.Hour)
	reg("o-3", "jianghan", true, true, -time.Hour) // deleted since
	reg("o-4", "jianghan", false, false, -48*time.Hour)
	const v, other = "2_15m0s_90", "2_10m0s_90"
	rollup := func(outlet, ver string, hour, serving int) {
		own.add(`rollup,outlet=%s,v=%s data="",serving_min=%di,counter_min=60i %d`, outlet, ver, serving, ns(time.Duration(hour)*time.Hour))
	}
	rollup("o-1", v, 0, 30)
	rollup("o-1", v, 1, 60)
	rollup("o-1", v, 2, 60)
	rollup("o-2", v, 0, 0)
	rollup("o-2", v, 1, 45) // no row for hour 2: not serving
	rollup("o-3", v, 1, 60) // deleted
	rollup("o-1", other, 1, 5)
	rollup("o-2", other, 1, 5)
	own.add(`rollup_state,v=%s built_from=1i,built_to=2i %d`, v, ns(0))
	own.add(`rollup_state,v=%s built_from=1i,built_to=2i %d`, other, ns(-time.Hour))

	ctx := context.Background()
	open := func(bucket string) *store.Store {
		st, err := store.Open(store.Config{URL: in.URL, Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	if err := open("gp").Write(ctx, tele.b); err != nil {
		t.Fatal(err)
	}
	if err := open("gp_api/autogen").Write(ctx, own.b); err != nil {
		t.Fatal(err)
	}
	st := open("gp")

	queries, _ := dashboardQueries(t)
	run := func(t *testing.T, name string, from, to time.Time) []store.Row {
		t.Helper()
		q, ok := queries[name]
		if !ok {
			t.Fatalf("the dashboard has no query %q (it has %v)", name, keys(queries))
		}
		q = interpolate(t, q, map[string]string{
			"${bucket}": "gp", "${api_bucket}": "gp_api/autogen", "${rollup_version}": v,
			"v.timeRangeStart": from.Format(time.RFC3339), "v.timeRangeStop": to.Format(time.RFC3339), "v.windowPeriod": "10m",
		})
		rows, err := st.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, q)
		}
		return rows
	}
	ran := map[string]bool{}
	check := func(name string, fn func(t *testing.T, rows []store.Row)) {
		ran[name] = true
		t.Run(name, func(t *testing.T) { fn(t, run(t, name, from, to)) })
	}

	check("Fill level, city (%)/A", func(t *testing.T, rows []store.Row) {
		// 10-minute windows: the first holds the 30 % report alone.
		if len(rows) != 4 || num(rows[0]["_value"]) != 30 || rows[0]["_field"] != "mean" {
			t.Errorf("mean fill: %v", rows)
		}
	})
	check("Fill level, city (%)/B", func(t *testing.T, rows []store.Row) {
		if max := maxOf(rows); max != 95 || rows[0]["_field"] != "max" {
			t.Errorf("max fill %v: %v", max, rows)
		}
	})
	check("Fullest bins (last report in the range)/A", func(t *testing.T, rows []store.Row) {
		got := fmt.Sprint(pick(rows, "device", "_value"))
		if want := "[[b-2 50] [b-1 10]]"; got != want {
			t.Errorf("fullest bins %s, want %s (each bin's last report, across reboots)", got, want)
		}
	})
	wantClasses := map[string]int64{"reusable": 3, "recyclable": 34 + 7 + 1010 + 50, "plastic": 7 + 9, "foam": 5,
		"biodegradable": 0, "original": 0, "other": 0}
	check("Parcels in the range by class/A", func(t *testing.T, rows []store.Row) {
		got := map[string]int64{}
		for _, r := range rows {
			got[r["_field"].(string)] += r["_value"].(int64)
		}
		if fmt.Sprint(got) != fmt.Sprint(wantClasses) {
			t.Errorf("parcels by class %v, want %v", got, wantClasses)
		}
	})
	check("Parcels by packaging class/A", func(t *testing.T, rows []store.Row) {
		got := map[string]int64{}
		for _, r := range rows {
			got[r["_field"].(string)] += r["_value"].(int64)
		}
		if fmt.Sprint(got) != fmt.Sprint(wantClasses) {
			t.Errorf("parcels per interval add up to %v, want %v", got, wantClasses)
		}
	})
	check("Green-packaging rate by district/A", func(t *testing.T, rows []store.Row) {
		got := pick(rows, "district", "parcels", "green", "green_rate")
		want := [][]any{{"jianghan", int64(51), int64(44), 44.0 / 51}, {"wuchang", int64(1015), int64(1010), 1010.0 / 1015}}
		if !sameRows(got, want) {
			t.Errorf("green rate by district %v, want %v", got, want)
		}
	})
	check("Bin coverage by district (roll-up, whole hours)/A", func(t *testing.T, rows []store.Row) {
		got := pick(rows, "district", "outlets_with_rows", "bin_coverage")
		want := [][]any{{"jianghan", int64(1), 150.0 / 180}, {"wuchang", int64(1), 45.0 / 180}}
		if !sameRows(got, want) {
			t.Errorf("coverage by district %v, want %v", got, want)
		}
	})
	t.Run("coverage over a range cut inside an hour", func(t *testing.T) {
		// Only the whole hours 1 and 2 count: 120 minutes.
		got := pick(run(t, "Bin coverage by district (roll-up, whole hours)/A", from.Add(30*m), to.Add(20*m)), "district", "bin_coverage")
		if want := [][]any{{"jianghan", 1.0}, {"wuchang", 45.0 / 120}}; !sameRows(got, want) {
			t.Errorf("coverage %v, want %v", got, want)
		}
	})
	check("Dead letters stored, by reason/A", func(t *testing.T, rows []store.Row) {
		got := map[string]int64{}
		for _, r := range rows {
			got[r["reason"].(string)] += r["_value"].(int64)
		}
		if got["bad_json"] != 3 || got["bad_topic"] != 1 || len(got) != 2 {
			t.Errorf("dead letters by reason %v, want bad_json 3, bad_topic 1", got)
		}
	})
	check("$rollup_version", func(t *testing.T, rows []store.Row) {
		got := fmt.Sprint(pick(rows, "_value"))
		if got != "[["+other+"] ["+v+"]]" && got != "[["+v+"] ["+other+"]]" {
			t.Errorf("roll-up versions %s, want %s and %s", got, v, other)
		}
	})
	for name := range queries {
		if !ran[name] {
			t.Errorf("the dashboard's query %q is not checked by this test", name)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	}
	return math.NaN()
}

func maxOf(rows []store.Row) float64 {
	m := math.Inf(-1)
	for _, r := range rows {
		m = math.Max(m, num(r["_value"]))
	}
	return m
}

// pick returns the named columns of each row.
func pick(rows []store.Row, cols ...string) [][]any {
	var out [][]any
	for _, r := range rows {
		var row []any
		for _, c := range cols {
			row = append(row, r[c])
		}
		out = append(out, row)
	}
	return out
}

// sameRows compares rows, floats to 1e-9.
func sameRows(got, want [][]any) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return false
		}
		for j := range got[i] {
			g, gok := got[i][j].(float64)
			w, wok := want[i][j].(float64)
			if gok && wok {
				if math.Abs(g-w) > 1e-9 {
					return false
				}
			} else if got[i][j] != want[i][j] {
				return false
			}
		}
	}
	return true
}
