package fill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/greenpost/greenpost/internal/testenv"
)

// memSource is a Source over reports in memory, which a test may add to.
type memSource struct {
	mu    sync.Mutex
	bins  map[binKey][]Report
	boots map[binKey][]int64
	reads int
	fail  error
}

func newMemSource() *memSource {
	return &memSource{bins: map[binKey][]Report{}, boots: map[binKey][]int64{}}
}

func (m *memSource) add(outlet, device string, boot int64, rs ...Report) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := binKey{outlet, device}
	m.bins[k] = append(m.bins[k], rs...)
	for range rs {
		m.boots[k] = append(m.boots[k], boot)
	}
}

func (m *memSource) BinReports(ctx context.Context, from, to time.Time, outlets []string, fn func(outlet, device string, boot, t int64, pct float64) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.fail != nil {
		return m.fail
	}
	keys := make([]binKey, 0, len(m.bins))
	for k := range m.bins {
		keys = append(keys, k)
	}
	// Any order: the tracker must not rely on it.
	slices.SortFunc(keys, func(a, b binKey) int { return -cmp.Compare(a.device, b.device) })
	for _, k := range keys {
		if outlets != nil && !slices.Contains(outlets, k.outlet) {
			continue
		}
		for i, r := range m.bins[k] {
			if r.T >= from.UnixMilli() && r.T < to.UnixMilli() {
				if err := fn(k.outlet, k.device, m.boots[k][i], r.T, r.Pct); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func TestIndexMerge(t *testing.T) {
	x := newIndex(DefaultOptions())
	k := binKey{"o-1", "b-1"}
	t0 := day0 + 3*dayMs
	if n := x.merge([]binReports{{k, []Report{{t0, 10}, {t0 + step, 11}, {t0 + 2*step, 12}}}}); n != 3 {
		t.Fatalf("first merge: %d changed", n)
	}
	// The same reports again change nothing; one changed value, one new
	// report between, and one before the base do.
	again := []binReports{{k, []Report{{t0, 10}, {t0 + step, 11}, {t0 + 2*step, 12}}}}
	if n := x.merge(again); n != 0 {
		t.Fatalf("a repeated read changed %d", n)
	}
	// Not even rebuilt: the tracker reads most reports again.
	part := []binReports{{k, []Report{{t0 + step, 11}, {t0 + 2*step, 12}}}}
	if a := testing.AllocsPerRun(20, func() { x.merge(again); x.merge(part) }); a != 0 {
		t.Fatalf("merging reports the bin has allocated %v times", a)
	}
	// One of them with another reading.
	if n := x.merge([]binReports{{k, []Report{{t0 + step, 11}, {t0 + 2*step, 12.5}}}}); n != 1 {
		t.Fatalf("one reading changed: %d changed", n)
	}
	x.merge([]binReports{{k, []Report{{t0 + 2*step, 12}}}}) // as it was
	n := x.merge([]binReports{{k, []Report{{t0 - step, 9}, {t0 + step, 11.5}, {t0 + step + 1000, 11.7}}}})
	if n != 3 {
		t.Fatalf("late reports: %d changed, want 3", n)
	}
	vs := x.views(nil)
	if len(vs) != 1 {
		t.Fatalf("%d bins", len(vs))
	}
	got := vs[0].reports(nil, 0, t0+dayMs, 0)
	want := []Report{{t0 - step, 9}, {t0, 10}, {t0 + step, 11.5}, {t0 + step + 1000, float64(float32(11.7))}, {t0 + 2*step, 12}}
	if !slices.Equal(got, want) {
		t.Fatalf("reports\n%v\nwant\n%v", got, want)
	}
	// Two reports at one time in one read (two boots): the last wins.
	x.merge([]binReports{{k, []Report{{t0 + 3*step, 40}, {t0 + 3*step, 41}}}})
	if got := x.views(nil)[0].reports(nil, t0+3*step, t0+4*step, 0); !slices.Equal(got, []Report{{t0 + 3*step, 41}}) {
		t.Fatalf("same time twice: %v", got)
	}
	// A view taken before a merge keeps what it saw.
	old := x.views(nil)[0]
	x.merge([]binReports{{k, []Report{{t0, 77}}}})
	if r := old.at(old.search(t0)); r.Pct != 10 {
		t.Fatalf("a merge changed a reader's view: %v", r)
	}
	x.trim(t0 + step)
	if got := x.views(nil)[0].reports(nil, 0, t0+dayMs, 0); got[0].T != t0+step || len(got) != 4 {
		t.Fatalf("after trim: %v", got)
	}
	x.trim(t0 + dayMs)
	if b, r, _ := x.stats(); b != 0 || r != 0 {
		t.Fatalf("trim left %d bins, %d reports", b, r)
	}
}

// city adds n outlets with two synthetic bins each over days days.
func (m *memSource) city(n, days int) {
	for i := range n {
		for j, b := range []synthBin{
			{rate: busyDay(1 + float64(i%4)/2), emptyHour: (6 + i) % 24, sigma: 0.8, glitchEvery: 211, seed: uint64(i)},
			{rate: busyDay(0.5 + float64(i%3)), emptyHour: -1, sigma: 0.6, glitchEvery: 389, seed: uint64(100 + i)},
		} {
			rs, _ := b.reports(days)
			m.add(outletName(i), outletName(i)+"-b"+string(rune('1'+j)), 1, rs...)
		}
	}
}

func outletName(i int) string { return "o-" + string(rune('a'+i)) }

// until waits for cond with testenv.Eventually.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() string {
		if cond() {
			return ""
		}
		return "waiting for " + what
	})
}

func ready(t *testing.T, tr *Tracker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	until(t, "the tracker loaded", tr.Ready)
}

func TestMemoryAndRawPathsAgree(t *testing.T) {
	src := newMemSource()
	src.city(6, 12)
	end := time.UnixMilli(day0 + 12*dayMs)
	mem := NewTracker(TrackerConfig{Source: src, Interval: time.Hour, Now: func() time.Time { return end }})
	ready(t, mem)
	for _, v := range mem.x.views(nil) {
		if v.oldN == 0 {
			t.Fatalf("%s: no compact day in memory: the days before the last %d are compact", v.s.key.device, HotDays)
		}
	}
	// A tracker whose clock is a month on: every question of day 11 is
	// older than its memory, so it reads what each needs.
	raw := NewTracker(TrackerConfig{Source: src, Interval: time.Hour, Now: func() time.Time { return end.Add(30 * 24 * time.Hour) }})
	ctx := context.Background()
	lists := 0
	for h := range 24 {
		at := end.Add(-24*time.Hour + time.Duration(h)*time.Hour + 7*time.Minute)
		for _, outlets := range [][]string{nil, {outletName(1), outletName(4)}} {
			a, err := mem.Judge(ctx, at, 24*time.Hour, outlets)
			if err != nil {
				t.Fatal(err)
			}
			before := src.reads
			b, err := raw.Judge(ctx, at, 24*time.Hour, outlets)
			if err != nil {
				t.Fatal(err)
			}
			if src.reads != before+1 {
				t.Fatalf("the raw path did not read")
			}
			if !slices.Equal(a, b) {
				t.Fatalf("at %s, outlets %v: memory and raw differ:\n%+v\n%+v", at, outlets, a, b)
			}
			lists += len(a)
			for _, bin := range a {
				if outlets != nil && !slices.Contains(outlets, bin.Outlet) {
					t.Fatalf("bin of another outlet: %+v", bin)
				}
			}
		}
	}
	if lists == 0 {
		t.Fatal("no bin was ever listed: the comparison compared nothing")
	}
}

func TestTrackerFollowsNewAndLateReports(t *testing.T) {
	src := newMemSource()
	src.city(2, 9)
	var mu sync.Mutex
	now := time.UnixMilli(day0 + 9*dayMs)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg := prometheus.NewRegistry()
	tr := NewTracker(TrackerConfig{Source: src, Interval: 5 * time.Millisecond, Recheck: time.Hour, Now: clock, Registerer: reg})
	at := time.UnixMilli(day0 + 9*dayMs)
	if _, err := tr.Judge(context.Background(), at, time.Hour, nil); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before the load: %v, want ErrNotReady", err)
	}
	ready(t, tr)
	// A new report says the first bin is full.
	k := binKey{outletName(0), outletName(0) + "-b1"}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	src.add(k.outlet, k.device, 1, Report{T: at.UnixMilli() + 30_000, Pct: 97})
	state := func() State {
		bins, err := tr.Judge(context.Background(), at.Add(time.Minute), time.Hour, []string{k.outlet})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bins {
			if b.Device == k.device {
				return b.State
			}
		}
		return Quiet
	}
	until(t, "the new report was read", func() bool { return state() == Full })
	// A late report changes a day's curve once it has been read: the
	// profile learned before must not be kept.
	day := DayStart(at.UnixMilli())
	view := tr.x.views(map[string]bool{k.outlet: true})[0]
	var buf []Report
	before := *view.profile(day, tr.cfg.Options, &buf)
	// The reading at 10:00 two days ago, resent 3 points higher (an
	// InfluxDB point written again with another value replaces the old).
	v0 := tr.x.views(map[string]bool{k.outlet: true})[0]
	late := v0.at(v0.search(day - 2*dayMs + 10*hourMs))
	late.Pct += 3
	src.add(k.outlet, k.device, 1, late)
	// Two days old: beyond the recheck's hour, read once the roll-up's
	// late-data check tells of its hour (and the hours around it; one
	// beyond memory, one within the recheck: neither is read).
	h := time.UnixMilli(late.T).Truncate(time.Hour)
	tr.Late([]time.Time{h, h.Add(time.Hour), h.Add(-30 * 24 * time.Hour), now})
	until(t, "the late report was read", func() bool {
		v := tr.x.views(map[string]bool{k.outlet: true})[0]
		i := v.search(late.T)
		return i < v.len() && v.at(i) == Report{late.T, float64(float32(late.Pct))}
	})
	view = tr.x.views(map[string]bool{k.outlet: true})[0]
	after := *view.profile(day, tr.cfg.Options, &buf)
	fresh := newIndex(tr.cfg.Options)
	all := view.reports(nil, 0, day+dayMs, 0)
	fresh.merge([]binReports{{k, all}})
	if want := *fresh.views(nil)[0].profile(day, tr.cfg.Options, &buf); after != want || after == before {
		t.Fatalf("the late report did not renew the curve:\nbefore %+v\nafter  %+v\nwant   %+v", before, after, want)
	}
	if n := testutil.ToFloat64(tr.reads.WithLabelValues("load", "ok")); n < 1 {
		t.Errorf("load reads counted: %v", n)
	}
	// One read for the two consecutive hours; none for the others.
	if n := testutil.ToFloat64(tr.reads.WithLabelValues("late", "ok")); n != 1 {
		t.Errorf("late reads counted: %v, want 1", n)
	}
	if n, _ := testutil.GatherAndCount(reg, "greenpost_fill_bins"); n != 1 {
		t.Errorf("greenpost_fill_bins registered %d times", n)
	}
}

