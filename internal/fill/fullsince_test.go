package fill

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// refFullSince is InfluxDB's "full since" (internal/store's FullSince),
// written plainly over every report of the source: per device, across its
// boots and outlets, the first report in [now − lookback, now] after the
// last one below full there; none when the last is below or there is none.
func (m *memSource) refFullSince(devices []string, full float64, now time.Time, lookback time.Duration) map[string]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	fromNs, toNs := now.Add(-lookback).UnixNano(), now.UnixNano()
	out := map[string]time.Time{}
	for _, d := range devices {
		var rs []Report
		for k, b := range m.bins {
			if k.device != d {
				continue
			}
			for _, r := range b {
				if ns := r.T * int64(time.Millisecond); ns >= fromNs && ns <= toNs {
					rs = append(rs, r)
				}
			}
		}
		if len(rs) == 0 {
			continue
		}
		below := int64(-1)
		for _, r := range rs {
			if r.Pct < full && r.T > below {
				below = r.T
			}
		}
		first := int64(-1)
		for _, r := range rs {
			if r.T > below && (first < 0 || r.T < first) {
				first = r.T
			}
		}
		if first >= 0 {
			out[d] = time.UnixMilli(first).UTC()
		}
	}
	return out
}

// asker is a FullSinceFunc over the reference that notes what it was asked.
type asker struct {
	src   *memSource
	mu    sync.Mutex
	asked []string
}

func (a *asker) ask(_ context.Context, devices []string, full float64, now time.Time, lookback time.Duration) (map[string]time.Time, error) {
	a.mu.Lock()
	a.asked = append(a.asked, devices...)
	a.mu.Unlock()
	return a.src.refFullSince(devices, full, now, lookback), nil
}

func (a *asker) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.asked
	a.asked = nil
	return out
}

// fullBins are the bins of src whose newest report at or before now is
// full, as the device states show them.
func (m *memSource) fullBins(full float64, now time.Time) []FullBin {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []FullBin
	for k, rs := range m.bins {
		last := Report{T: -1}
		for _, r := range rs {
			if r.T <= now.UnixMilli() && r.T >= last.T {
				last = r
			}
		}
		if last.T >= 0 && last.Pct >= full {
			out = append(out, FullBin{Outlet: k.outlet, Device: k.device, Last: time.UnixMilli(last.T)})
		}
	}
	slices.SortFunc(out, func(a, b FullBin) int { return strings.Compare(a.Device, b.Device) })
	return out
}

func sameSince(t *testing.T, what string, got, want map[string]time.Time) {
	t.Helper()
	for d, w := range want {
		if g, ok := got[d]; !ok || !g.Equal(w) {
			t.Errorf("%s: %s full since %v, want %v", what, d, g, w)
		}
	}
	for d, g := range got {
		if _, ok := want[d]; !ok {
			t.Errorf("%s: %s full since %v, want no answer", what, d, g)
		}
	}
}

func devicesOf(bins []FullBin) []string {
	out := make([]string, len(bins))
	for i, b := range bins {
		out[i] = b.Device
	}
	return out
}

