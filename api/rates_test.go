package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// parcels builds metrics.Parcels in class order.
func parcels(reusable, recyclable, biodegradable, original, plastic, foam, other, boxes int64) metrics.Parcels {
	return metrics.Parcels{ByClass: [telemetry.NumClasses]int64{reusable, recyclable, biodegradable, original, plastic, foam, other}, BoxesRecovered: boxes}
}

// cityFixture registers five outlets and gives the fake engine figures for
// four of them (o-0004 has no data at all; o-0005 is inactive).
func cityFixture(t *testing.T, mod ...func(*config)) *testServer {
	var m func(*config)
	if len(mod) > 0 {
		m = mod[0]
	}
	ts := newTestServer(t, m)
	for _, o := range []Outlet{
		{ID: "o-0001", Name: "One", District: "jianghan", Lat: 30, Lon: 114, Operator: "sf", Active: true},
		{ID: "o-0002", Name: "Two", District: "jianghan", Lat: 30, Lon: 114, Operator: "ems", Active: true},
		{ID: "o-0003", Name: "Three", District: "wuchang", Lat: 30, Lon: 114, Operator: "sf", Active: true},
		{ID: "o-0004", Name: "Four", District: "wuchang", Lat: 30, Lon: 114, Operator: "sf", Active: true},
		{ID: "o-0005", Name: "Five", District: "wuchang", Lat: 30, Lon: 114, Operator: "sf", Active: false},
	} {
		ts.putOutlet(o)
	}
	ts.engine.set(func(f *fakeEngine) {
		// 1440-minute windows in the tests below.
		f.outlets["o-0001"] = metrics.Outlet{Parcels: parcels(10, 60, 10, 15, 3, 1, 1, 7), BinsReporting: 2, ServingMinutes: 1440,
			CountersReporting: 1, CounterReportingMinutes: 1440} // total 100, green 95
		f.outlets["o-0002"] = metrics.Outlet{Parcels: parcels(0, 50, 0, 30, 20, 0, 0, 0), BinsReporting: 1, ServingMinutes: 720,
			CountersReporting: 1, CounterReportingMinutes: 1080} // total 100, green 80
		f.outlets["o-0003"] = metrics.Outlet{Parcels: parcels(5, 40, 0, 0, 5, 0, 0, 2), BinsReporting: 0, ServingMinutes: 0,
			CountersReporting: 1, CounterReportingMinutes: 360} // total 50, green 45, no bins
		f.outlets["o-0005"] = metrics.Outlet{Parcels: parcels(0, 0, 0, 0, 1000, 0, 0, 0), BinsReporting: 1, ServingMinutes: 1,
			CountersReporting: 1, CounterReportingMinutes: 1}
	})
	return ts
}

