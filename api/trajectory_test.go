package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// simDistrict is a simulated district for the trajectory: outlets whose
// green share follows share(x) (x: days since the window's start), and
// whose first bin report comes on day binFrom(k) for outlet k.
type simDistrict struct {
	id      string
	outlets int
	share   func(x float64) float64
	binFrom func(k int) int
}

// TestTrajectoryOnSimulatedDistricts: districts whose green share rises,
// stays above or falls at known rates, and one whose outlets get their
// recycling devices one after another, report for 28 days into a real
// InfluxDB; the real engine (roll-up) and the trajectory must project the
// date each reaches its target within a few days of the known one.
func TestTrajectoryOnSimulatedDistricts(t *testing.T) {
	in := testenv.SharedInflux(t)
	bucket := freshBucket(t, in)
	st := openStore(t, in, bucket)
	ctx := context.Background()
	cfg := defaultTestConfig()
	cfg.Bucket = bucket
	loc, _ := time.LoadLocation(cfg.TimeZone)
	now := time.Now()
	// 28 days: telemetry-v1 refuses reports more than 30 days old.
	from, to := trajectoryWindow(now, loc, 28)
	day := func(x float64) time.Time { return from.Add(time.Duration(x * 24 * float64(time.Hour))) }
	ds := []simDistrict{
		// 0.78 + 0.003 a day: 0.90 on day 40 (twelve days after the window).
		{"rising", 5, func(x float64) float64 { return 0.78 + 0.003*x }, func(int) int { return 0 }},
		{"above", 5, func(float64) float64 { return 0.93 }, func(int) int { return 0 }},
		{"falling", 5, func(x float64) float64 { return 0.86 - 0.001*x }, func(int) int { return 0 }},
		// Ten outlets, one more with a reporting bin every 4 days from day
		// 5: all covered on day 41.
		{"equipping", 10, func(float64) float64 { return 0.95 }, func(k int) int { return 5 + 4*k }},
	}
	var lines []byte
	seq := int64(0)
	r := rand.New(rand.NewPCG(7, 8))
	reg := newRegistry(st, nil, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	var outlets []Outlet
	for _, d := range ds {
		for k := range d.outlets {
			o := fmt.Sprintf("o-%s-%d", d.id, k)
			outlets = append(outlets, Outlet{ID: o, Name: o, District: d.id, Lat: 30, Lon: 114, Operator: "sf", Active: true})
			var green, other int64
			for h := 0; h < 28*24; h++ {
				at := from.Add(time.Duration(h)*time.Hour + 30*time.Minute)
				x := float64(h)/24 + 1.0/48
				// 20 parcels an hour, each green with the day's share.
				for range 20 {
					if r.Float64() < d.share(x) {
						green++
					} else {
						other++
					}
				}
				seq++
				lines = appendMsg(t, lines, o, "counter", "c-"+o, at, fmt.Sprintf(`"seq":%d,"boot":1,"parcels":{"recyclable":%d,"plastic":%d}`, seq, green, other))
				if h/24 >= d.binFrom(k) {
					seq++
					lines = appendMsg(t, lines, o, "bin", "b-"+o, at, fmt.Sprintf(`"seq":%d,"boot":1,"fill_pct":10,"deposits":1`, seq))
				}
			}
		}
	}
	if err := st.Write(ctx, lines); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Put(cityWideContext(ctx), outlets...); err != nil {
		t.Fatal(err)
	}
	opts := metrics.Options{Staleness: cfg.Staleness, FullPct: cfg.FullPct}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	roll, err := metrics.NewRollup(st, opts, metrics.RollupConfig{Horizon: 35 * 24 * time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := roll.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	eng, err := metrics.NewInfluxEngine(st, opts, roll)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, reg: reg, cfg: cfg, db: st, now: now}
	ts.app = newApp(&deps{cfg: cfg, log: log, db: st, reg: reg, engine: eng, fill: storeFill{st},
		targets: loadedTargets(t, st, reg.stamp), audit: st, now: func() time.Time { return ts.now }, promReg: newPromRegistry()})

	get := func(q string) trajectoryAnswer {
		var ans trajectoryAnswer
		a := ts.do("GET", "/v1/trajectory?"+q, viewerKey, "")
		if a.Status != 200 {
			t.Fatalf("%s: %s", q, a)
		}
		a.json(t, &ans)
		return ans
	}
	byKey := func(ans trajectoryAnswer) map[string]trajectoryGroup {
		m := map[string]trajectoryGroup{}
		for _, g := range ans.Groups {
			m[g.Key] = g
		}
		return m
	}
	gr := get("group_by=district&indicator=green_rate&days=28")
	if !gr.From.Equal(from.UTC()) || !gr.To.Equal(to.UTC()) || gr.TimeZone != "Asia/Shanghai" || setOf(gr.Targets) != "wuhan-2025" {
		t.Errorf("head %+v", gr)
	}
	g := byKey(gr)
	days := func(a, b time.Time) float64 { return a.Sub(b).Hours() / 24 }
	rising := g["rising"]
	if len(rising.Values) != 28 || rising.Values[0].Day != from.Format(time.DateOnly) || rising.DaysFitted != 28 || *rising.Target != 0.9 {
		t.Fatalf("rising: %+v", rising)
	}
	if math.Abs(*rising.TrendPerDay-0.003) > 0.0005 {
		t.Errorf("rising: trend %.5f a day, want 0.003", *rising.TrendPerDay)
	}
	want := day(40)
	if rising.ReachesTargetAt == nil || math.Abs(days(*rising.ReachesTargetAt, want)) > 3 {
		t.Errorf("rising: reaches the target at %v, want %v (within 3 days)", rising.ReachesTargetAt, want)
	} else {
		t.Logf("rising 0.003 a day: projected %s, known %s (%+.1f days); 95 %% between %v and %v",
			rising.ReachesTargetAt.Format(time.DateOnly), want.Format(time.DateOnly), days(*rising.ReachesTargetAt, want),
			rising.ReachesTargetBetween[0], rising.ReachesTargetBetween[1])
	}
	if b := rising.ReachesTargetBetween; b == nil || b[0] == nil || b[1] == nil || !b[0].Before(*rising.ReachesTargetAt) || !b[1].After(*rising.ReachesTargetAt) ||
		b[0].After(want) || b[1].Before(want) {
		t.Errorf("rising: the 95 %% range %v does not hold the known date %v", b, want)
	}
	if a := g["above"]; a.ReachesTargetAt == nil || math.Abs(a.ReachesTargetAt.Sub(now).Seconds()) > 1 || math.Abs(*a.TrendPerDay) > 0.001 {
		t.Errorf("above the target: %+v, want reaches_target_at now", a)
	}
	if f := g["falling"]; f.ReachesTargetAt != nil || *f.TrendPerDay > -0.0005 {
		t.Errorf("falling: %+v, want no date", f)
	}

	cov := byKey(get("group_by=district&indicator=outlet_coverage&days=28"))["equipping"]
	// Covered outlets: 1 on days 5..8, 2 on 9..12, ... 6 on 25..27: a step of
	// 0.1 every 4 days; all ten on day 41.
	want = day(41)
	if cov.Target == nil || *cov.Target != 1 || math.Abs(*cov.TrendPerDay-0.025) > 0.004 || cov.ReachesTargetAt == nil || math.Abs(days(*cov.ReachesTargetAt, want)) > 3 {
		t.Errorf("equipping: trend %v, reaches %v; want 0.025 a day, %v (within 3 days)", cov.TrendPerDay, cov.ReachesTargetAt, want)
	} else {
		t.Logf("outlet coverage 0.025 a day in steps: projected %s, known %s (%+.1f days)",
			cov.ReachesTargetAt.Format(time.DateOnly), want.Format(time.DateOnly), days(*cov.ReachesTargetAt, want))
	}
	if v := cov.Values[0].V; v == nil || *v != 0 {
		t.Errorf("equipping on day 0: %v, want 0", v)
	}

	city := get("group_by=city&indicator=green_rate&days=28")
	if len(city.Groups) != 1 || city.Groups[0].Key != "city" || city.Days != 28 {
		t.Errorf("city: %+v", city)
	}
}

func appendMsg(t *testing.T, lines []byte, outlet, kind, device string, at time.Time, body string) []byte {
	t.Helper()
	m, err := telemetry.Decode("gp/v1/"+outlet+"/"+kind+"/"+device+"/telemetry", []byte(fmt.Sprintf(`{"ts":%d,%s}`, at.UnixMilli(), body)), time.Now())
	if err != nil {
		t.Fatalf("%s %s: %v", device, body, err)
	}
	return telemetry.AppendPoint(lines, &m)
}

// TestTrajectoryRoute: parameters, no target, CSV (fake engine).
func TestTrajectoryRoute(t *testing.T) {
	ts := cityFixture(t)
	for _, q := range []string{"days=4", "days=94", "days=x", "indicator=bin_coverage", "group_by=operator", "district=jianghan"} {
		if a := ts.do("GET", "/v1/trajectory?"+q, viewerKey, ""); a.Status != 400 {
			t.Errorf("%s: %s", q, a)
		}
	}
	// The fixture's figures are the same every day: a flat trend.
	var ans trajectoryAnswer
	ts.do("GET", "/v1/trajectory?group_by=district&days=7", viewerKey, "").json(t, &ans)
	if len(ans.Groups) != 2 || ans.Days != 7 || len(ans.Groups[0].Values) != 7 {
		t.Fatalf("%+v", ans)
	}
	// jianghan: 175 green of 200 = 0.875, flat: never reaches 0.9.
	j := ans.Groups[0]
	if j.Key != "jianghan" || *j.Current != 0.875 || *j.TrendPerDay != 0 || j.ReachesTargetAt != nil {
		t.Errorf("jianghan %+v", j)
	}
	// Without a green_rate target: no target, no date.
	ts.putSet("wuhan-2025", `{"name":"coverage only","valid_from":"2024-01-15T00:00:00+08:00","targets":{"outlet_coverage":1}}`)
	ts.do("GET", "/v1/trajectory?group_by=district&days=7", viewerKey, "").json(t, &ans)
	if g := ans.Groups[0]; g.Target != nil || g.ReachesTargetAt != nil || g.TrendPerDay == nil {
		t.Errorf("without a target %+v", g)
	}
	a := ts.do("GET", "/v1/trajectory?group_by=city&days=7&format=csv", viewerKey, "")
	rows, err := csv.NewReader(bytes.NewReader(a.Body)).ReadAll()
	if err != nil || len(rows) != 2 || strings.Join(rows[0], ",") != strings.Join(trajectoryCSVHeader, ",") || rows[1][0] != "city" || rows[1][11] != "wuhan-2025" {
		t.Errorf("csv %v %v", err, rows)
	}
}
