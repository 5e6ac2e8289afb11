package metrics

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// appendRaw writes a raw set as line protocol. Points are written as the
// generator made them, fields missing included (a writer other than the
// collector may do that); a point without any field cannot be written and
// is dropped from rs, so rs stays exactly what InfluxDB holds.
func appendRaw(dst []byte, rs rawSet) []byte {
	for o, r := range rs {
		for _, s := range r.counters {
			kept := s.pts[:0]
			for _, p := range s.pts {
				if p.has == 0 && !p.hasSeq {
					continue
				}
				kept = append(kept, p)
				dst = fmt.Appendf(dst, "counter,boot=%d,device=%s,outlet=%s ", s.boot, s.device, o)
				sep := ""
				for f := 0; f < numFields; f++ {
					if p.has&(1<<f) != 0 {
						dst = fmt.Appendf(dst, "%s%s=%di", sep, fieldNames[f], p.v[f])
						sep = ","
					}
				}
				if p.hasSeq {
					dst = fmt.Appendf(dst, "%sseq=%di", sep, p.seq)
				}
				dst = fmt.Appendf(dst, " %d\n", p.t)
			}
			s.pts = kept
		}
		for _, b := range r.bins {
			kept := b.reps[:0]
			for _, rep := range b.reps {
				if !rep.hasFill && !rep.hasSeq {
					continue
				}
				kept = append(kept, rep)
				dst = fmt.Appendf(dst, "bin,boot=%d,device=%s,outlet=%s ", rep.boot, b.device, o)
				sep := ""
				if rep.hasFill {
					dst = append(dst, "fill_pct="...)
					dst = strconv.AppendFloat(dst, rep.fill, 'f', -1, 64)
					sep = ","
				}
				if rep.hasSeq {
					dst = fmt.Appendf(dst, "%sseq=%di", sep, rep.seq)
				}
				dst = fmt.Appendf(dst, " %d\n", rep.t)
			}
			b.reps = kept
		}
	}
	return dst
}

// mergeInto adds the points of src to dst (both normalized after).
func mergeInto(dst, src rawSet) {
	mergeRaw(dst, src)
	dst.normalize()
}

