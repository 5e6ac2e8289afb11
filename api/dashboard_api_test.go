package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// The API routes the dashboard added: districts with display names, the
// city's and districts' series, an outlet's devices and its bins' fill.

// TestGroupSeriesEndToEndByHand: the city and district series on the real
// engine (roll-up and raw) over e2eData's two hours, step 1h, worked out by
// hand from metrics-v1's roll-ups; and every step equals GET /v1/rates over
// that step's window.
func TestGroupSeriesEndToEndByHand(t *testing.T) {
	st, bucket, F := e2eFixture(t)
	win := "from=" + F.Format(time.RFC3339) + "&to=" + F.Add(2*time.Hour).Format(time.RFC3339)

	// Hour 1 [F, F+1h): o-e1 200 parcels (130 green), bins serving 0..10
	// and 30..44 (26 min), covered; o-e2 530 (all green: recyclable 520,
	// original 10), a bin serving all 60 min; o-e3 and o-e5 nothing.
	// Hour 2: o-e1 no counter point (the one at F+2h is at `to`), its bin
	// serves 60..75 (16 min); o-e2 boot 4 from 0: reusable 9, recyclable 3
	// (12, all green), serving 60 min. o-e4 is inactive: in no roll-up.
	want := map[string]map[string][]any{
		"city": {
			"green_rate":      {660.0 / 730, 1.0},
			"parcels":         {730.0, 12.0},
			"outlet_coverage": {0.5, 0.5},
			"bin_coverage":    {(26.0/60 + 1) / 4, (16.0/60 + 1) / 4},
		},
		"east": {
			"green_rate":      {660.0 / 730, 1.0},
			"parcels":         {730.0, 12.0},
			"outlet_coverage": {1.0, 1.0},
			"bin_coverage":    {(26.0/60 + 1) / 2, (16.0/60 + 1) / 2},
		},
		"west": {
			"green_rate":      {nil, nil},
			"parcels":         {0.0, 0.0},
			"outlet_coverage": {0.0, 0.0},
			"bin_coverage":    {0.0, 0.0},
		},
	}
	for _, mode := range []string{"rollup", "raw"} {
		t.Run(mode, func(t *testing.T) {
			ts := e2eServer(t, st, bucket, mode == "rollup")
			for _, metric := range groupSeriesMetrics {
				for _, groupBy := range []string{"city", "district"} {
					var ans groupSeriesAnswer
					a := ts.on(t).do("GET", "/v1/series?group_by="+groupBy+"&metric="+metric+"&step=1h&"+win, viewerKey, "")
					if a.Status != 200 {
						t.Fatalf("%s %s: %s", groupBy, metric, a)
					}
					a.json(t, &ans)
					keys := []string{"city"}
					if groupBy == "district" {
						keys = []string{"east", "west"}
					}
					if len(ans.Series) != len(keys) || ans.Metric != metric || ans.Step != "1h" || !ans.From.Equal(F) {
						t.Fatalf("%s %s: %s", groupBy, metric, a.Body)
					}
					for i, s := range ans.Series {
						if s.Key != keys[i] || len(s.Points) != 2 {
							t.Fatalf("%s %s series %d: %+v", groupBy, metric, i, s)
						}
						for j, p := range s.Points {
							if !p.T.Equal(F.Add(time.Duration(j) * time.Hour)) {
								t.Errorf("%s %s point %d at %v", s.Key, metric, j, p.T)
							}
							checkRate(t, fmt.Sprintf("%s %s hour %d", s.Key, metric, j+1), p.V, want[s.Key][metric][j])
						}
					}
				}
			}
			// Each step is exactly GET /v1/rates over the step's window.
			var ss groupSeriesAnswer
			ts.on(t).do("GET", "/v1/series?group_by=district&metric=green_rate&step=1h&"+win, viewerKey, "").json(t, &ss)
			for j := range 2 {
				from := F.Add(time.Duration(j) * time.Hour)
				var r groupsAnswer
				ts.on(t).do("GET", "/v1/rates?group_by=district&from="+from.Format(time.RFC3339)+"&to="+from.Add(time.Hour).Format(time.RFC3339), viewerKey, "").json(t, &r)
				for i, g := range r.Groups {
					p := ss.Series[i].Points[j]
					checkRate(t, g.Key+" series = rates", p.V, deref(g.GreenRate))
					checkRate(t, g.Key+" reporting = counter_reporting", p.Reporting, deref(g.Completeness.CounterReporting))
				}
			}
		})
	}
}