const day1 = "from=2026-11-27T00:00:00Z&to=2026-11-28T00:00:00Z"

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func checkRate(t *testing.T, name string, got *float64, want any) {
	t.Helper()
	switch w := want.(type) {
	case nil:
		if got != nil {
			t.Errorf("%s = %v, want null", name, *got)
		}
	case float64:
		if got == nil || !near(*got, w) {
			t.Errorf("%s = %v, want %v", name, deref(got), w)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestRollUpsByHand(t *testing.T) {
	ts := cityFixture(t)
	type want struct {
		key                      string
		outlets, covered, total  int
		green                    int64
		greenRate, outletCov     any
		binCov                   any
		meetsGreen, meetsCov     bool
		wasteFree, silent, withC int
	}
	for _, tc := range []struct {
		query string
		want  []want
	}{
		// City: o-0001..o-0004 (o-0005 inactive). Parcels 100+100+50+0 = 250,
		// green 95+80+45 = 220. Covered: o-0001, o-0002 → 2/4. Bin coverage:
		// mean(1, 0.5, 0, 0) = 0.375. Waste-free: only o-0001.
		{"group_by=city", []want{{"city", 4, 2, 250, 220, 220.0 / 250, 0.5, 0.375, false, false, 1, 1, 3}}},
		{"group_by=district", []want{
			{"jianghan", 2, 2, 200, 175, 175.0 / 200, 1.0, 0.75, false, true, 1, 0, 2},
			{"wuchang", 2, 0, 50, 45, 45.0 / 50, 0.0, 0.0, true, false, 0, 1, 1},
		}},
		{"group_by=operator", []want{
			{"ems", 1, 1, 100, 80, 0.8, 1.0, 0.5, false, true, 0, 0, 1},
			{"sf", 3, 1, 150, 140, 140.0 / 150, 1.0 / 3, 1.0 / 3, true, false, 1, 1, 2},
		}},
		{"group_by=outlet&district=wuchang", []want{
			{"o-0003", 1, 0, 50, 45, 0.9, 0.0, 0.0, true, false, 0, 0, 1},
			{"o-0004", 1, 0, 0, 0, nil, 0.0, 0.0, false, false, 0, 1, 0},
		}},
		{"group_by=district&operator=ems", []want{{"jianghan", 1, 1, 100, 80, 0.8, 1.0, 0.5, false, true, 0, 0, 1}}},
		{"group_by=city&district=nowhere", []want{{"city", 0, 0, 0, 0, nil, nil, nil, false, false, 0, 0, 0}}},
		{"group_by=district&district=nowhere", nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			var ans groupsAnswer
			a := ts.on(t).do("GET", "/v1/rates?"+day1+"&"+tc.query, viewerKey, "")
			if a.Status != 200 {
				t.Fatal(a)
			}
			a.json(t, &ans)
			if len(ans.Groups) != len(tc.want) {
				t.Fatalf("%d groups, want %d: %s", len(ans.Groups), len(tc.want), a.Body)
			}
			for i, w := range tc.want {
				g := ans.Groups[i]
				if g.Key != w.key || g.Outlets != w.outlets || g.CoveredOutlets != w.covered || g.Parcels.Total != int64(w.total) || g.Parcels.Green != w.green {
					t.Errorf("group %d: %+v, want %+v", i, g, w)
				}
				checkRate(t, g.Key+" green_rate", g.GreenRate, w.greenRate)
				checkRate(t, g.Key+" outlet_coverage", g.OutletCoverage, w.outletCov)
				checkRate(t, g.Key+" bin_coverage", g.BinCoverage, w.binCov)
				if g.Meets.flags()["green_rate"] != w.meetsGreen || g.Meets.flags()["outlet_coverage"] != w.meetsCov {
					t.Errorf("%s meets %+v, want green %v coverage %v", g.Key, g.Meets, w.meetsGreen, w.meetsCov)
				}
				if g.WasteFreeOutlets != w.wasteFree || g.Completeness.SilentOutlets != w.silent || g.Completeness.OutletsReportingParcels != w.withC {
					t.Errorf("%s waste-free %d silent %d with counters %d, want %d %d %d", g.Key, g.WasteFreeOutlets,
						g.Completeness.SilentOutlets, g.Completeness.OutletsReportingParcels, w.wasteFree, w.silent, w.withC)
				}
			}
		})
	}
	// The inactive outlet was never asked for in a roll-up.
	for _, ids := range ts.engine.asked {
		for _, id := range ids {
			if id == "o-0005" {
				t.Errorf("inactive outlet in a roll-up query: %v", ids)
			}
		}
	}
}

func TestCityByClassAndRatesByHand(t *testing.T) {
	ts := cityFixture(t)
	var ans groupsAnswer
	ts.do("GET", "/v1/rates?group_by=city&"+day1, viewerKey, "").json(t, &ans)
	g := ans.Groups[0]
	// By class over o-0001..o-0003: reusable 10+0+5, recyclable 60+50+40, ...
	want := byClass{telemetry.Reusable: 15, telemetry.Recyclable: 150, telemetry.Biodegradable: 10, telemetry.Original: 45, telemetry.Plastic: 28, telemetry.Foam: 1, telemetry.Other: 1}
	if g.Parcels.ByClass.counts() != want || g.BoxesRecovered != 9 {
		t.Errorf("by class %+v boxes %d, want %+v 9", g.Parcels.ByClass, g.BoxesRecovered, want)
	}
	checkRate(t, "no_secondary_rate", g.NoSecondaryRate, 45.0/250)
	checkRate(t, "reusable_rate", g.ReusableRate, 15.0/250)
	// counter_reporting: mean of 1, 0.75, 0.25, 0 over the four outlets.
	checkRate(t, "counter_reporting", g.Completeness.CounterReporting, 0.5)
	if ans.From.Format(time.RFC3339) != "2026-11-27T00:00:00Z" || ans.To.Format(time.RFC3339) != "2026-11-28T00:00:00Z" || ans.GroupBy != "city" {
		t.Errorf("window %v..%v group_by %q", ans.From, ans.To, ans.GroupBy)
	}
	if j := ans.Targets; j.Set == nil || *j.Set != "wuhan-2025" || *j.GreenRate != 0.9 || *j.OutletCoverage != 1 || *j.BinCoverage != 0.95 || j.NoSecondaryRate != nil {
		t.Errorf("targets %+v", ans.Targets)
	}
}

func TestOutletRatesByHand(t *testing.T) {
	ts := cityFixture(t)
	for _, tc := range []struct {
		id                   string
		greenRate            any
		covered              bool
		bins                 int
		binCov               float64
		meetsGreen, wasteFre bool
		counterShare         float64
		silent               bool
	}{
		{"o-0001", 0.95, true, 2, 1, true, true, 1, false},
		{"o-0002", 0.8, true, 1, 0.5, false, false, 0.75, false},
		{"o-0003", 0.9, false, 0, 0, true, false, 0.25, false}, // exactly the target meets it
		{"o-0004", nil, false, 0, 0, false, false, 0, true},
		{"o-0005", 0.0, true, 1, 1.0 / 1440, false, false, 1.0 / 1440, false}, // inactive: still answers
	} {
		t.Run(tc.id, func(t *testing.T) {
			var r outletRates
			a := ts.on(t).do("GET", "/v1/outlets/"+tc.id+"/rates?"+day1, viewerKey, "")
			if a.Status != 200 {
				t.Fatal(a)
			}
			a.json(t, &r)
			checkRate(t, "green_rate", r.GreenRate, tc.greenRate)
			if r.Outlet != tc.id || r.Covered != tc.covered || r.BinsReporting != tc.bins || !near(r.BinCoverage, tc.binCov) ||
				r.Meets.flags()["green_rate"] != tc.meetsGreen || r.Meets.flags()["waste_free"] != tc.wasteFre || !near(r.Completeness.CounterReporting, tc.counterShare) ||
				r.Completeness.Silent != tc.silent || r.Completeness.WindowMinutes != 1440 {
				t.Errorf("got %s", a.Body)
			}
			// Every field api-v1 lists is present (null where it may be).
			var raw map[string]any
			json.Unmarshal(a.Body, &raw)
			for _, k := range []string{"outlet", "from", "to", "parcels", "green_rate", "no_secondary_rate", "reusable_rate", "boxes_recovered", "covered", "bins_reporting", "bin_coverage", "meets"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("no %q in %s", k, a.Body)
				}
			}
		})
	}
}

func TestWasteFreeReasons(t *testing.T) {
	ts := cityFixture(t)
	var ans wasteFreeAnswer
	a := ts.do("GET", "/v1/waste-free?"+day1, viewerKey, "")
	if a.Status != 200 {
		t.Fatal(a)
	}
	a.json(t, &ans)
	bars := map[string][]string{}
	for _, o := range ans.Outlets {
		bars[o.Outlet] = []string{}
		for _, r := range o.Reasons {
			bars[o.Outlet] = append(bars[o.Outlet], r.Bar)
		}
		if o.Pass != (len(o.Reasons) == 0) {
			t.Errorf("%s: pass %v with reasons %v", o.Outlet, o.Pass, o.Reasons)
		}
	}
	want := map[string][]string{
		"o-0001": {},
		"o-0002": {"green_rate", "bin_coverage"},
		"o-0003": {"covered", "bin_coverage"},
		"o-0004": {"green_rate", "covered", "bin_coverage"},
	}
	if !reflect.DeepEqual(bars, want) || ans.Passing != 1 {
		t.Errorf("reasons %v passing %d, want %v 1", bars, ans.Passing, want)
	}
	for _, o := range ans.Outlets {
		if o.Outlet == "o-0002" {
			if r := o.Reasons[0]; r.Value == nil || !near(*r.Value, 0.8) || r.Target != 0.9 {
				t.Errorf("o-0002 green_rate reason %+v", r)
			}
			if r := o.Reasons[1]; r.Value == nil || !near(*r.Value, 0.5) || r.Target != 0.95 {
				t.Errorf("o-0002 bin_coverage reason %+v", r)
			}
		}
		if o.Outlet == "o-0004" && o.Reasons[0].Value != nil {
			t.Errorf("o-0004 has no parcels, its green_rate value must be null: %+v", o.Reasons[0])
		}
	}
	// A district filter.
	var ans2 wasteFreeAnswer
	ts.do("GET", "/v1/waste-free?district=jianghan&"+day1, viewerKey, "").json(t, &ans2)
	if len(ans2.Outlets) != 2 || ans2.Outlets[0].Outlet != "o-0001" || ans2.Outlets[1].Outlet != "o-0002" {
		t.Errorf("district filter: %+v", ans2.Outlets)
	}
}

func TestConfiguredTargets(t *testing.T) {
	ts := newTestServer(t, nil)
	if a := ts.do("PUT", "/v1/targets/wuhan-2025", adminKey, `{"name":"lower bars","valid_from":"2024-01-15T00:00:00+08:00","targets":{"green_rate":0.8,"outlet_coverage":0.5,"bin_coverage":0.5}}`); a.Status != 200 {
		t.Fatalf("PUT target set: %s", a)
	}
	ts.putOutlet(Outlet{ID: "o-0002", Name: "Two", District: "jianghan", Lat: 30, Lon: 114, Operator: "ems", Active: true})
	ts.engine.set(func(f *fakeEngine) {
		f.outlets["o-0002"] = metrics.Outlet{Parcels: parcels(0, 50, 0, 30, 20, 0, 0, 0), BinsReporting: 1, ServingMinutes: 720}
	})
	var r outletRates
	ts.do("GET", "/v1/outlets/o-0002/rates?"+day1, viewerKey, "").json(t, &r)
	if !r.Meets.flags()["green_rate"] || !r.Meets.flags()["waste_free"] || !r.Meets.flags()["bin_coverage"] {
		t.Errorf("with targets 0.8/0.5 o-0002 (0.8, 0.5) meets: %+v", r.Meets)
	}
}

func TestAlertsFromDeviceStates(t *testing.T) {
	ts := cityFixture(t)
	now := ts.now
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	ts.engine.set(func(f *fakeEngine) {
		f.devices = []metrics.DeviceState{
			{Outlet: "o-0001", Device: "b-0001-1", Kind: telemetry.KindBin, LastReport: ago(time.Minute), FillPct: 90}, // full (at the threshold)
			{Outlet: "o-0001", Device: "b-0001-2", Kind: telemetry.KindBin, LastReport: ago(time.Minute), FillPct: 89.9},
			{Outlet: "o-0002", Device: "b-0002-1", Kind: telemetry.KindBin, LastReport: ago(15 * time.Minute), FillPct: 10}, // exactly stale limit: fine
			{Outlet: "o-0002", Device: "c-0002", Kind: telemetry.KindCounter, LastReport: ago(16 * time.Minute)},            // stale
			{Outlet: "o-0003", Device: "b-0003-1", Kind: telemetry.KindBin, LastReport: ago(2 * time.Minute), FillPct: 20,
				State: "offline", StateSince: ago(time.Minute)}, // said offline after its last report
			{Outlet: "o-0003", Device: "c-0003", Kind: telemetry.KindCounter, LastReport: ago(time.Minute),
				State: "offline", StateSince: ago(time.Hour)}, // came back: reports after the offline status
			{Outlet: "o-0005", Device: "b-0005-1", Kind: telemetry.KindBin, LastReport: ago(time.Hour), FillPct: 99},   // inactive outlet
			{Outlet: "o-9999", Device: "b-9999-1", Kind: telemetry.KindBin, LastReport: ago(time.Minute), FillPct: 95}, // unregistered
		}
	})
	// b-0001-1 has been full for 40 minutes, the unregistered bin for 2 hours.
	ts.full.since["b-0001-1"] = ago(40 * time.Minute)
	ts.full.since["b-9999-1"] = ago(2 * time.Hour)
	var ans alertsAnswer
	a := ts.do("GET", "/v1/alerts", viewerKey, "")
	if a.Status != 200 {
		t.Fatal(a)
	}
	a.json(t, &ans)
	var got []string
	for _, al := range ans.Alerts {
		got = append(got, al.Kind+" "+al.Outlet+" "+al.Device)
	}
	// Full bins first, longest full first; o-0004 has no device at all;
	// below_target over the last 7 days: o-0002 (0.8); o-0003 is at 0.9 and
	// o-0004 has no parcels (null is not below).
	want := []string{
		"bin_full o-9999 b-9999-1",
		"bin_full o-0001 b-0001-1",
		"outlet_silent o-0004 ",
		"device_offline o-0002 c-0002",
		"device_offline o-0003 b-0003-1",
		"below_target o-0002 ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("alerts\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, al := range ans.Alerts {
		switch al.Kind + " " + al.Device {
		case "bin_full b-0001-1":
			if al.Value == nil || *al.Value != 90 || !al.Since.Equal(ago(40*time.Minute)) || al.Name != "One" || al.District != "jianghan" {
				t.Errorf("%+v", al)
			}
		case "bin_full b-9999-1":
			if !al.Since.Equal(ago(2*time.Hour)) || al.Name != "" {
				t.Errorf("%+v", al)
			}
		case "outlet_silent ":
			if al.Since != nil || al.Value != nil || al.Name != "Four" || !strings.Contains(al.Detail, "no device") {
				t.Errorf("%+v", al)
			}
		case "device_offline c-0002":
			if al.Value == nil || *al.Value != 16 || !al.Since.Equal(ago(16*time.Minute)) {
				t.Errorf("%+v", al)
			}
		case "device_offline b-0003-1":
			if !al.Since.Equal(ago(time.Minute)) {
				t.Errorf("%+v", al)
			}
		case "below_target ":
			// No false date: the 7 days as a whole are below.
			if al.Value == nil || !near(*al.Value, 0.8) || al.Since != nil || !strings.Contains(al.Detail, "over the last 7 days") {
				t.Errorf("%+v", al)
			}
		}
	}
	last := ts.engine.windows[len(ts.engine.windows)-1]
	if last.To.Sub(last.From) != 7*24*time.Hour {
		t.Errorf("below_target window %v", last)
	}
	// kind filters.
	var only alertsAnswer
	ts.do("GET", "/v1/alerts?kind=bin_full,below_target", viewerKey, "").json(t, &only)
	if len(only.Alerts) != 3 {
		t.Errorf("kind=bin_full,below_target: %+v", only.Alerts)
	}
	// district and operator filters (an unregistered outlet has neither),
	// and a warning for a district no outlet has.
	for _, tc := range []struct {
		q       string
		want    []string
		warning string
	}{
		{"district=jianghan", []string{"bin_full o-0001 b-0001-1", "device_offline o-0002 c-0002", "below_target o-0002 "}, ""},
		{"operator=ems", []string{"device_offline o-0002 c-0002", "below_target o-0002 "}, ""},
		{"district=wuchang&kind=outlet_silent", []string{"outlet_silent o-0004 "}, ""},
		{"district=qiaokuo", nil, `no outlet has district "qiaokuo"; known: jianghan, wuchang`},
		{"operator=SF", nil, `no outlet has operator "SF"; known: ems, sf`},
	} {
		var ans alertsAnswer
		a := ts.do("GET", "/v1/alerts?"+tc.q, viewerKey, "")
		a.json(t, &ans)
		var got []string
		for _, al := range ans.Alerts {
			got = append(got, al.Kind+" "+al.Outlet+" "+al.Device)
		}
		if a.Status != 200 || !reflect.DeepEqual(got, tc.want) || (tc.warning == "") != (len(ans.Warnings) == 0) || (tc.warning != "" && ans.Warnings[0] != tc.warning) {
			t.Errorf("%s: %s\ngot %q, warnings %q; want %q, %q", tc.q, a, got, ans.Warnings, tc.want, tc.warning)
		}
	}
}

func TestSeriesPoints(t *testing.T) {
	ts := cityFixture(t)
	ts.engine.set(func(f *fakeEngine) {
		f.series["o-0001"] = []metrics.Outlet{
			{Parcels: parcels(0, 9, 0, 0, 1, 0, 0, 0), ServingMinutes: 60, WindowMinutes: 60, CounterReportingMinutes: 30},
			{WindowMinutes: 60},
			{Parcels: parcels(0, 1, 0, 0, 1, 0, 0, 0), ServingMinutes: 15, WindowMinutes: 30, CounterReportingMinutes: 30},
		}
	})
	q := "from=2026-11-27T00:00:00Z&to=2026-11-27T02:30:00Z"
	for _, tc := range []struct {
		metric string
		v      []any
	}{
		{"green_rate", []any{0.9, nil, 0.5}},
		{"parcels", []any{10.0, 0.0, 2.0}},
		{"bin_coverage", []any{1.0, 0.0, 0.5}},
	} {
		var s seriesAnswer
		a := ts.do("GET", "/v1/outlets/o-0001/series?metric="+tc.metric+"&"+q, viewerKey, "")
		if a.Status != 200 {
			t.Fatal(a)
		}
		a.json(t, &s)
		if s.Metric != tc.metric || s.Step != "1h" || len(s.Points) != 3 {
			t.Fatalf("%s: %s", tc.metric, a.Body)
		}
		for i, p := range s.Points {
			if want := time.Date(2026, 11, 27, i, 0, 0, 0, time.UTC); !p.T.Equal(want) {
				t.Errorf("%s point %d at %v, want %v", tc.metric, i, p.T, want)
			}
			checkRate(t, tc.metric, p.V, tc.v[i])
		}
	}
	// A step the engine got wrong is an error, not a shifted chart.
	checkProblem(t, ts.do("GET", "/v1/outlets/o-0001/series?metric=parcels&step=30m&"+q, viewerKey, ""), 500)
}

// TestCSVForEveryCollection: every collection endpoint answers CSV for
// Accept: text/csv and for ?format=csv, with the documented header and the
// same figures as its JSON.
func TestCSVForEveryCollection(t *testing.T) {
	ts := cityFixture(t)
	ts.engine.set(func(f *fakeEngine) {
		f.series["o-0001"] = []metrics.Outlet{{Parcels: parcels(0, 9, 0, 0, 1, 0, 0, 0), WindowMinutes: 60}}
		f.devices = []metrics.DeviceState{{Outlet: "o-0001", Device: "b-0001-1", Kind: telemetry.KindBin, LastReport: ts.now.Add(-time.Minute), FillPct: 95}}
	})
	ts.putOutlet(Outlet{ID: "o-0006", Name: `Comma, "quote" and 汉字`, District: "hanyang", Address: "line", Lat: -1.5, Lon: 2.25, Operator: "sf", Active: true})
	for _, tc := range []struct {
		path   string
		header []string
		rows   int
		check  func(t *testing.T, recs [][]string)
	}{
		{"/v1/outlets", outletCSVHeader, 6, func(t *testing.T, recs [][]string) {
			if r := recs[6]; r[0] != "o-0006" || r[1] != `Comma, "quote" and 汉字` || r[4] != "-1.5" || r[5] != "2.25" || r[7] != "true" {
				t.Errorf("row %q", r)
			}
		}},
		{"/v1/rates?group_by=district&" + day1, groupCSVHeader, 3, func(t *testing.T, recs [][]string) {
			if r := recs[1]; r[0] != "hanyang" || r[3] != "0" || r[5] != "0" || r[14] != "" {
				t.Errorf("hanyang row %q (no data: coverage 0, total 0, green_rate empty)", r)
			}
			if r := recs[2]; r[0] != "jianghan" || r[1] != "2" || r[5] != "200" || r[6] != "175" || r[14] != "0.875" || r[4] != "0.75" {
				t.Errorf("jianghan row %q", r)
			}
		}},
		{"/v1/outlets/o-0001/series?metric=green_rate&from=2026-11-27T00:00:00Z&to=2026-11-27T01:00:00Z", seriesCSVHeader, 1, func(t *testing.T, recs [][]string) {
			if r := recs[1]; r[0] != "2026-11-27T00:00:00Z" || r[1] != "0.9" || r[2] != "0" {
				t.Errorf("row %q", r)
			}
		}},
		{"/v1/alerts?kind=bin_full", alertCSVHeader, 1, func(t *testing.T, recs [][]string) {
			if r := recs[1]; r[0] != "bin_full" || r[1] != "o-0001" || r[2] != "One" || r[3] != "jianghan" || r[5] != "b-0001-1" || r[7] != "95" {
				t.Errorf("row %q", r)
			}
		}},
		{"/v1/waste-free?" + day1, wasteFreeCSVHeader, 5, func(t *testing.T, recs [][]string) {
			if r := recs[2]; r[0] != "o-0002" || r[3] != "false" || r[4] != "0.8" || r[7] != "green_rate bin_coverage" {
				t.Errorf("row %q", r)
			}
		}},
	} {
		for _, how := range []string{"accept", "format"} {
			t.Run(how+" "+tc.path, func(t *testing.T) {
				var a answer
				if how == "accept" {
					a = ts.on(t).do("GET", tc.path, viewerKey, "", "Accept", "text/csv")
				} else {
					sep := "?"
					if strings.Contains(tc.path, "?") {
						sep = "&"
					}
					a = ts.on(t).do("GET", tc.path+sep+"format=csv", viewerKey, "")
				}
				if a.Status != 200 || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/csv") {
					t.Fatalf("%s: %s %s", tc.path, a.Header.Get("Content-Type"), a)
				}
				recs, err := csv.NewReader(bytes.NewReader(a.Body)).ReadAll()
				if err != nil {
					t.Fatalf("not CSV: %v\n%s", err, a.Body)
				}
				if !reflect.DeepEqual(recs[0], tc.header) || len(recs)-1 != tc.rows {
					t.Fatalf("header %q and %d rows, want %q and %d:\n%s", recs[0], len(recs)-1, tc.header, tc.rows, a.Body)
				}
				tc.check(t, recs)
			})
		}
	}
	// JSON stays the default, also for browsers that accept anything.
	if a := ts.do("GET", "/v1/outlets", viewerKey, "", "Accept", "text/html,*/*"); !strings.HasPrefix(a.Header.Get("Content-Type"), "application/json") {
		t.Errorf("Accept */*: %s", a.Header.Get("Content-Type"))
	}
	// An export imports again as it is (its updated column is ignored).
	exp := ts.do("GET", "/v1/outlets?format=csv", viewerKey, "")
	ts2 := newTestServer(t, nil)
	if a := ts2.do("POST", "/v1/outlets/import", adminKey, string(exp.Body), "Content-Type", "text/csv"); a.Status != 200 || !strings.Contains(string(a.Body), `"imported":6,"errors":[]`) {
		t.Fatalf("import of an export: %s", a)
	}
	exp2 := ts2.do("GET", "/v1/outlets?format=csv", viewerKey, "")
	r1, _ := csv.NewReader(bytes.NewReader(exp.Body)).ReadAll()
	r2, _ := csv.NewReader(bytes.NewReader(exp2.Body)).ReadAll()
	for i := range r1 {
		if !reflect.DeepEqual(r1[i][:8], r2[i][:8]) {
			t.Errorf("row %d: %q exported again as %q", i, r1[i][:8], r2[i][:8])
		}
	}
}

// TestSeriesReportingAsDocumented: the series points carry reporting for
// exactly the metrics docs/api.md names (it promised it for bin_coverage,
// whose answer never had it).
func TestSeriesReportingAsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`reporting` is on the points of: ([^.]+)\\.").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/api.md does not say which series points carry reporting")
	}
	documented := map[string]bool{}
	for _, name := range strings.Split(string(m[1]), ",") {
		documented[strings.Trim(strings.TrimSpace(name), "`")] = true
	}
	ts := cityFixture(t)
	ts.engine.set(func(f *fakeEngine) {
		f.series["o-0001"] = []metrics.Outlet{{Parcels: parcels(0, 9, 0, 0, 1, 0, 0, 0), WindowMinutes: 60, ServingMinutes: 30, BinsReporting: 1, CounterReportingMinutes: 30}}
	})
	for _, metric := range seriesMetrics {
		var ans struct {
			Points []map[string]any `json:"points"`
		}
		a := ts.do("GET", "/v1/outlets/o-0001/series?metric="+metric+"&from=2026-11-27T00:00:00Z&to=2026-11-27T01:00:00Z", viewerKey, "")
		a.json(t, &ans)
		if a.Status != 200 || len(ans.Points) != 1 {
			t.Fatalf("%s: %s", metric, a)
		}
		if _, has := ans.Points[0]["reporting"]; has != documented[metric] {
			t.Errorf("%s: reporting in the answer %v, in docs/api.md %v", metric, has, documented[metric])
		}
	}
}