// TestRollupEqualsRawOnInfluxDB is the property test on the real InfluxDB
// 1.8.10: on random data, for random windows (aligned or not, inside the
// partial hour, before the roll-up's range), the roll-up engine answers
// exactly what the raw engine and the literal definition answer, in both
// query languages. Then late data lands in rolled hours, and a restarted
// roll-up loads what it persisted.
func TestRollupEqualsRawOnInfluxDB(t *testing.T) {
	in := testenv.StartInflux(t)
	st := openStore(t, in)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(42, 1))

	start := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	now := time.Unix(0, start+3*dayNS+13*hourNS+int64(47*time.Minute+13*time.Second)).UTC()
	truth := rawSet{}
	for o := 0; o < 5; o++ {
		truth[fmt.Sprintf("p-%d", o)] = randomOutlet(rng, start, now.UnixNano()+int64(5*time.Minute))
	}
	// One outlet reporting through the last hours: the partial hour and
	// the newest minutes have data (the others' may stop earlier).
	truth["p-live"] = randomOutlet(rng, now.UnixNano()-int64(3*time.Hour), now.UnixNano()+int64(5*time.Minute))
	truth[fmt.Sprintf("p-empty")] = &outletRaw{}
	truth.normalize()
	lines := appendRaw(nil, truth)
	p := &points{lines: lines}
	// Statuses for Devices.
	p.status("p-0", telemetry.KindCounter, "c0", "online", now.Add(-30*time.Hour))
	p.status("p-0", telemetry.KindCounter, "c0", "offline", now.Add(-2*time.Hour))
	p.status("p-1", telemetry.KindBin, "b-gone", "offline", now.Add(-3*time.Hour))
	p.write(t, st)
	outlets := []string{"p-0", "p-1", "p-2", "p-3", "p-4", "p-live", "p-empty", "p-unknown"}

	opts := Options{Staleness: 20 * time.Minute, FullPct: 90}
	var lateMu sync.Mutex
	lateHours := map[int64]bool{} // what OnLate was told
	cfg := RollupConfig{Now: func() time.Time { return now }, Horizon: 2*24*time.Hour + 7*time.Hour, BuildChunk: 5 * time.Hour, LiveTTL: -1,
		OnLate: func(hours []int64) {
			lateMu.Lock()
			defer lateMu.Unlock()
			for _, h := range hours {
				lateHours[h] = true
			}
		}}

	type engines struct {
		name      string
		raw, roll *InfluxEngine
		r         *Rollup
	}
	var all []engines
	for _, lang := range []QueryLanguage{InfluxQL, Flux} {
		c := cfg
		c.Language = lang
		if lang == InfluxQL {
			c.Keep = -1             // every complete day compact (compact.go); Flux keeps the default
			c.ColdDir = t.TempDir() // and their hours in files (cold.go)
		}
		r, err := NewRollup(st, opts, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		roll, err := NewInfluxEngine(st, opts, r)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := NewRawEngine(st, opts, lang)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, engines{lang.String(), raw, roll, r})
	}

	check := func(t *testing.T, windows int) {
		t.Helper()
		lo, hi := start+dayNS/2, now.UnixNano()+int64(20*time.Minute)
		var w Window
		for i := 0; i < windows; i++ {
			switch {
			case i%4 == 3:
				// The same from as the window before, another to: the raw
				// pieces cut from from's hour are kept from it (runs.go).
				w.To = time.Unix(0, w.From.UnixNano()+minuteNS*(1+rng.Int64N((hi-w.From.UnixNano())/minuteNS))).UTC()
			case i%5 == 0: // the API's usual "last N" windows end now
				w.To = now.Truncate(time.Minute)
				w.From = w.To.Add(-time.Duration(1+rng.IntN(60*48)) * time.Minute)
			default:
				w = randomWindow(rng, lo, hi)
			}
			for _, e := range all {
				got, err := e.roll.Outlets(ctx, w, outlets)
				if err != nil {
					t.Fatalf("%s roll-up: %v", e.name, err)
				}
				raw, err := e.raw.Outlets(ctx, w, outlets)
				if err != nil {
					t.Fatalf("%s raw: %v", e.name, err)
				}
				for k, o := range outlets {
					want := referenceOutlet(truth[o], w, opts)
					if !reflect.DeepEqual(raw[k], want) {
						t.Fatalf("%s raw engine, %s over %v..%v:\n got %+v\nwant %+v", e.name, o, w.From, w.To, raw[k], want)
					}
					if !reflect.DeepEqual(got[k], want) {
						t.Fatalf("%s roll-up engine (%s), %s over %v..%v, pieces %s:\n got %+v\nwant %+v", e.name, e.r.describe(), o, w.From, w.To, kinds(planWindow(e.r.ix.load(), w, opts.Staleness)), got[k], want)
					}
				}
			}
		}
		// Small requests that share their reads (liveCache): a few
		// outlets at a time over the same window up to the newest minutes,
		// more of them than promoteAfter, so that the city's read of the
		// newest minutes and of the window's first hour serve the later
		// ones; each against the definition.
		srng := rand.New(rand.NewPCG(uint64(windows), 9)) // rng's sequence left as the cases below expect it
		for _, e := range all {
			shared := e.roll.WithLiveTTL(time.Hour)
			w := Window{From: now.Add(-time.Duration(1+srng.IntN(5*60)) * time.Minute).Truncate(time.Minute), To: now.Add(10 * time.Minute).Truncate(time.Minute)}
			for range 2 * promoteAfter {
				some := make([]string, 1+srng.IntN(3))
				for k := range some {
					some[k] = outlets[srng.IntN(len(outlets))]
				}
				got, err := shared.Outlets(ctx, w, some)
				if err != nil {
					t.Fatalf("%s shared reads: %v", e.name, err)
				}
				for k, o := range some {
					if want := referenceOutlet(truth[o], w, opts); !reflect.DeepEqual(got[k], want) {
						t.Fatalf("%s shared reads, %s of %v over %v..%v:\n got %+v\nwant %+v", e.name, o, some, w.From, w.To, got[k], want)
					}
				}
			}
			shared.live.mu.Lock()
			city := false
			for k := range shared.live.entries {
				city = city || k.filter == "*"
			}
			shared.live.mu.Unlock()
			if !city {
				t.Fatalf("%s: %d small requests over one window, and no city-wide read of its newest minutes", e.name, 2*promoteAfter)
			}
		}
		// metrics-v1 v1.1: each outlet judged from its active_since, on
		// both engines, against the definition over the part it covers.
		for i := 0; i < windows; i++ {
			w := randomWindow(rng, lo, hi)
			js := make([]Judged, len(outlets))
			for k, o := range outlets {
				js[k] = Judged{ID: o, ActiveSince: randomSince(rng, w)}
			}
			for _, e := range all {
				got, gIn, err := OutletsJudged(ctx, e.roll.Outlets, w, js)
				if err != nil {
					t.Fatalf("%s roll-up: %v", e.name, err)
				}
				raw, rIn, err := OutletsJudged(ctx, e.raw.Outlets, w, js)
				if err != nil {
					t.Fatalf("%s raw: %v", e.name, err)
				}
				for k, j := range js {
					from := w.From
					if s := j.ActiveSince.UnixNano(); !j.ActiveSince.IsZero() && s > from.UnixNano() {
						from = time.Unix(0, (s+minuteNS-1)/minuteNS*minuteNS).UTC() // the next whole minute
					}
					g, gok := got[k], gIn[k]
					r, rok := raw[k], rIn[k]
					if !from.Before(w.To) {
						if gok || rok {
							t.Fatalf("%s: %s since %v is after %v..%v, yet answered", e.name, j.ID, j.ActiveSince, w.From, w.To)
						}
						continue
					}
					want := referenceOutlet(truth[j.ID], Window{From: from, To: w.To}, opts)
					if !reflect.DeepEqual(r, want) || !reflect.DeepEqual(g, want) {
						t.Fatalf("%s: %s since %v over %v..%v:\nroll-up %+v\n    raw %+v\n   want %+v", e.name, j.ID, j.ActiveSince, w.From, w.To, g, r, want)
					}
				}
			}
		}
		// Series with a random step over a random window of one outlet.
		for i := 0; i < 3; i++ {
			w := randomWindow(rng, lo, hi)
			step := time.Duration(1+rng.IntN(180)) * time.Minute
			o := outlets[rng.IntN(5)]
			for _, e := range all {
				got, err := e.roll.Series(ctx, o, w, step)
				if err != nil {
					t.Fatal(err)
				}
				for k, f := 0, w.From; f.Before(w.To); k, f = k+1, f.Add(step) {
					sw := Window{From: f, To: f.Add(step)}
					if sw.To.After(w.To) {
						sw.To = w.To
					}
					if want := referenceOutlet(truth[o], sw, opts); !reflect.DeepEqual(got[k], want) {
						t.Fatalf("%s series %s step %v, #%d %v..%v:\n got %+v\nwant %+v", e.name, o, step, k, sw.From, sw.To, got[k], want)
					}
				}
			}
		}
		for _, e := range all {
			for _, at := range []time.Time{now} {
				got, err := e.roll.Devices(ctx, at, 40*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				want, err := e.raw.Devices(ctx, at, 40*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) || len(want) < 5 {
					for i := 0; i < max(len(got), len(want)); i++ {
						var g, w DeviceState
						if i < len(got) {
							g = got[i]
						}
						if i < len(want) {
							w = want[i]
						}
						if g != w {
							t.Errorf("%s devices at %v, #%d:\nroll-up %+v\n    raw %+v", e.name, at, i, g, w)
						}
					}
					t.FailNow()
				}
			}
			if snap := e.r.ix.load(); len(snap.partial) == 0 {
				t.Fatalf("%s: no data in the partial hour (r1 %v, p %v): the devices' kept table is not tried with one", e.name, time.Unix(0, snap.r1).UTC(), time.Unix(0, snap.p).UTC())
			}
		}
	}
	t.Run("random windows", func(t *testing.T) { check(t, 40) })

	t.Run("late data", func(t *testing.T) {
		// A window cut inside the hours the late points land in, asked
		// before them (its raw pieces are kept for the generation) and
		// again after (the next generation must not use them).
		cut := Window{From: now.Add(-100 * time.Minute).Truncate(time.Minute), To: now.Truncate(time.Minute)}
		for _, e := range all {
			if _, err := e.roll.Outlets(ctx, cut, outlets); err != nil {
				t.Fatal(err)
			}
		}
		// Points for hours already rolled: some within Recheck (one cycle
		// must catch them), some a day old (the full check must).
		late := rawSet{}
		late["p-1"] = randomOutlet(rng, now.UnixNano()-int64(150*time.Minute), now.UnixNano()-int64(70*time.Minute))
		late["p-new"] = randomOutlet(rng, now.UnixNano()-int64(3*time.Hour), now.UnixNano()-int64(time.Hour))
		late.normalize()
		(&points{lines: appendRaw(nil, late)}).write(t, st)
		mergeInto(truth, late)
		outlets = append(outlets, "p-new")
		for _, e := range all {
			e.r.mu.Lock()
			e.r.lastCycle = time.Time{}
			_, err := e.r.step(ctx, false)
			e.r.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.roll.Outlets(ctx, cut, outlets)
			if err != nil {
				t.Fatal(err)
			}
			for k, o := range outlets {
				if want := referenceOutlet(truth[o], cut, opts); !reflect.DeepEqual(got[k], want) {
					t.Fatalf("%s: %s over %v..%v after late data:\n got %+v\nwant %+v", e.name, o, cut.From, cut.To, got[k], want)
				}
			}
		}
		check(t, 15)

		old := rawSet{"p-2": randomOutlet(rng, now.UnixNano()-int64(30*time.Hour), now.UnixNano()-int64(26*time.Hour))}
		old.normalize()
		(&points{lines: appendRaw(nil, old)}).write(t, st)
		mergeInto(truth, old)
		for _, e := range all {
			if err := e.r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if n := counterValue(e.r.met.hours.WithLabelValues("late")); n == 0 {
				t.Errorf("%s: no hour re-rolled for late data", e.name)
			}
		}
		// OnLate heard of every hour the old late points landed in.
		lateMu.Lock()
		told := 0
		for _, b := range old["p-2"].bins {
			for _, p := range b.reps {
				if h := floorDiv(p.t, hourNS) * hourNS; !lateHours[h] {
					t.Errorf("OnLate was not told of hour %s", time.Unix(0, h).UTC())
				}
				told++
			}
		}
		if told == 0 {
			t.Error("the old late points hold no bin report: OnLate was not checked")
		}
		lateMu.Unlock()
		check(t, 15)
	})

	t.Run("restart loads the persisted roll-up", func(t *testing.T) {
		c := cfg
		c.Keep = -1 // loaded into compact days
		c.ColdDir = t.TempDir()
		r, err := NewRollup(st, opts, c)
		if err != nil {
			t.Fatal(err)
		}
		// While a load is in progress its snapshots cover the whole range
		// with part of the rows (here: none): requests must not use them.
		roll, err := NewInfluxEngine(st, opts, r)
		if err != nil {
			t.Fatal(err)
		}
		snap := all[0].r.ix.load()
		if err := r.ix.apply(update{r0: snap.r0, r1: snap.r1, p: snap.r1}); err != nil {
			t.Fatal(err)
		}
		w := Window{From: time.Unix(0, snap.r0+dayNS).UTC(), To: time.Unix(0, snap.r1).UTC()}
		got, err := roll.Outlets(ctx, w, []string{"p-0"})
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceOutlet(truth["p-0"], w, opts); !reflect.DeepEqual(got[0], want) {
			t.Fatalf("p-0 during a load, %v..%v:\n got %+v\nwant %+v", w.From, w.To, got[0], want)
		}
		// Many small requests during a load read their own outlets: the
		// window is all raw then, and the city's read of it could be
		// days of every series.
		shared := roll.WithLiveTTL(time.Hour)
		for i := range 2 * promoteAfter {
			o := outlets[i%len(outlets)] // with another: 36 sets of outlets
			got, err := shared.Outlets(ctx, w, []string{o, outlets[i/len(outlets)%len(outlets)]})
			if err != nil {
				t.Fatal(err)
			}
			if want := referenceOutlet(truth[o], w, opts); !reflect.DeepEqual(got[0], want) {
				t.Fatalf("%s during a load, shared reads:\n got %+v\nwant %+v", o, got[0], want)
			}
		}
		for k := range shared.live.entries {
			if k.filter == "*" {
				t.Fatalf("a city-wide read of %v..%v during a load", time.Unix(0, k.a).UTC(), time.Unix(0, k.e).UTC())
			}
		}
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if n := counterValue(r.met.hours.WithLabelValues("build")) + counterValue(r.met.hours.WithLabelValues("late")); n != 0 {
			t.Errorf("a restarted roll-up summarized %v outlet-hours again; want them loaded", n)
		}
		if r.loadedRows[1] == 0 || len(r.marked) == 0 {
			t.Fatalf("the restart read no day rows (rows %v, marked days %d)", r.loadedRows, len(r.marked))
		}
		if st := r.Stats(); st.ColdDays == 0 || st.ColdDays != st.CompactDays || st.ColdWritten == 0 {
			t.Fatalf("loaded day rows not in cold files: %+v", st)
		}
		all = append(all[:0], engines{"restarted", all[0].raw, roll, r})
		check(t, 15)
	})

	t.Run("restart reads the hours of a day whose day rows are pending", func(t *testing.T) {
		// As if a worker had marked the day pending and re-rolled some of
		// its hours, then stopped before its day rows were written again:
		// the day row left behind (here: an empty day) must not be read.
		r := all[0].r
		var day int64
		for d := range r.marked {
			if snap := r.ix.load(); snap.block("p-3", d) != nil {
				day = d
				break
			}
		}
		if day == 0 {
			t.Fatal("no marked day with data of p-3")
		}
		empty, err := packDay(&[24][]byte{}).compact()
		if err != nil {
			t.Fatal(err)
		}
		empty.sum = appendSummary(nil, &summary{}, day)
		var lines []byte
		lines = store.AppendRollupRow(lines, dayMarkerOutlet, r.dayRowKey(), day, []byte(dayMarkPending), 0, 0)
		row, err := encodeDayRow(empty)
		if err != nil {
			t.Fatal(err)
		}
		lines = store.AppendRollupRow(lines, "p-3", r.dayRowKey(), day, row, 0, 0)
		if err := st.Write(ctx, lines); err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.Keep = -1
		r2, err := NewRollup(st, opts, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := r2.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if r2.loadedRows[1] >= r.loadedRows[1] || r2.loadedRows[0] <= r.loadedRows[0] {
			t.Errorf("load read %v (hour rows, day rows) after a day was marked pending; before %v", r2.loadedRows, r.loadedRows)
		}
		roll, err := NewInfluxEngine(st, opts, r2)
		if err != nil {
			t.Fatal(err)
		}
		w := Window{From: time.Unix(0, day).UTC(), To: time.Unix(0, day+dayNS).UTC()}
		got, err := roll.Outlets(ctx, w, []string{"p-3"})
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceOutlet(truth["p-3"], w, opts); !reflect.DeepEqual(got[0], want) {
			t.Fatalf("p-3 over the pending day %v:\n got %+v\nwant %+v", w.From, got[0], want)
		}
		// The restart wrote the day's rows again and marked it.
		if !r2.marked[day] {
			t.Errorf("the pending day %v was not marked again", w.From)
		}
		all = append(all[:0], engines{"restarted after pending", all[0].raw, roll, r2})
		check(t, 10)
	})
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// describe is the roll-up's range, for logs and tests.
func (r *Rollup) describe() string {
	s := r.ix.load()
	return strings.Join([]string{
		"r0=" + time.Unix(0, s.r0).UTC().Format(time.RFC3339),
		"r1=" + time.Unix(0, s.r1).UTC().Format(time.RFC3339),
		"p=" + time.Unix(0, s.p).UTC().Format(time.RFC3339),
	}, " ")
}

// randomSince is an active_since for a window: none, before it, inside it
// (any nanosecond), at its end or after it.
func randomSince(rng *rand.Rand, w Window) time.Time {
	span := w.To.Sub(w.From)
	switch rng.IntN(6) {
	case 0, 1:
		return time.Time{}
	case 2:
		return w.From.Add(-time.Duration(rng.Int64N(int64(48 * time.Hour))))
	case 3:
		return w.To
	case 4:
		return w.To.Add(time.Duration(1 + rng.Int64N(int64(time.Hour))))
	}
	return w.From.Add(time.Duration(rng.Int64N(int64(span))))
}