func TestTrackerRetriesAFailedLoad(t *testing.T) {
	src := newMemSource()
	src.city(1, 9)
	src.fail = errors.New("influxdb is down")
	tr := NewTracker(TrackerConfig{Source: src, Interval: 5 * time.Millisecond, Now: func() time.Time { return time.UnixMilli(day0 + 9*dayMs) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	until(t, "a failed read", func() bool { src.mu.Lock(); defer src.mu.Unlock(); return src.reads >= 2 })
	if tr.Ready() {
		t.Fatal("ready after failed reads")
	}
	src.mu.Lock()
	src.fail = nil
	src.mu.Unlock()
	until(t, "ready after InfluxDB came back", tr.Ready)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkJudgeCity judges a city of 2,000 bins (10 days of 5-minute
// reports each) from memory: the CPU of one whole-city collection list.
func BenchmarkJudgeCity(b *testing.B) {
	x := newIndex(DefaultOptions())
	for i := range 1000 {
		for j, sb := range []synthBin{
			{rate: busyDay(1 + float64(i%4)/2), emptyHour: (6 + i) % 24, sigma: 0.8, glitchEvery: 211, seed: uint64(i)},
			{rate: busyDay(0.5 + float64(i%3)), emptyHour: (14 + i) % 24, sigma: 0.6, glitchEvery: 389, seed: uint64(5000 + i)},
		} {
			rs, _ := sb.reports(10)
			x.merge([]binReports{{binKey{fmt.Sprintf("o-%04d", i), fmt.Sprintf("b-%04d-%d", i, j+1)}, rs}})
		}
	}
	at := day0 + 9*dayMs + 15*hourMs
	vs := x.views(nil)
	x.judge(vs, at, 24*time.Hour) // learn the day's curves, as the tracker does when the day begins
	// kept: every bin's fit from the request before (no new report since);
	// fitted: every bin's cycle fitted again, as when each has a new report.
	for _, keep := range []bool{true, false} {
		b.Run(map[bool]string{true: "kept", false: "fitted"}[keep], func(b *testing.B) {
			b.ReportAllocs()
			listed := 0
			for b.Loop() {
				if !keep {
					for _, v := range vs {
						v.s.fit.Store(nil)
					}
				}
				listed = len(x.judge(x.views(nil), at, 24*time.Hour))
			}
			b.ReportMetric(float64(listed), "listed")
		})
	}
}

// BenchmarkMergeRecheck is the tracker's recheck on a city of bins: 9
// hours read again over 9 days in memory, nothing new in them.
func BenchmarkMergeRecheck(b *testing.B) {
	const bins = 2000
	x := newIndex(DefaultOptions())
	var again []binReports
	for i := range bins {
		k := binKey{fmt.Sprintf("o-%04d", i/2), fmt.Sprintf("b-%05d", i)}
		var rs []Report
		for t := day0; t < day0+9*dayMs; t += step {
			rs = append(rs, Report{t + int64(i), float64((t/step + int64(i)) % 100)})
		}
		x.merge([]binReports{{k, rs}})
		again = append(again, binReports{k, rs[len(rs)-9*12:]})
	}
	b.ReportAllocs()
	for b.Loop() {
		if n := x.merge(again); n != 0 {
			b.Fatalf("%d changed", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/bins, "µs/bin")
}

// TestJudgeKeepsFitsExactly: a city judged from memory again and again —
// the same time, a later one within the same reports, a later report,
// late reports, a new day — gives exactly what predict gives on the
// reports decoded afresh; a bin's fit is kept while its reports and
// profile stay, and made again when they change.
func TestJudgeKeepsFitsExactly(t *testing.T) {
	o := DefaultOptions()
	x := newIndex(o)
	all := map[binKey][]Report{}
	for i := range 40 {
		for j, sb := range []synthBin{
			{rate: busyDay(1 + float64(i%4)/2), emptyHour: (6 + i) % 24, sigma: 0.8, glitchEvery: 37 + i, seed: uint64(i)},
			{rate: busyDay(0.5 + float64(i%3)), emptyHour: -1, sigma: 0.6, glitchEvery: 0, seed: uint64(500 + i)},
		} {
			rs, _ := sb.reports(10)
			k := binKey{fmt.Sprintf("o-%02d", i), fmt.Sprintf("b-%02d-%d", i, j)}
			all[k] = rs
			// The newest day is merged step by step below.
			x.merge([]binReports{{k, rs[:9*24*12]}})
		}
	}
	check := func(at int64, ahead time.Duration) {
		t.Helper()
		vs := x.views(nil)
		got := x.judge(vs, at, ahead)
		var want []Bin
		day := DayStart(at)
		for i := range vs {
			v := &vs[i]
			var buf []Report
			p := v.profile(day, x.o, &buf)
			recent := v.reports(nil, at-o.Cycle.Milliseconds(), at+1, 1)
			if pr := predict(p, recent, at, ahead, x.o, nil); pr.State != Quiet {
				want = append(want, Bin{Outlet: v.s.key.outlet, Device: v.s.key.device, Prediction: pr})
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("at %v ahead %v: judged\n%+v\nwant\n%+v", time.UnixMilli(at).UTC(), ahead, got, want)
		}
	}
	fits := func() map[binKey]*fitMemo {
		m := map[binKey]*fitMemo{}
		for _, v := range x.views(nil) {
			m[v.s.key] = v.s.fit.Load()
		}
		return m
	}
	rng := rand.New(rand.NewPCG(3, 9))
	at := day0 + 9*dayMs - 1
	for n := 0; n < 24*12; n++ {
		// A report of every bin, then questions at times between it and
		// the next one.
		for k, rs := range all {
			x.merge([]binReports{{k, rs[9*24*12+n : 9*24*12+n+1]}})
		}
		at = day0 + 9*dayMs + int64(n)*step
		before := fits()
		for range 3 {
			check(at, []time.Duration{2 * time.Hour, 24 * time.Hour}[rng.IntN(2)])
			at += rng.Int64N(step / 4)
		}
		after := fits()
		for k, f := range after {
			if f == nil || f == before[k] {
				t.Fatalf("report %d: bin %v not fitted again after a new report", n, k)
			}
		}
		check(at, 2*time.Hour)
		if again := fits(); !maps.Equal(again, after) {
			t.Fatalf("report %d: fits made again without new reports", n)
		}
		if n%50 == 7 {
			// Late reports of one bin, older than the cycle's start: its
			// fit is made again (a new generation), the others kept.
			k := binKey{"o-03", "b-03-0"}
			x.merge([]binReports{{k, []Report{{all[k][5+n].T + 1000, 50}}}})
			check(at, 2*time.Hour)
			if f := fits(); f[k] == after[k] || f[binKey{"o-04", "b-04-0"}] != after[binKey{"o-04", "b-04-0"}] {
				t.Fatalf("report %d: after a late report, fits changed wrongly", n)
			}
			// Another reading at a time the bin has (a later boot's): the
			// same reports by position, another generation.
			k = binKey{"o-05", "b-05-1"}
			r := all[k][9*24*12+n-2]
			x.merge([]binReports{{k, []Report{{r.T, r.Pct + 3}}}})
			check(at, 2*time.Hour)
			if f := fits(); f[k] == after[k] {
				t.Fatalf("report %d: a changed reading kept the old fit", n)
			}
		}
	}
	// Past the cycle's reports: stale, then quiet.
	check(at+o.Staleness.Milliseconds()+step, 2*time.Hour)
	check(at+o.Cycle.Milliseconds()+dayMs, 2*time.Hour)
	check(at+o.Cycle.Milliseconds()+10*dayMs, 2*time.Hour)
}