// classCounts is the contract's by_class object: every class of
// telemetry.ClassNames under its name, in that order, and back.
func TestClassCountsAreTheClasses(t *testing.T) {
	var b byClass
	for c := range b {
		b[c] = int64(10 + c)
	}
	data, err := json.Marshal(classCountsOf(b))
	if err != nil {
		t.Fatal(err)
	}
	want := "{"
	for c, name := range telemetry.ClassNames {
		if c > 0 {
			want += ","
		}
		want += fmt.Sprintf("%q:%d", name, 10+c)
	}
	if want += "}"; string(data) != want {
		t.Fatalf("by_class %s; want %s", data, want)
	}
	var back classCounts
	if err := json.Unmarshal(data, &back); err != nil || back.counts() != b {
		t.Fatalf("read back %v (%v); want %v", back.counts(), err, b)
	}
}

// meets is written as the map it was: judged figures only, keys sorted.
func TestMeetsJSON(t *testing.T) {
	yes, no := true, false
	m := meets{BinCoverage: &yes, GreenRate: &no, NoSecondaryRate: &yes, OutletCoverage: &no, WasteFree: &yes}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	asMap, _ := json.Marshal(m.flags())
	if string(data) != string(asMap) {
		t.Fatalf("meets %s; as a map %s", data, asMap)
	}
	if data, _ := json.Marshal(meets{GreenRate: &yes}); string(data) != `{"green_rate":true}` {
		t.Fatalf("one judged figure: %s", data)
	}
}