// TestFullSinceFromMemory: the tracker's "full since" equals InfluxDB's
// (the reference above) on a simulated city (emptyings, glitches) and on
// bins built for the edges: full for longer than memory and than the
// lookback, a glitch below full inside a run, a reboot, two boots at one
// time, a reading a float32 would round up to full, a device under two
// outlets, a bin that stopped reporting, and bins that became full (or
// were emptied and filled again) after memory's last read. Memory answers
// most; InfluxDB is asked for what it cannot tell, once for a bin that
// stays full.
func TestFullSinceFromMemory(t *testing.T) {
	const full = 90.0
	src := newMemSource()
	src.city(6, 6)
	end := time.UnixMilli(day0 + 6*dayMs)
	e := end.UnixMilli()
	run := func(outlet, device string, boot int64, from, to int64, pct float64) {
		for ts := from; ts < to; ts += step {
			src.add(outlet, device, boot, Report{T: ts, Pct: pct})
		}
	}
	// Full for 5 days: beyond memory (ProfileDays 1: 3 days and an hour).
	run("o-long", "b-long", 1, e-6*dayMs, e-5*dayMs, 40)
	run("o-long", "b-long", 1, e-5*dayMs, e, 95)
	// A glitch below full an hour ago ends the run there (InfluxDB knows
	// no glitches); a reboot does not.
	run("o-gl", "b-gl", 1, e-10*hourMs, e-3*hourMs, 97)
	src.add("o-gl", "b-gl", 1, Report{T: e - hourMs, Pct: 12})
	run("o-gl", "b-gl", 2, e-3*hourMs+step/2, e, 97)
	// Two boots at one time, one full and one not.
	run("o-mix", "b-mix", 1, e-5*hourMs, e, 93)
	src.add("o-mix", "b-mix", 1, Report{T: e - 2*hourMs + 1, Pct: 93})
	src.add("o-mix", "b-mix", 2, Report{T: e - 2*hourMs + 1, Pct: 50})
	// A reading just below full that a float32 rounds to 90.
	run("o-f32", "b-f32", 1, e-5*hourMs, e, 95)
	src.add("o-f32", "b-f32", 1, Report{T: e - 2*hourMs + 7, Pct: 89.999999999})
	// One device under two outlets (moved): InfluxDB takes it as one.
	run("o-m1", "b-moved", 1, e-5*hourMs, e-4*hourMs, 30)
	run("o-m2", "b-moved", 1, e-4*hourMs, e, 91)
	// Full for 2.5 days: its last report below full is in a compact day.
	run("o-days", "b-days", 1, e-3*dayMs, e-60*hourMs, 40)
	run("o-days", "b-days", 1, e-60*hourMs, e, 95)
	// Stopped reporting two days ago, full.
	run("o-stop", "b-stop", 1, e-3*dayMs, e-2*dayMs, 92)
	// Below until the end: becomes full after the load.
	run("o-new", "b-new", 1, e-dayMs, e, 60)
	// Full until the end: emptied and full again after the load.
	run("o-again", "b-again", 1, e-2*hourMs, e, 99)

	reg := prometheus.NewRegistry()
	tr := NewTracker(TrackerConfig{Source: src, Interval: time.Hour, Options: Options{FullPct: full, ProfileDays: 1},
		Now: func() time.Time { return end }, Registerer: reg})
	a := &asker{src: src}
	ctx := context.Background()
	check := func(what string, now time.Time, lookback time.Duration) []string {
		t.Helper()
		bins := src.fullBins(full, now)
		got, err := tr.FullSince(ctx, bins, full, now, lookback, a.ask)
		if err != nil {
			t.Fatal(err)
		}
		sameSince(t, what, got, src.refFullSince(devicesOf(bins), full, now, lookback))
		return a.take()
	}
	// Not loaded yet: all asked of InfluxDB, and right.
	if asked := check("before the load", end, 10*24*time.Hour); len(asked) == 0 {
		t.Fatal("before the load, nothing was asked of InfluxDB")
	}
	ready(t, tr)
	if v := tr.x.views(map[string]bool{"o-days": true}); len(v) != 1 || v[0].oldN == 0 || v[0].lastBelow(full).i >= v[0].oldN {
		t.Fatal("b-days: its last report below full is not in a compact day")
	}
	for _, lb := range []time.Duration{time.Hour, 4 * time.Hour, 24 * time.Hour, 4 * 24 * time.Hour, 10 * 24 * time.Hour} {
		for _, back := range []time.Duration{0, 30 * time.Minute, 3 * time.Hour} {
			now := end.Add(-back - 1)
			asked := check(fmt.Sprintf("lookback %s, now end−%s", lb, back), now, lb)
			// Within memory, only the edges are asked.
			if lb <= 24*time.Hour {
				for _, d := range asked {
					if d != "b-mix" && d != "b-moved" {
						t.Errorf("lookback %s, now end−%s: %s was asked of InfluxDB", lb, back, d)
					}
				}
			}
		}
	}
	// Asked twice, the bin full for longer than memory is asked once.
	check("long, first", end, 10*24*time.Hour)
	if asked := check("long, again", end, 10*24*time.Hour); slices.Contains(asked, "b-long") {
		t.Errorf("b-long was asked again: %v", asked)
	}
	if got, want := testutil.ToFloat64(tr.fullAnswers.WithLabelValues("kept")), 1.0; got < want {
		t.Errorf("kept answers: %v, want at least %v", got, want)
	}
	// What the memory must not tell: the two outlets' device, the
	// mixed-boot run.
	asked := check("edges", end, 24*time.Hour)
	for _, d := range []string{"b-moved", "b-mix"} {
		if !slices.Contains(asked, d) {
			t.Errorf("%s was answered from memory (asked: %v)", d, asked)
		}
	}
	// After the last read: b-new becomes full, b-again is emptied and full
	// again, b-long reports once more; the states show it before the
	// tracker polls. The tail is read, nothing asked of InfluxDB but the
	// edges'.
	src.add("o-new", "b-new", 1, Report{T: e + 1000, Pct: 91}, Report{T: e + step, Pct: 92})
	src.add("o-again", "b-again", 1, Report{T: e + 1000, Pct: 20}, Report{T: e + step, Pct: 94})
	src.add("o-long", "b-long", 1, Report{T: e + step, Pct: 96})
	later := time.UnixMilli(e + 2*step)
	asked = check("after the last read", later, 10*24*time.Hour)
	for _, d := range []string{"b-new", "b-again", "b-long"} {
		if slices.Contains(asked, d) {
			t.Errorf("%s was asked of InfluxDB, not read from the tail (asked: %v)", d, asked)
		}
	}
	if got := testutil.ToFloat64(tr.fullAnswers.WithLabelValues("tail")); got < 2 { // b-new, b-again; b-long, still full, is kept
		t.Errorf("tail answers: %v, want at least 2", got)
	}
	// The long bin emptied after memory: its kept answer goes.
	src.add("o-long", "b-long", 1, Report{T: e + 2*step, Pct: 5}, Report{T: e + 3*step, Pct: 91})
	check("long emptied", time.UnixMilli(e+4*step), 10*24*time.Hour)
	if testutil.ToFloat64(tr.fullAnswers.WithLabelValues("memory")) == 0 {
		t.Error("nothing was answered from memory")
	}
}

