package fill

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// randomReports are n reports from t0 on, on a 5-minute grid with up to
// 6 s of jitter (as firmware-sim's) and gaps that shift the grid, readings
// in tenths or (odd) any float.
func randomReports(r *rand.Rand, t0 int64, n int, odd bool) []Report {
	rs := make([]Report, 0, n)
	grid, level := t0, r.Float64()*50
	for range n {
		grid += step
		if r.IntN(50) == 0 {
			grid += r.Int64N(6 * hourMs) // an outage
		}
		t := grid + r.Int64N(12_000) - 6_000
		if len(rs) > 0 && t <= rs[len(rs)-1].T {
			t = rs[len(rs)-1].T + 1
		}
		level += r.NormFloat64() * 2
		if r.IntN(100) == 0 {
			level = r.Float64() * 5 // emptied
		}
		level = math.Max(0, math.Min(100, level))
		p := math.Round(level*10) / 10
		if odd && r.IntN(3) == 0 {
			p = level
		}
		rs = append(rs, Report{T: t, Pct: p})
	}
	return rs
}

// sameReports fails unless the two views hold the same reports, and search
// finds the same index in both for times around each report.
func sameReports(t *testing.T, what string, a, b view) {
	t.Helper()
	if a.len() != b.len() {
		t.Fatalf("%s: %d reports, want %d", what, a.len(), b.len())
	}
	for i := range a.len() {
		if a.at(i) != b.at(i) {
			t.Fatalf("%s: report %d is %v, want %v", what, i, a.at(i), b.at(i))
		}
		for _, d := range []int64{-1, 0, 1} {
			if x, y := a.search(b.t(i)+d), b.search(b.t(i)+d); x != y {
				t.Fatalf("%s: search(%d) = %d, want %d", what, b.t(i)+d, x, y)
			}
		}
	}
	if got := a.reports(nil, math.MinInt64, math.MaxInt64, 0); !slices.Equal(got, b.reports(nil, math.MinInt64, math.MaxInt64, 0)) {
		t.Fatalf("%s: reports differ", what)
	}
}

// TestCompactChangesNoReport runs the same merges, compactions and trims
// on two indexes, one of which never compacts, and compares every bin's
// reports after each step: new reports, a repeated read (which must not
// thaw a compact day), late and changed reports in compact days, two boots
// at one time, and trims inside a compact day and past all of them.
func TestCompactChangesNoReport(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 14))
	o := DefaultOptions()
	comp, plain := newIndex(o), newIndex(o)
	keys := []binKey{{"o-1", "b-1"}, {"o-1", "b-2"}, {"o-2", "b-3"}}
	reads := map[binKey][]Report{}
	for i, k := range keys {
		reads[k] = randomReports(r, day0+int64(i)*hourMs, 10*288, i == 2)
	}
	both := func(what string, f func(x *index)) {
		t.Helper()
		f(comp)
		f(plain)
		a, b := comp.views(nil), plain.views(nil)
		if len(a) != len(b) {
			t.Fatalf("%s: %d bins, want %d", what, len(a), len(b))
		}
		for i := range a {
			sameReports(t, what+" "+a[i].s.key.device, a[i], b[i])
		}
	}
	// Loaded a day at a time, compacting after each, as the tracker does.
	split := day0 + 8*dayMs
	for d := range int64(11) {
		var in []binReports
		for _, k := range keys {
			var rs []Report
			for _, x := range reads[k] {
				if x.T >= day0+d*dayMs && x.T < day0+(d+1)*dayMs {
					rs = append(rs, x)
				}
			}
			if len(rs) > 0 {
				in = append(in, binReports{k, rs})
			}
		}
		comp.merge(in)
		plain.merge(in)
		comp.compact(split)
	}
	both("loaded", func(*index) {})
	for _, v := range comp.views(nil) {
		if v.oldN == 0 || len(v.old) < 7 {
			t.Fatalf("%s: %d compact reports in %d chunks: nothing was compacted", v.s.key.device, v.oldN, len(v.old))
		}
	}

	// A repeated read of compact days changes nothing and leaves them
	// compact.
	var again []binReports
	for _, k := range keys {
		again = append(again, binReports{k, reads[k][500:900]})
	}
	both("read again", func(x *index) {
		if n := x.merge(again); n != 0 {
			t.Fatalf("a repeated read changed %d reports", n)
		}
	})
	for _, v := range comp.views(nil) {
		if len(v.old) < 7 {
			t.Fatalf("a repeated read thawed %s", v.s.key.device)
		}
	}

	// Late, changed and two-boot reports in a compact day.
	k := keys[1]
	late := []Report{{T: reads[k][100].T + 1, Pct: 33.3}, {T: reads[k][200].T, Pct: 99.9}, {T: reads[k][300].T, Pct: 1}, {T: reads[k][300].T, Pct: 95}}
	changed := map[*index]int{}
	both("late", func(x *index) { changed[x] = x.merge([]binReports{{k, late}}) })
	if changed[comp] != changed[plain] || changed[comp] < 3 {
		t.Fatalf("late reports: %d changed, %d without compact days", changed[comp], changed[plain])
	}
	if v := comp.views(nil)[1]; len(v.s.mixed) != 1 || v.s.mixed[0] != reads[k][300].T {
		t.Fatalf("two boots at one time in a compact day: mixed %v", v.s.mixed)
	}
	both("compacted again", func(x *index) {
		if x == comp {
			x.compact(split + dayMs)
		}
	})

	// Trims: inside a compact day, at a day's start, past every compact day.
	for _, at := range []int64{day0 + dayMs + 7*hourMs + 123, day0 + 3*dayMs, day0 + 9*dayMs + 5*hourMs} {
		both("trim", func(x *index) { x.trim(at) })
	}
	both("trim all", func(x *index) { x.trim(day0 + 30*dayMs) })
	if b, n, bytes := comp.stats(); b != 0 || n != 0 || bytes != 0 {
		t.Fatalf("after trimming all: %d bins, %d reports, %d bytes", b, n, bytes)
	}
}