// TestGroupSeriesParameters: filters, CSV, and the 400s.
func TestGroupSeriesParameters(t *testing.T) {
	ts := cityFixture(t)
	// cityFixture's engine answers every window alike: per step, jianghan
	// has 200 parcels (175 green), wuchang (o-0003, o-0004; o-0005 is
	// inactive) 50 (45 green).
	q := "from=2026-11-25T16:00:00Z&to=2026-11-28T10:00:00Z" // 2 days 18 hours: 3 steps of 1d, the last shorter
	var ans groupSeriesAnswer
	a := ts.do("GET", "/v1/series?metric=parcels&step=1d&"+q, viewerKey, "")
	if a.Status != 200 {
		t.Fatal(a)
	}
	a.json(t, &ans)
	if ans.GroupBy != "city" || len(ans.Series) != 1 || ans.Series[0].Key != "city" || len(ans.Series[0].Points) != 3 || ans.Targets.GreenRate == nil || *ans.Targets.GreenRate != 0.9 || setOf(ans.Targets) != "wuhan-2025" {
		t.Fatalf("%s", a.Body)
	}
	for i, p := range ans.Series[0].Points {
		checkRate(t, "city parcels", p.V, 250.0)
		if p.ByClass == nil || p.ByClass.counts() != (byClass{telemetry.Reusable: 15, telemetry.Recyclable: 150, telemetry.Biodegradable: 10, telemetry.Original: 45, telemetry.Plastic: 28, telemetry.Foam: 1, telemetry.Other: 1}) {
			t.Errorf("point %d by class %+v", i, p.ByClass)
		}
		if want := time.Date(2026, 11, 25+i, 16, 0, 0, 0, time.UTC); !p.T.Equal(want) {
			t.Errorf("point %d at %v, want %v (steps start at from)", i, p.T, want)
		}
	}
	ts.do("GET", "/v1/series?group_by=district&district=wuchang&metric=green_rate&step=1d&"+q, viewerKey, "").json(t, &ans)
	if len(ans.Series) != 1 || ans.Series[0].Key != "wuchang" {
		t.Fatalf("district filter: %+v", ans.Series)
	}
	checkRate(t, "wuchang green_rate", ans.Series[0].Points[0].V, 0.9)
	// A district without outlets has no series; the city always has one.
	ts.do("GET", "/v1/series?group_by=district&district=hannan&metric=parcels&step=1d&"+q, viewerKey, "").json(t, &ans)
	if len(ans.Series) != 0 {
		t.Errorf("empty district: %+v", ans.Series)
	}
	ts.do("GET", "/v1/series?district=hannan&metric=green_rate&step=1d&"+q, viewerKey, "").json(t, &ans)
	if len(ans.Series) != 1 || ans.Series[0].Points[0].V != nil {
		t.Errorf("city of no outlets: %+v", ans.Series)
	}

	c := ts.do("GET", "/v1/series?group_by=district&metric=parcels&step=1d&format=csv&"+q, viewerKey, "")
	recs, err := csv.NewReader(strings.NewReader(string(c.Body))).ReadAll()
	if err != nil || c.Status != 200 || strings.Join(recs[0], ",") != "key,t,v,reporting" || len(recs) != 7 ||
		strings.Join(recs[1][:3], ",") != "jianghan,2026-11-25T16:00:00Z,200" || recs[4][0] != "wuchang" {
		t.Errorf("CSV %v %q", err, c.Body)
	}

	for _, bad := range []struct{ q, param string }{
		{"step=1d", "metric"},
		{"metric=fill_pct", "metric"},
		{"metric=parcels&group_by=outlet", "group_by"},
		{"metric=parcels&step=1m&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z", "step"}, // 1440 steps
		{"metric=parcels&outlet=o-0001", "outlet"},
	} {
		p := checkProblem(t, ts.do("GET", "/v1/series?"+bad.q, viewerKey, ""), 400)
		if p.Param != bad.param {
			t.Errorf("%s: blamed %q, want %q", bad.q, p.Param, bad.param)
		}
	}
	checkProblem(t, ts.do("GET", "/v1/series?metric=parcels", "", ""), 401)
}

