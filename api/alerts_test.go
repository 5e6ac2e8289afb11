package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// TestFullSinceFromHistory: a full bin is full since the first report at or
// above full_pct after its last report below it (it was its last report's
// time), across reboots, and within the lookback.
func TestFullSinceFromHistory(t *testing.T) {
	in := testenv.SharedInflux(t)
	bucket := freshBucket(t, in)
	st := openStore(t, in, bucket)
	now := time.Now().UTC().Truncate(time.Second)
	m := time.Minute
	var lines []byte
	seq := 0
	bin := func(device string, boot int, at time.Duration, fill float64) {
		seq++
		lines = appendTelemetry(t, lines, "gp/v1/o-f1/bin/"+device+"/telemetry", now.Add(at),
			fmt.Sprintf(`"seq":%d,"boot":%d,"fill_pct":%g,"deposits":%d`, seq, boot, fill, seq))
	}
	bin("b-f1", 1, -60*m, 50)
	bin("b-f1", 1, -50*m, 95)
	bin("b-f1", 1, -40*m, 60) // emptied
	bin("b-f1", 1, -30*m, 92) // full again: since here
	bin("b-f1", 1, -20*m, 96)
	bin("b-f1", 1, -10*m, 97)
	bin("b-f2", 1, -20*m, 99) // never below: since its first report
	bin("b-f2", 2, -5*m, 98)  // a reboot is the same bin
	bin("b-f3", 1, -3*time.Hour, 50)
	bin("b-f3", 1, -time.Hour, 95) // the report below is beyond the lookback
	bin("b-f4", 1, -10*m, 10)      // not asked for
	bin("b-f5", 1, -50*time.Hour, 40)
	bin("b-f5", 1, -47*time.Hour, 91) // full for two days: found by the second, wider look
	bin("b-f5", 1, -2*time.Hour, 99)
	if err := st.Write(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	got, err := st.FullSince(context.Background(), []string{"b-f1", "b-f2", "b-f3"}, 90, now, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"b-f1": now.Add(-30 * m), "b-f2": now.Add(-20 * m), "b-f3": now.Add(-time.Hour)}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for d, w := range want {
		if !got[d].Equal(w) {
			t.Errorf("%s full since %v, want %v", d, got[d], w)
		}
	}
	// Over 3 days: the last day is asked first, the bins without a report
	// below in it (b-f2, b-f5) again over the whole lookback.
	got, err = st.FullSince(context.Background(), []string{"b-f1", "b-f2", "b-f3", "b-f5"}, 90, now, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]time.Time{"b-f1": now.Add(-30 * m), "b-f2": now.Add(-20 * m), "b-f3": now.Add(-time.Hour), "b-f5": now.Add(-47 * time.Hour)}
	if len(got) != len(want) {
		t.Errorf("3 days: got %v, want %v", got, want)
	}
	for d, w := range want {
		if !got[d].Equal(w) {
			t.Errorf("3 days: %s full since %v, want %v", d, got[d], w)
		}
	}
}

// TestFullSinceFromTrackerMatchesInflux: the tracker's "full since" (its
// memory, a read of the newest reports, kept answers, InfluxDB for the
// rest) equals store.FullSince's on simulated bins in the real InfluxDB:
// filled and emptied over five days, with noise and glitches, one full for
// four days (longer than the tracker holds: ProfileDays 1, 3 days), one
// rebooted in a run, one with a glitch below full inside a run, one that
// stopped reporting, one that became full after the tracker's last read,
// and under several lookbacks.
func TestFullSinceFromTrackerMatchesInflux(t *testing.T) {
	in := testenv.SharedInflux(t)
	st := openStore(t, in, freshBucket(t, in))
	ctx := context.Background()
	const full = 90.0
	now := time.Now().UTC().Truncate(time.Minute)
	step := 5 * time.Minute
	var lines []byte
	seq := 0
	report := func(outlet, device string, boot int, at time.Time, pct float64) {
		seq++
		lines = appendTelemetry(t, lines, "gp/v1/"+outlet+"/bin/"+device+"/telemetry", at,
			fmt.Sprintf(`"seq":%d,"boot":%d,"fill_pct":%g,"deposits":%d`, seq, boot, pct, seq))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := now.Add(-5 * 24 * time.Hour)
	// Six bins filling at their own pace, emptied at 100 % or by chance,
	// with noise and a glitch now and then.
	for b := range 6 {
		level := float64(b * 15)
		for at := start; at.Before(now); at = at.Add(step) {
			level += rng.Float64() * float64(b+1) * 0.4
			if level >= 100 || rng.IntN(400) == 0 {
				level = rng.Float64() * 10
			}
			v := min(100, level+rng.NormFloat64()*0.5)
			if rng.IntN(150) == 0 {
				v = rng.Float64() * 100 // a glitch
			}
			report("o-sim", fmt.Sprintf("b-sim-%d", b), 1, at, math.Round(v*10)/10)
		}
	}
	for at := start; at.Before(now); at = at.Add(step) {
		// Full for the last four days: longer than the tracker holds.
		report("o-long", "b-long", 1, at, map[bool]float64{true: 95, false: 30}[at.After(now.Add(-4*24*time.Hour))])
		if at.After(now.Add(-6 * time.Hour)) {
			// Full since 6 h ago, rebooted 2 h ago (a new boot series).
			boot := 1
			if at.After(now.Add(-2 * time.Hour)) {
				boot = 2
			}
			report("o-boot", "b-boot", boot, at, 92)
			// Full for 6 h but for one glitch below 40 minutes ago.
			report("o-glitch", "b-glitch", 1, at, map[bool]float64{true: 10, false: 97}[now.Sub(at) == 40*time.Minute])
		}
		if at.Before(now.Add(-24 * time.Hour)) {
			report("o-stop", "b-stop", 1, at, 91) // stopped a day ago, full
		}
	}
	if err := st.Write(ctx, lines); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	tr := fill.NewTracker(fill.TrackerConfig{Source: st, Options: fill.Options{FullPct: full, ProfileDays: 1},
		Interval: time.Hour, Now: func() time.Time { return now }, Registerer: reg})
	src := trackerFull{tr, st}
	// The full bins as the device states show them: newest report at or
	// above full.
	fullBins := func(at time.Time) []fill.FullBin {
		var out []fill.FullBin
		err := st.BinReports(ctx, at.Add(-6*24*time.Hour), at.Add(time.Millisecond), nil, func(outlet, device string, _, ts int64, pct float64) error {
			i := slices.IndexFunc(out, func(b fill.FullBin) bool { return b.Device == device })
			if i < 0 {
				out = append(out, fill.FullBin{Outlet: outlet, Device: device})
				i = len(out) - 1
			}
			if tm := time.UnixMilli(ts); !tm.Before(out[i].Last) {
				out[i].Last, out[i].Outlet = tm, strconv.FormatFloat(pct, 'f', -1, 64)+"|"+outlet
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var fulls []fill.FullBin
		for _, b := range out {
			pct, outlet, _ := strings.Cut(b.Outlet, "|")
			if v, _ := strconv.ParseFloat(pct, 64); v >= full {
				fulls = append(fulls, fill.FullBin{Outlet: outlet, Device: b.Device, Last: b.Last})
			}
		}
		return fulls
	}
	compare := func(what string, at time.Time, lookback time.Duration) {
		t.Helper()
		bins := fullBins(at)
		devices := make([]string, len(bins))
		for i, b := range bins {
			devices[i] = b.Device
		}
		want, err := st.FullSince(ctx, devices, full, at, lookback)
		if err != nil {
			t.Fatal(err)
		}
		got, err := src.FullSince(ctx, bins, full, at, lookback)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d answers, InfluxDB %d:\n%v\n%v", what, len(got), len(want), got, want)
		}
		for d, w := range want {
			if g := got[d]; !g.Equal(w) {
				t.Errorf("%s: %s full since %v, InfluxDB says %v", what, d, g, w)
			}
		}
	}
	compare("before the tracker's load", now, 30*24*time.Hour)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tr.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.Eventually(t, 30*time.Second, func() string {
		if tr.Ready() {
			return ""
		}
		return "the tracker has not loaded"
	})
	for _, lb := range []time.Duration{2 * time.Hour, 24 * time.Hour, 5 * 24 * time.Hour, 30 * 24 * time.Hour} {
		for _, back := range []time.Duration{0, 45 * time.Minute} {
			compare(fmt.Sprintf("lookback %s, now −%s", lb, back), now.Add(-back), lb)
		}
	}
	compare("again (kept)", now, 30*24*time.Hour)
	// After the tracker's last read: b-sim-0..2 and b-glitch report full,
	// b-long is emptied and full again; the tracker has not polled.
	lines = lines[:0]
	for b := range 3 {
		report("o-sim", fmt.Sprintf("b-sim-%d", b), 1, now.Add(time.Minute), 99)
	}
	report("o-glitch", "b-glitch", 1, now.Add(time.Minute), 98)
	report("o-long", "b-long", 1, now.Add(time.Minute), 20)
	report("o-long", "b-long", 1, now.Add(2*time.Minute), 93)
	if err := st.Write(ctx, lines); err != nil {
		t.Fatal(err)
	}
	compare("after the last read", now.Add(3*time.Minute), 30*24*time.Hour)
	counts := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "greenpost_fill_full_since_total" {
			for _, m := range mf.GetMetric() {
				counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	for _, src := range []string{"memory", "tail", "kept", "store"} {
		if counts[src] == 0 {
			t.Errorf("no answer from %s: %v", src, counts)
		}
	}
}

// TestSortAlerts: alerts sorted kind by kind come out in the order of one
// sort by kind, since (full bins) and outlet and device.
func TestSilentDetailIsFmts(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, v := range []float64{0, 0.5, 1.5, 2.5, 15.000001, 913.49, 1e7, rng.Float64() * 1e5, rng.Float64() * 100} {
		for _, st := range []time.Duration{15 * time.Minute, 90 * time.Second, time.Duration(rng.Int64N(int64(time.Hour)))} {
			if got, want := silentDetail(v, st), fmt.Sprintf("no device of this outlet has reported for %.0f minutes (staleness %s)", v, st); got != want {
				t.Fatalf("%q, want %q", got, want)
			}
		}
	}
}

func TestSortAlerts(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 2))
	for range 50 {
		var as []alert
		for range rng.IntN(300) {
			al := alert{Kind: alertKinds[rng.IntN(len(alertKinds))], Outlet: fmt.Sprintf("o-%03d", rng.IntN(40)), Device: fmt.Sprintf("d-%d", rng.IntN(5))}
			if al.Kind == alertBinFull {
				ts := time.Unix(int64(rng.IntN(20)), 0)
				al.Since = &ts
			}
			as = append(as, al)
		}
		want := slices.Clone(as)
		rank := func(kind string) int { return slices.Index(alertKinds, kind) }
		slices.SortStableFunc(want, func(x, y alert) int {
			if x.Kind != y.Kind {
				return cmp.Compare(rank(x.Kind), rank(y.Kind))
			}
			if x.Kind == alertBinFull {
				if c := x.Since.Compare(*y.Since); c != 0 {
					return c
				}
			}
			return cmp.Or(cmp.Compare(x.Outlet, y.Outlet), cmp.Compare(x.Device, y.Device))
		})
		// Input in order already: the same answer.
		if again := sortAlerts(slices.Clone(want)); !slices.EqualFunc(again, want, func(a, b alert) bool {
			return a.Kind == b.Kind && a.Outlet == b.Outlet && a.Device == b.Device && a.Since == b.Since
		}) {
			t.Fatal("sorting alerts in order changed them")
		}
		got := sortAlerts(slices.Clone(as))
		if len(got) != len(want) {
			t.Fatalf("%d alerts sorted into %d", len(want), len(got))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Kind != w.Kind || g.Outlet != w.Outlet || g.Device != w.Device || (g.Since == nil) != (w.Since == nil) || (g.Since != nil && !g.Since.Equal(*w.Since)) {
				t.Fatalf("alert %d: %+v, want %+v", i, g, w)
			}
		}
	}
}

// BenchmarkSortAlerts: a city's outage at 10,000 outlets — 30,000 devices
// offline and 10,000 outlets silent, listed by id as alerts lists them,
// and 6,000 full bins in no order of since.
func BenchmarkSortAlerts(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	var as []alert
	for i := range 6000 {
		ts := time.Unix(int64(rng.IntN(1e6)), 0)
		as = append(as, alert{Kind: alertBinFull, Outlet: fmt.Sprintf("o-%05d", i), Device: "b-1", Since: &ts})
	}
	for i := range 30000 {
		as = append(as, alert{Kind: alertDeviceOffline, Outlet: fmt.Sprintf("o-%05d", i/3), Device: fmt.Sprintf("d-%06d", i), Detail: "no report for 913 minutes (staleness 15m0s)"})
	}
	for i := range 10000 {
		as = append(as, alert{Kind: alertOutletSilent, Outlet: fmt.Sprintf("o-%05d", i), Name: "驿站", District: "江岸区", Address: "somewhere"})
	}
	in := make([]alert, len(as))
	b.ReportAllocs()
	for b.Loop() {
		copy(in, as)
		if got := sortAlerts(in); len(got) != len(as) {
			b.Fatal(len(got))
		}
	}
}

// BenchmarkAlertsOutage is a whole alerts answer in a city's outage at
// 10,000 outlets (as bench/api's all-offline alerts, without HTTP and
// InfluxDB): 30,000 devices last heard 15 hours ago, a fifth of the bins
// full, every outlet silent, a tenth below the green target; the alerts
// computed and written as JSON into a buffer used again, as the handler
// writes into fasthttp's pooled body (sendBuilt).
func BenchmarkAlertsOutage(b *testing.B) {
	const outlets = 10000
	now := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	last := now.Add(-15 * time.Hour)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	db := &memOutlets{}
	reg := newRegistry(db, nil, log)
	eng := &fakeEngine{outlets: map[string]metrics.Outlet{}}
	var os []Outlet
	for i := range outlets {
		id := fmt.Sprintf("o-%05d", i)
		os = append(os, Outlet{ID: id, Name: "汉阳区钟家村快递站" + strconv.Itoa(i), District: fmt.Sprintf("d%02d", i%13),
			Address: "武汉市汉阳区钟家村街道 " + strconv.Itoa(i) + " 号", Operator: "ems", Active: true, Lat: 30, Lon: 114})
		green := int64(95)
		if i%10 == 0 {
			green = 80
		}
		eng.outlets[id] = metrics.Outlet{Parcels: parcels(green, 100-green, 0, 0, 0, 0, 0, 0), BinsReporting: 2, CountersReporting: 1}
		for j, k := range []telemetry.Kind{telemetry.KindBin, telemetry.KindBin, telemetry.KindCounter} {
			fillPct := 40.0
			if i%5 == 0 && j == 0 {
				fillPct = 95
			}
			eng.devices = append(eng.devices, metrics.DeviceState{Outlet: id, Device: fmt.Sprintf("%s-d%d", id, j), Kind: k,
				LastReport: last, FillPct: fillPct, State: telemetry.StateOnline, StateSince: last.Add(-24 * time.Hour)})
		}
	}
	if _, err := reg.Put(cityCtx, os...); err != nil {
		b.Fatal(err)
	}
	targets := loadedTargets(b, db, reg.stamp)
	rt := &rater{reg: reg, engine: eng, targets: targets, cache: newFigureCache(0, time.Minute, func() time.Time { return now }, prometheus.NewRegistry())}
	al := &alerter{reg: reg, engine: eng, rater: rt, full: fakeFill{}, lookback: 72 * time.Hour, targets: targets,
		opts: metrics.Options{Staleness: 15 * time.Minute, FullPct: 90}}
	ctx := cityCtx
	b.ReportAllocs()
	var body []byte
	for b.Loop() {
		as, err := al.alerts(ctx, now, nil, outletFilter{})
		if err != nil {
			b.Fatal(err)
		}
		if body, err = appendAlertsAnswer(body[:0], alertsAnswer{At: now, Alerts: as, known: reg.Written()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(body))/1e6, "MB/answer")
}