// TestCompactDaysAreSmall: readings in tenths on a jittered 5-minute grid
// take under half of the 8 bytes of a hot report; any other float still
// round trips, in less than 8.
func TestCompactDaysAreSmall(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, odd := range []bool{false, true} {
		x := newIndex(DefaultOptions())
		k := binKey{"o", "b"}
		rs := randomReports(r, day0, 9*288, odd)
		x.merge([]binReports{{k, rs}})
		x.compact(day0 + 30*dayMs)
		_, n, bytes := x.stats()
		v := x.views(nil)[0]
		if v.oldN != len(rs) || len(v.off) != 0 {
			t.Fatalf("odd=%v: %d of %d reports compact", odd, v.oldN, len(rs))
		}
		per := float64(bytes) / float64(n)
		if !odd && per > 4 {
			t.Errorf("readings in tenths: %.2f bytes a report, want under 4", per)
		}
		if per >= 8 {
			t.Errorf("odd=%v: %.2f bytes a report, no smaller than hot", odd, per)
		}
		for i, want := range rs {
			if got := v.at(i); got.T != want.T || float32(got.Pct) != pct32(want.Pct, DefaultOptions().FullPct) {
				t.Fatalf("odd=%v: report %d is %v, want %v", odd, i, got, want)
			}
		}
		t.Logf("odd=%v: %.2f bytes a report", odd, per)
	}
}

// FuzzChunk: any reports of a day decode as they were encoded.
func FuzzChunk(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0x7f, 0x7f, 0, 0, 0x80, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ts []int64
		var ps []float32
		tm := day0
		for len(data) >= 6 {
			tm += int64(data[0])<<8 | int64(data[1]) + 1
			bits := uint32(data[2]) | uint32(data[3])<<8 | uint32(data[4])<<16 | uint32(data[5])<<24
			p := math.Float32frombits(bits)
			if data[0]&1 == 0 {
				p = float32(float64(int(bits%2001)-1000) / 10)
			}
			if p != p { // NaN: the collector rejects it
				p = 0
			}
			ts, ps = append(ts, tm), append(ps, p)
			data = data[6:]
		}
		if len(ts) == 0 {
			return
		}
		c := encodeChunk(ts, ps)
		gt, gp := c.decode(nil, nil)
		if !slices.Equal(gt, ts) || len(gp) != len(ps) {
			t.Fatalf("times %v, want %v", gt, ts)
		}
		for i := range ps {
			if math.Float32bits(gp[i]) != math.Float32bits(ps[i]) {
				t.Fatalf("reading %d: %v, want %v", i, gp[i], ps[i])
			}
		}
		if c.last != ts[len(ts)-1] || c.lastPct != ps[len(ps)-1] {
			t.Fatalf("last %d %v", c.last, c.lastPct)
		}
	})
}

// TestCompactBesideReaders: readers take views and read reports while a
// compaction swaps bins in batches (the race detector watches); what they
// read is the same before, during and after.
func TestCompactBesideReaders(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := newIndex(DefaultOptions())
	var in []binReports
	for i := range 600 {
		in = append(in, binReports{binKey{outletName(i % 20), string(rune('a' + i))}, randomReports(r, day0, 5*288, false)})
	}
	x.merge(in)
	want := map[binKey][]Report{}
	for _, v := range x.views(nil) {
		want[v.s.key] = v.reports(nil, math.MinInt64, math.MaxInt64, 0)
	}
	if len(want) != len(in) {
		t.Fatalf("%d bins, want %d", len(want), len(in))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, v := range x.views(nil) {
					if got := v.reports(nil, math.MinInt64, math.MaxInt64, 0); !slices.Equal(got, want[v.s.key]) {
						errs <- v.s.key.device
						return
					}
				}
			}
		}()
	}
	x.compact(day0 + 3*dayMs)
	close(stop)
	wg.Wait()
	close(errs)
	for d := range errs {
		t.Fatalf("a reader saw other reports of %q during compaction", d)
	}
	for _, v := range x.views(nil) {
		if v.oldN == 0 || !slices.Equal(v.reports(nil, math.MinInt64, math.MaxInt64, 0), want[v.s.key]) {
			t.Fatalf("%s after compaction: %d compact reports", v.s.key.device, v.oldN)
		}
	}
}

// BenchmarkCompactCityDay: the day's compaction at 10,000 outlets (20,000
// bins, a day of 5-minute reports each).
func BenchmarkCompactCityDay(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var in []binReports
	for i := range 20000 {
		in = append(in, binReports{binKey{"o", string(rune(i + 100))}, randomReports(r, day0, 288, false)})
	}
	for b.Loop() {
		b.StopTimer()
		x := newIndex(DefaultOptions())
		x.merge(in)
		b.StartTimer()
		x.compact(day0 + 30*dayMs)
	}
}