// TestDistricts: Wuhan's 13 with their names from the city model, counts of
// active outlets, an unknown district of the registry after them, CSV.
func TestDistricts(t *testing.T) {
	ts := cityFixture(t, func(c *config) { c.TimeZone = "Asia/Urumqi" })
	ts.putOutlet(Outlet{ID: "o-0100", Name: "New", District: "airport-zone", Lat: 30, Lon: 114, Operator: "sf", Active: false})
	var ans districtsAnswer
	a := ts.do("GET", "/v1/districts", viewerKey, "")
	if a.Status != 200 {
		t.Fatal(a)
	}
	a.json(t, &ans)
	if ans.TimeZone != "Asia/Urumqi" || len(ans.Districts) != 14 || setOf(ans.Targets) != "wuhan-2025" || *ans.Targets.GreenRate != 0.9 {
		t.Fatalf("%s", a.Body)
	}
	byID := map[string]districtInfo{}
	for _, d := range ans.Districts {
		byID[d.ID] = d
	}
	for _, want := range []districtInfo{
		{"jiangan", "江岸区", "Jiang'an", 0},
		{"jianghan", "江汉区", "Jianghan", 2},
		{"wuchang", "武昌区", "Wuchang", 2}, // o-0005 is inactive
		{"xinzhou", "新洲区", "Xinzhou", 0},
		{"airport-zone", "airport-zone", "airport-zone", 0},
	} {
		if byID[want.ID] != want {
			t.Errorf("%s: %+v, want %+v", want.ID, byID[want.ID], want)
		}
	}
	if ans.Districts[0].ID != "jiangan" || ans.Districts[13].ID != "airport-zone" {
		t.Errorf("order: %+v", ans.Districts)
	}
	c := ts.do("GET", "/v1/districts?format=csv", viewerKey, "")
	if !strings.HasPrefix(string(c.Body), "id,name_zh,name_en,outlets\njiangan,江岸区,Jiang'an,0\n") {
		t.Errorf("CSV %q", c.Body)
	}
	checkProblem(t, ts.do("GET", "/v1/districts", "", ""), 401)
	checkProblem(t, ts.do("GET", "/v1/districts?district=x", viewerKey, ""), 400)

	// With GP_API_DISTRICTS, those are the city's districts.
	ts2 := newTestServer(t, func(c *config) { c.Districts = []string{"north", "jianghan"} })
	ts2.do("GET", "/v1/districts", viewerKey, "").json(t, &ans)
	if len(ans.Districts) != 2 || ans.Districts[0] != (districtInfo{ID: "north", NameZH: "north", NameEN: "north"}) || ans.Districts[1].NameZH != "江汉区" || ans.TimeZone != "Asia/Shanghai" {
		t.Errorf("GP_API_DISTRICTS: %+v", ans)
	}
	// The map's outlines are served open, from internal/city's one copy.
	g := ts.do("GET", "/dashboard/map/wuhan.geojson", "", "")
	if g.Status != 200 || !strings.Contains(string(g.Body), `"江岸区"`) || !strings.HasPrefix(g.Header.Get("Content-Type"), "application/geo+json") {
		t.Errorf("outlines: %d %s", g.Status, g.Header.Get("Content-Type"))
	}
}

// TestTimeZoneSetting: a zone that does not load stops the API at start.
func TestTimeZoneSetting(t *testing.T) {
	for _, tz := range []string{"Mars/Olympus", "Local", "../etc/passwd"} {
		if _, err := loadConfig(func(k string) string {
			if k == "GP_API_TIME_ZONE" {
				return tz
			}
			return ""
		}); err == nil || !strings.Contains(err.Error(), "GP_API_TIME_ZONE") {
			t.Errorf("%q: %v", tz, err)
		}
	}
}

