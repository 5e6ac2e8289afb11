package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// The API on the real metrics engine and real data in a real InfluxDB
// 1.8.10: points are made by telemetry.Decode + telemetry.AppendPoint and
// written with store.Write, as the collector does; every expected number
// below is worked out by hand from metrics-v1 in the comments.

// appendTelemetry appends the point of one device message (topic, its time,
// the payload's other members) as the collector makes it.
func appendTelemetry(t *testing.T, lines []byte, topic string, at time.Time, body string) []byte {
	t.Helper()
	payload := fmt.Sprintf(`{"ts":%d,%s}`, at.UnixMilli(), body)
	m, err := telemetry.Decode(topic, []byte(payload), time.Now())
	if err != nil {
		t.Fatalf("fixture message %s %s: %v", topic, payload, err)
	}
	return telemetry.AppendPoint(lines, &m)
}

// e2eData writes the fixture. F is the window's start: a whole hour three
// days ago, so the roll-up holds it; the window is [F, F+2h).
func e2eData(t *testing.T, st *store.Store, F time.Time) {
	t.Helper()
	var lines []byte
	add := func(outlet, kind, device, channel string, at time.Duration, body string) {
		lines = appendTelemetry(t, lines, "gp/v1/"+outlet+"/"+kind+"/"+device+"/"+channel, F.Add(at), body)
	}
	seq := int64(0)
	counter := func(outlet, device string, boot int64, at time.Duration, parcels string, boxes int) {
		seq++
		b := fmt.Sprintf(`"seq":%d,"boot":%d,"parcels":{%s}`, seq, boot, parcels)
		if boxes >= 0 {
			b += fmt.Sprintf(`,"boxes_recovered":%d`, boxes)
		}
		add(outlet, "counter", device, "telemetry", at, b)
	}
	bin := func(outlet, device string, at time.Duration, fill float64) {
		seq++
		add(outlet, "bin", device, "telemetry", at, fmt.Sprintf(`"seq":%d,"boot":1,"fill_pct":%g,"deposits":%d`, seq, fill, seq))
	}
	m := time.Minute
	h := time.Hour

	// o-e1: resets and decreases per class, the baseline inside 24 h.
	counter("o-e1", "c-e1", 1, -23*h, `"recyclable":1000,"plastic":500`, 5)
	counter("o-e1", "c-e1", 1, -10*m, `"recyclable":1100,"plastic":60`, 6) // the baseline b
	counter("o-e1", "c-e1", 1, 10*m, `"recyclable":1150,"plastic":55`, 8)  // recyclable +50; plastic 55 < 60: reset, +55; boxes +2
	counter("o-e1", "c-e1", 1, 20*m, `"recyclable":30,"plastic":70`, 9)    // recyclable reset +30; plastic +15; boxes +1
	counter("o-e1", "c-e1", 1, 30*m, `"recyclable":80,"plastic":70`, 9)    // recyclable +50
	counter("o-e1", "c-e1", 1, 2*h, `"recyclable":500,"plastic":70`, 9)    // at `to`: outside [F, F+2h)
	bin("o-e1", "b-e1-1", -5*m, 20)                                        // before F: serves minutes 0..10 (11)
	bin("o-e1", "b-e1-1", 30*m, 50)                                        // serves 30..44 (15): at 45 a full report
	bin("o-e1", "b-e1-1", 45*m, 95)                                        // full: not serving 45..59
	bin("o-e1", "b-e1-1", 60*m, 10)                                        // serves 60..75 (16), then stale

	// o-e2: the baseline beyond 24 h is no baseline, a reboot starts a new
	// series inside the window, two bins (one always serving).
	counter("o-e2", "c-e2", 3, -25*h, `"recyclable":500`, -1)             // beyond 24 h: ignored
	counter("o-e2", "c-e2", 3, 5*m, `"recyclable":520,"original":10`, -1) // b = 0: +520, +10
	counter("o-e2", "c-e2", 4, 60*m, `"reusable":7,"recyclable":3`, -1)   // boot 4 starts from 0
	counter("o-e2", "c-e2", 4, 70*m, `"reusable":9,"recyclable":3`, -1)   // reusable +9, recyclable +3
	for i := 0; i < 12; i++ {
		bin("o-e2", "b-e2-1", time.Duration(i)*10*m, 10) // every 10 min from F: every minute served
	}
	bin("o-e2", "b-e2-2", 50*m, 99) // full

	// o-e3: registered, no data at all.
	// o-e4: inactive, with data.
	counter("o-e4", "c-e4", 1, 1*m, `"plastic":100`, -1)
	// o-e5: only data from before the window, older than staleness.
	counter("o-e5", "c-e5", 1, -1*h, `"recyclable":100`, -1)
	bin("o-e5", "b-e5-1", -20*m, 10)
	if err := st.Write(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
}

// e2eFixture writes e2eData into a database of its own, F three days ago,
// and registers its outlets: o-e1, o-e2 in east; o-e3..o-e5 in west, o-e4
// inactive.
func e2eFixture(t *testing.T) (st *store.Store, bucket string, F time.Time) {
	t.Helper()
	in := testenv.SharedInflux(t)
	bucket = freshBucket(t, in)
	st = openStore(t, in, bucket)
	F = time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	e2eData(t, st, F)
	reg := newRegistry(st, nil, nil)
	var outlets []Outlet
	for i, d := range []string{"east", "east", "west", "west", "west"} {
		outlets = append(outlets, Outlet{ID: fmt.Sprintf("o-e%d", i+1), Name: "E2E", District: d, Lat: 30, Lon: 114, Operator: "sf", Active: i != 3})
	}
	if _, err := reg.Put(cityCtx, outlets...); err != nil {
		t.Fatal(err)
	}
	return st, bucket, F
}

// e2eServer builds the app on the real engine (roll-up or raw) over st.
func e2eServer(t *testing.T, st *store.Store, bucket string, rollup bool) *testServer {
	t.Helper()
	ctx := context.Background()
	cfg := defaultTestConfig()
	cfg.Bucket = bucket
	opts := metrics.Options{Staleness: cfg.Staleness, FullPct: cfg.FullPct}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	var roll *metrics.Rollup
	if rollup {
		var err error
		roll, err = metrics.NewRollup(st, opts, metrics.RollupConfig{Horizon: 5 * 24 * time.Hour, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := roll.Sync(sctx); err != nil {
			t.Fatalf("roll-up: %v", err)
		}
	}
	eng, err := metrics.NewInfluxEngine(st, opts, roll)
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(st, nil, log)
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, reg: reg, cfg: cfg, db: st, now: time.Now().UTC()}
	ts.app = newApp(&deps{cfg: cfg, log: log, db: st, reg: reg, engine: eng, fill: storeFill{st}, full: storeFill{st},
		targets: loadedTargets(t, st, reg.stamp), audit: st, now: func() time.Time { return ts.now }, promReg: newPromRegistry()})
	return ts
}

func TestFiguresEndToEndByHand(t *testing.T) {
	st, bucket, F := e2eFixture(t)
	win := "from=" + F.Format(time.RFC3339) + "&to=" + F.Add(2*time.Hour).Format(time.RFC3339)

	type outletWant struct {
		total, green                  int64
		by                            byClass
		boxes                         int64
		greenRate                     any
		bins, serving, counters, cmin int
		covered, wasteFree, silent    bool
	}
	want := map[string]outletWant{
		// recyclable 50+30+50 = 130, plastic 55+15 = 70; boxes 2+1 = 3.
		// Serving 11+15+16 = 42. Counter fresh: 0..5 (from F-10m) and
		// 10..45 → 6+36 = 42.
		"o-e1": {200, 130, byClass{telemetry.Recyclable: 130, telemetry.Plastic: 70}, 3, 130.0 / 200, 1, 42, 1, 42, true, false, false},
		// recyclable 520+3, original 10, reusable 9: all green. b-e2-1
		// serves all 120 minutes. Counter fresh: 5..20 (16) and 60..85 (26).
		"o-e2": {542, 542, byClass{telemetry.Reusable: 9, telemetry.Recyclable: 523, telemetry.Original: 10}, 0, 1.0, 2, 120, 1, 42, true, true, false},
		"o-e3": {0, 0, byClass{}, 0, nil, 0, 0, 0, 0, false, false, true},
		// Inactive: out of every roll-up, its own rates still answer.
		// Counter fresh 1..16 (16).
		"o-e4": {100, 0, byClass{telemetry.Plastic: 100}, 0, 0.0, 0, 0, 1, 16, false, false, false},
		// The bin report at F-20m serves until F-5m: nothing in the window.
		"o-e5": {0, 0, byClass{}, 0, nil, 0, 0, 0, 0, false, false, true},
	}
	for _, mode := range []string{"rollup", "raw"} {
		t.Run(mode, func(t *testing.T) {
			ts := e2eServer(t, st, bucket, mode == "rollup")
			for id, w := range want {
				var r outletRates
				a := ts.on(t).do("GET", "/v1/outlets/"+id+"/rates?"+win, viewerKey, "")
				if a.Status != 200 {
					t.Fatalf("%s: %s", id, a)
				}
				a.json(t, &r)
				if r.Parcels.Total != w.total || r.Parcels.Green != w.green || r.Parcels.ByClass.counts() != w.by || r.BoxesRecovered != w.boxes {
					t.Errorf("%s parcels %+v boxes %d, want total %d green %d %+v boxes %d", id, r.Parcels, r.BoxesRecovered, w.total, w.green, w.by, w.boxes)
				}
				checkRate(t, id+" green_rate", r.GreenRate, w.greenRate)
				if r.BinsReporting != w.bins || r.Completeness.ServingMinutes != w.serving || !near(r.BinCoverage, float64(w.serving)/120) || r.Covered != w.covered {
					t.Errorf("%s bins %d serving %d coverage %v covered %v, want %d %d %v %v", id, r.BinsReporting, r.Completeness.ServingMinutes, r.BinCoverage, r.Covered, w.bins, w.serving, float64(w.serving)/120, w.covered)
				}
				if r.Completeness.CountersReporting != w.counters || r.Completeness.CounterReportingMinutes != w.cmin || r.Completeness.WindowMinutes != 120 || r.Completeness.Silent != w.silent {
					t.Errorf("%s completeness %+v, want counters %d minutes %d silent %v", id, r.Completeness, w.counters, w.cmin, w.silent)
				}
				if r.Meets.flags()["waste_free"] != w.wasteFree {
					t.Errorf("%s waste_free %v, want %v", id, r.Meets.flags()["waste_free"], w.wasteFree)
				}
			}

			// The city: o-e1, o-e2, o-e3, o-e5 (o-e4 inactive). Parcels
			// 200+542 = 742, green 130+542 = 672; covered 2 of 4; bin
			// coverage mean(42/120, 1, 0, 0) = 0.3375.
			var city groupsAnswer
			ts.on(t).do("GET", "/v1/rates?group_by=city&"+win, viewerKey, "").json(t, &city)
			g := city.Groups[0]
			if g.Outlets != 4 || g.CoveredOutlets != 2 || g.Parcels.Total != 742 || g.Parcels.Green != 672 || g.BoxesRecovered != 3 ||
				g.Parcels.ByClass.counts() != (byClass{telemetry.Reusable: 9, telemetry.Recyclable: 653, telemetry.Original: 10, telemetry.Plastic: 70}) || g.WasteFreeOutlets != 1 ||
				g.Completeness.SilentOutlets != 2 || g.Completeness.OutletsReportingParcels != 2 {
				t.Errorf("city %+v", g)
			}
			checkRate(t, "city green_rate", g.GreenRate, 672.0/742)
			checkRate(t, "city no_secondary_rate", g.NoSecondaryRate, 10.0/742)
			checkRate(t, "city reusable_rate", g.ReusableRate, 9.0/742)
			checkRate(t, "city outlet_coverage", g.OutletCoverage, 0.5)
			checkRate(t, "city bin_coverage", g.BinCoverage, 0.3375)
			checkRate(t, "city counter_reporting", g.Completeness.CounterReporting, (42.0/120+42.0/120)/4)

			// By district: east = o-e1, o-e2; west = o-e3, o-e5.
			var d groupsAnswer
			ts.on(t).do("GET", "/v1/rates?group_by=district&"+win, viewerKey, "").json(t, &d)
			if len(d.Groups) != 2 || d.Groups[0].Key != "east" || d.Groups[0].Parcels.Total != 742 || d.Groups[1].Key != "west" ||
				d.Groups[1].Outlets != 2 || d.Groups[1].Parcels.Total != 0 || d.Groups[1].GreenRate != nil {
				t.Errorf("districts %+v", d.Groups)
			}
			checkRate(t, "east bin_coverage", d.Groups[0].BinCoverage, (42.0/120+1)/2)

			// Series of o-e1 by the hour: every parcel in the first hour;
			// bins serving 26 then 16 minutes; fill levels 95 then 10.
			for _, tc := range []struct {
				metric string
				v      []any
			}{
				{"parcels", []any{200.0, 0.0}},
				{"green_rate", []any{0.65, nil}},
				{"bin_coverage", []any{26.0 / 60, 16.0 / 60}},
				{"fill_pct", []any{95.0, 10.0}},
			} {
				var s seriesAnswer
				a := ts.on(t).do("GET", "/v1/outlets/o-e1/series?metric="+tc.metric+"&step=1h&"+win, viewerKey, "")
				if a.Status != 200 {
					t.Fatal(a)
				}
				a.json(t, &s)
				if len(s.Points) != 2 || !s.Points[0].T.Equal(F) || !s.Points[1].T.Equal(F.Add(time.Hour)) {
					t.Fatalf("%s points %+v", tc.metric, s.Points)
				}
				for i, p := range s.Points {
					checkRate(t, fmt.Sprintf("%s[%d]", tc.metric, i), p.V, tc.v[i])
				}
			}

			// Waste-free: only o-e2 passes.
			var wf wasteFreeAnswer
			ts.on(t).do("GET", "/v1/waste-free?"+win, viewerKey, "").json(t, &wf)
			if wf.Passing != 1 || len(wf.Outlets) != 4 || !wf.Outlets[1].Pass || wf.Outlets[1].Outlet != "o-e2" {
				t.Errorf("waste-free %+v", wf)
			}

			// Alerts now (three days after the data): every device of an
			// active outlet is offline; b-e2-2's last level 99 is full. Over
			// the last 7 days every point of o-e1 is inside the window and
			// nothing before it is a baseline: recyclable 1000+100+50+30+50+420
			// = 1650, plastic 500+60(reset)+55(reset)+15 = 630, so green_rate
			// 1650/2280 is below target; o-e2 and o-e5 are all green.
			var al alertsAnswer
			ts.on(t).do("GET", "/v1/alerts", viewerKey, "").json(t, &al)
			var got []string
			for _, a := range al.Alerts {
				got = append(got, a.Kind+" "+a.Outlet+" "+a.Device)
			}
			// Every active outlet is silent: o-e3 never reported, the others
			// not for three days. Full bins come first.
			wantAlerts := []string{
				"bin_full o-e2 b-e2-2",
				"outlet_silent o-e1 ", "outlet_silent o-e2 ", "outlet_silent o-e3 ", "outlet_silent o-e5 ",
				"device_offline o-e1 b-e1-1", "device_offline o-e1 c-e1",
				"device_offline o-e2 b-e2-1", "device_offline o-e2 b-e2-2", "device_offline o-e2 c-e2",
				"device_offline o-e5 b-e5-1", "device_offline o-e5 c-e5",
				"below_target o-e1 ",
			}
			if !reflect.DeepEqual(got, wantAlerts) {
				t.Errorf("alerts\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantAlerts, "\n"))
			}
			for _, a := range al.Alerts {
				if a.Kind == "outlet_silent" && a.Outlet == "o-e3" && a.Since != nil || a.Outlet == "o-e1" && a.Kind == "outlet_silent" && !a.Since.Equal(F.Add(2*time.Hour)) {
					t.Errorf("%+v", a)
				}
				if a.Kind == "bin_full" && (!a.Since.Equal(F.Add(50*time.Minute)) || a.Value == nil || *a.Value != 99) {
					t.Errorf("bin_full %+v", a)
				}
				if a.Kind == "below_target" {
					checkRate(t, "below_target value", a.Value, 1650.0/2280)
				}
				if a.Device == "b-e1-1" && (!a.Since.Equal(F.Add(time.Hour)) || a.Value == nil || !near(*a.Value, ts.now.Sub(F.Add(time.Hour)).Minutes())) {
					t.Errorf("device_offline %+v", a)
				}
			}
		})
	}

	// Windows that cut hours: the roll-up must answer exactly what the raw
	// path answers (edges are read raw).
	roll, raw := e2eServer(t, st, bucket, true), e2eServer(t, st, bucket, false)
	for _, w := range [][2]time.Duration{{7 * time.Minute, 113 * time.Minute}, {-30 * time.Minute, 61 * time.Minute}, {59 * time.Minute, 61 * time.Minute}, {-24 * time.Hour, 3 * time.Hour}} {
		q := "from=" + F.Add(w[0]).Format(time.RFC3339) + "&to=" + F.Add(w[1]).Format(time.RFC3339)
		for _, path := range []string{"/v1/rates?group_by=outlet&" + q, "/v1/outlets/o-e1/rates?" + q, "/v1/outlets/o-e2/series?metric=green_rate&step=17m&" + q} {
			a, b := roll.do("GET", path, viewerKey, ""), raw.do("GET", path, viewerKey, "")
			var ja, jb any
			json.Unmarshal(a.Body, &ja)
			json.Unmarshal(b.Body, &jb)
			if a.Status != 200 || !reflect.DeepEqual(ja, jb) {
				t.Errorf("%s\nroll-up: %s\nraw:     %s", path, a, b)
			}
		}
	}
}