// TestPct32KeepsTheSideOfFull: a reading's float32 is on the same side of
// full_pct as the reading.
func TestPct32KeepsTheSideOfFull(t *testing.T) {
	for _, full := range []float64{90, 85.3, 0.1} {
		for _, v := range []float64{full, full - 1e-9, full + 1e-9, full - 1e-6, 89.999999999, 90.0000001, 85.29999999, 85.3000001} {
			if p := pct32(v, full); (float64(p) >= full) != (v >= full) {
				t.Errorf("full %g: %v kept as %v", full, v, p)
			}
		}
	}
}

// BenchmarkFullSince: one alerts request's "full since" for 2,000 full bins
// (9 days of 5-minute reports each, the days before the last 2 compact):
// half full for an hour (answered from memory), a quarter full for 4 days
// (from memory, the run begins in a compact day), a quarter full for
// longer than memory (kept answers, after the first call) — the worst
// case, every report of those bins scanned.
func BenchmarkFullSince(b *testing.B) {
	const bins, full = 2000, 90.0
	tr := NewTracker(TrackerConfig{Source: newMemSource(), Options: Options{FullPct: full}})
	keep := tr.cfg.Options.Keep().Milliseconds()
	end := day0 + 10*dayMs
	var in []binReports
	var asked []FullBin
	for i := range bins {
		k := binKey{fmt.Sprintf("o-%04d", i/2), fmt.Sprintf("b-%05d", i)}
		rs := make([]Report, 0, keep/step)
		for ts := end - keep; ts < end; ts += step {
			pct := 50.0
			if i%2 == 0 && ts >= end-hourMs || i%4 == 1 || i%4 == 3 && ts >= end-4*dayMs {
				pct = 95
			}
			rs = append(rs, Report{T: ts, Pct: pct})
		}
		in = append(in, binReports{k, rs})
		{
			asked = append(asked, FullBin{Outlet: k.outlet, Device: k.device, Last: time.UnixMilli(end - step)})
		}
	}
	tr.x.merge(in)
	tr.x.compact(DayStart(end) - HotDays*dayMs)
	tr.ready, tr.coveredFrom = true, end-keep
	ask := func(_ context.Context, devices []string, _ float64, _ time.Time, _ time.Duration) (map[string]time.Time, error) {
		out := map[string]time.Time{}
		for _, d := range devices {
			out[d] = time.UnixMilli(end - 20*dayMs)
		}
		return out, nil
	}
	now := time.UnixMilli(end)
	ctx := context.Background()
	if _, err := tr.FullSince(ctx, asked, full, now, 30*24*time.Hour, ask); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, err := tr.FullSince(ctx, asked, full, now, 30*24*time.Hour, ask)
		if err != nil || len(got) != len(asked) {
			b.Fatalf("%d answers for %d bins: %v", len(got), len(asked), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(asked)), "ns/bin")
}