// TestOutletDevicesAndFill: an outlet's devices (states from the engine,
// batteries from InfluxDB) and each bin's fill per step.
func TestOutletDevicesAndFill(t *testing.T) {
	ts := cityFixture(t)
	now := ts.now
	ago := func(d time.Duration) time.Time { return now.Add(-d).Truncate(time.Millisecond) }
	ts.engine.set(func(f *fakeEngine) {
		f.devices = []metrics.DeviceState{
			{Outlet: "o-0001", Device: "b-0001-2", Kind: telemetry.KindBin, LastReport: ago(time.Minute), FillPct: 92, State: "online", StateSince: ago(48 * time.Hour)},
			{Outlet: "o-0001", Device: "b-0001-1", Kind: telemetry.KindBin, LastReport: ago(20 * time.Minute), FillPct: 30},
			{Outlet: "o-0001", Device: "c-0001", Kind: telemetry.KindCounter, LastReport: ago(2 * time.Minute)},
			{Outlet: "o-0002", Device: "b-0002-1", Kind: telemetry.KindBin, LastReport: ago(time.Minute), FillPct: 10},
		}
	})
	// Bin reports in InfluxDB: b-0001-1 at 30 % then 50 %, b-0001-2 at 70 %
	// then 92 % (with batteries), one of o-0002 that must not show.
	var lines []byte
	seq := 0
	bin := func(outlet, dev string, at time.Duration, fill, battery float64) {
		seq++
		payload := fmt.Sprintf(`{"ts":%d,"seq":%d,"boot":1,"fill_pct":%g,"deposits":%d,"battery_pct":%g}`, ago(at).UnixMilli(), seq, fill, seq, battery)
		m, err := telemetry.Decode("gp/v1/"+outlet+"/bin/"+dev+"/telemetry", []byte(payload), now)
		if err != nil {
			t.Fatal(err)
		}
		lines = telemetry.AppendPoint(lines, &m)
	}
	bin("o-0001", "b-0001-1", 100*time.Minute, 30, 81)
	bin("o-0001", "b-0001-1", 95*time.Minute, 50, 80.5)
	bin("o-0001", "b-0001-2", 70*time.Minute, 70, 64)
	bin("o-0001", "b-0001-2", time.Minute, 92, 63)
	bin("o-0002", "b-0002-1", time.Minute, 10, 12)
	in := testenv.SharedInflux(t)
	st := openStore(t, in, freshBucket(t, in))
	if err := st.Write(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	ts.app = newApp(&deps{cfg: ts.cfg, log: slog.New(slog.NewJSONHandler(io.Discard, nil)), db: st, reg: ts.reg, engine: ts.engine,
		fill: storeFill{st}, bins: storeFill{st}, targets: loadedTargets(t, st, ts.reg.stamp), audit: st, now: func() time.Time { return now }, promReg: newPromRegistry()})

	var d devicesAnswer
	a := ts.do("GET", "/v1/outlets/o-0001/devices", viewerKey, "")
	if a.Status != 200 {
		t.Fatal(a)
	}
	a.json(t, &d)
	var got []string
	for _, x := range d.Devices {
		got = append(got, fmt.Sprintf("%s %s online=%v fill=%v full=%v battery=%v status=%q", x.Device, x.Kind, x.Online, deref(x.FillPct), x.Full, deref(x.BatteryPct), x.Status))
	}
	want := []string{
		`b-0001-1 bin online=false fill=30 full=false battery=80.5 status=""`, // silent 20 min > staleness
		`b-0001-2 bin online=true fill=92 full=true battery=63 status="online"`,
		`c-0001 counter online=true fill=<nil> full=false battery=<nil> status=""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || d.FullPct != 90 || d.Devices[0].LastReport == nil || !d.Devices[0].LastReport.Equal(ago(20*time.Minute)) {
		t.Errorf("devices\n%s\nwant\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), a.Body)
	}
	checkProblem(t, ts.do("GET", "/v1/outlets/o-7777/devices", viewerKey, ""), 404)

	// Fill over the last 2 h in 1 h steps: step 0 [now-2h, now-1h) holds
	// b-0001-1's 30 and 50 (max 50) and b-0001-2's 70; step 1 holds 92.
	from := now.Add(-2 * time.Hour).Truncate(time.Minute)
	win := "from=" + from.Format(time.RFC3339) + "&to=" + now.Truncate(time.Minute).Format(time.RFC3339)
	var f binFillAnswer
	a = ts.do("GET", "/v1/outlets/o-0001/fill?step=1h&"+win, viewerKey, "")
	if a.Status != 200 {
		t.Fatal(a)
	}
	a.json(t, &f)
	if len(f.Bins) != 2 || f.Bins[0].Device != "b-0001-1" || f.FullPct != 90 || len(f.Bins[0].Points) != 2 {
		t.Fatalf("%s", a.Body)
	}
	checkRate(t, "b-0001-1 step 0", f.Bins[0].Points[0].V, 50.0)
	checkRate(t, "b-0001-1 step 1", f.Bins[0].Points[1].V, nil)
	checkRate(t, "b-0001-2 step 0", f.Bins[1].Points[0].V, 70.0)
	checkRate(t, "b-0001-2 step 1", f.Bins[1].Points[1].V, 92.0)
	c := ts.do("GET", "/v1/outlets/o-0001/fill?step=1h&format=csv&"+win, viewerKey, "")
	if want := "device,t,v\nb-0001-1," + from.Format(time.RFC3339) + ",50\n"; !strings.HasPrefix(string(c.Body), want) {
		t.Errorf("fill CSV %q", c.Body)
	}
	// The outlet's fill_pct series (the highest of its bins) agrees.
	var s seriesAnswer
	ts.do("GET", "/v1/outlets/o-0001/series?metric=fill_pct&step=1h&"+win, viewerKey, "").json(t, &s)
	if len(s.Points) != 2 {
		t.Fatalf("%+v", s)
	}
	checkRate(t, "max fill step 0", s.Points[0].V, 70.0)
	checkRate(t, "max fill step 1", s.Points[1].V, 92.0)
}
