package metrics

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"
)

// randomOutlet makes raw data for one outlet over [start, end): counters
// with resets, decreases, gaps, reboots, boxes sent only sometimes, fields
// missing now and then; bins with gaps, fills around the threshold,
// reboots and reports of two boots at the same time.
func randomOutlet(rng *rand.Rand, start, end int64) *outletRaw {
	r := &outletRaw{}
	for c := 0; c < 1+rng.IntN(2); c++ {
		dev := fmt.Sprintf("c%d", c)
		boot := int64(rng.IntN(3))
		var vals [numFields]int64
		for f := range vals {
			vals[f] = rng.Int64N(1000)
		}
		seq := int64(0)
		for t := start + rng.Int64N(int64(10*time.Minute)); t < end; t += randGap(rng) {
			if rng.IntN(40) == 0 {
				boot++
				vals = [numFields]int64{}
				seq = 0
			}
			p := counterPoint{t: onMinute(rng, t), seq: seq, hasSeq: rng.IntN(50) != 0}
			seq++
			for f := range vals {
				switch rng.IntN(30) {
				case 0:
					vals[f] /= 2 // a decrease: a reset of this class only
				case 1:
					continue // field missing from this point
				}
				vals[f] += rng.Int64N(20)
				if f == fieldBoxes && rng.IntN(3) == 0 {
					continue
				}
				p.v[f] = vals[f]
				p.has |= 1 << f
			}
			s := r.series(dev, boot)
			s.pts = append(s.pts, p)
		}
	}
	for b := 0; b < rng.IntN(4); b++ {
		dev := fmt.Sprintf("b%d", b)
		d := r.bin(dev)
		boot := int64(0)
		fill := rng.Float64() * 100
		for t := start + rng.Int64N(int64(10*time.Minute)); t < end; t += randGap(rng) {
			if rng.IntN(50) == 0 {
				boot++
			}
			switch rng.IntN(6) {
			case 0:
				fill = 90
			case 1:
				fill = 89.9
			default:
				fill = rng.Float64() * 100
			}
			rep := binReport{t: onMinute(rng, t), boot: boot, fill: fill, hasFill: rng.IntN(60) != 0, seq: rng.Int64N(100), hasSeq: true}
			d.reps = append(d.reps, rep)
			if rng.IntN(40) == 0 {
				// The same time from the next boot: the later boot wins.
				d.reps = append(d.reps, binReport{t: rep.t, boot: boot + 1, fill: 100 - fill, hasFill: true, hasSeq: true, seq: 1})
			}
		}
	}
	return r
}

// onMinute puts a quarter of the reports exactly on a minute: the edge
// cases of "at or before m" and "at most staleness old".
func onMinute(rng *rand.Rand, t int64) int64 {
	if rng.IntN(4) == 0 {
		return floorDiv(t, minuteNS) * minuteNS
	}
	return t
}

// randGap is the time to the next report: mostly minutes (some not whole
// minutes, some exactly on the minute), sometimes outages of hours, once
// in a while more than a day.
func randGap(rng *rand.Rand) int64 {
	switch rng.IntN(40) {
	case 0:
		return int64(time.Duration(1+rng.IntN(8)) * time.Hour)
	case 1:
		return int64(25*time.Hour) + rng.Int64N(int64(3*time.Hour))
	case 2:
		return int64(time.Duration(1+rng.IntN(20)) * time.Minute) // on the minute
	}
	return int64(time.Minute) + rng.Int64N(int64(9*time.Minute))
}

// rollInMemory builds a snapshot from raw data as the roll-up would: each
// hour of [r0, r1) summarized, and the partial summary of [r1, p); days
// older than keep compact (index.keep), their hours in files of coldDir
// when it is set (cold.go).
func rollInMemory(t testing.TB, rs rawSet, opts Options, r0, r1, p int64, keep time.Duration, coldDir string) *snapshot {
	ix := testIndex(t, keep, coldDir)
	var ups []hourUpdate
	partial := map[string]*summary{}
	for o, raw := range rs {
		for h := r0; h < r1; h += hourNS {
			s := summarizeRaw(raw, h, h+hourNS, opts, nil)
			if !s.empty() {
				ups = append(ups, hourUpdate{outlet: o, hour: h, data: appendSummary(nil, &s, h)})
			}
		}
		if p > r1 {
			s := summarizeRaw(raw, r1, p, opts, nil)
			partial[o] = &s
		}
	}
	if err := ix.apply(update{hours: ups, r0: r0, r1: r1, p: p, partial: partial, ready: true}); err != nil {
		t.Fatal(err)
	}
	return ix.load()
}

// testIndex is newIndex(keep) with its compact days' hours in files of
// coldDir when it is set.
func testIndex(t testing.TB, keep time.Duration, coldDir string) *index {
	t.Helper()
	ix := newIndex(keep)
	if coldDir != "" {
		c, err := newColdStore(coldDir)
		if err != nil {
			t.Fatal(err)
		}
		ix.cold = c
	}
	return ix
}

func randomWindow(rng *rand.Rand, start, end int64) Window {
	pick := func() int64 {
		t := start + rng.Int64N(end-start)
		switch rng.IntN(4) {
		case 0:
			return floorDiv(t, hourNS) * hourNS
		case 1:
			return floorDiv(t, dayNS) * dayNS
		}
		return floorDiv(t, minuteNS) * minuteNS
	}
	a, b := pick(), pick()
	for a == b {
		b = pick()
	}
	if a > b {
		a, b = b, a
	}
	return Window{From: time.Unix(0, a).UTC(), To: time.Unix(0, b).UTC()}
}

// TestRollupEqualsDefinitionInMemory is the property test of the
// arithmetic, without InfluxDB: on random data, every window answered from
// hourly summaries, day summaries, the partial hour and raw edges equals
// metrics-v1 computed literally on the raw points.
func TestRollupEqualsDefinitionInMemory(t *testing.T) {
	start := time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	end := start + 5*dayNS
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		opts := Options{Staleness: time.Duration(1+rng.IntN(90)) * time.Minute, FullPct: []float64{90, 50, 100, 0}[rng.IntN(4)]}
		rs := rawSet{}
		for o := 0; o < 4; o++ {
			rs[fmt.Sprintf("o%d", o)] = randomOutlet(rng, start, end)
		}
		rs.normalize()
		// The roll-up covers part of the data: windows also reach before
		// r0 and after p (raw there).
		r0 := start + int64(rng.IntN(30))*hourNS
		r1 := end - int64(rng.IntN(20)+1)*hourNS
		p := r1 + int64(rng.IntN(60))*minuteNS
		// Compact days (compact.go): none, the default (days older than
		// 48 h), every complete day, every complete day with its hours in
		// a file (cold.go).
		keep := []time.Duration{1000 * time.Hour, defaultKeep, -1, -1}[seed%4]
		coldDir := ""
		if seed%4 == 3 {
			coldDir = t.TempDir()
		}
		snap := rollInMemory(t, rs, opts, r0, r1, p, keep, coldDir)
		if keep < 0 && snap.compactTo <= snap.r0 {
			t.Fatalf("seed %d: no day compacted", seed)
		}
		if coldDir != "" && coldDays(snap) == 0 {
			t.Fatalf("seed %d: no day in a cold file", seed)
		}
		a := &acc{intern: &interner{shared: snap.names, local: map[string]string{}}}
		// The same with runs and heads kept (runs.go): asked
		// twice, the second answer comes from what the first one kept; and
		// a window with the same from and another to (ending at the
		// roll-up's end, at the partial's, or anywhere after the window)
		// starts from the same head when its stable pieces end alike.
		// Raw data as the engine reads it: a closed hour whole, the
		// newest minutes from the piece's start (what came before must
		// come from the carry).
		clipped := map[[2]int64]rawSet{}
		rawOf := func(p piece) rawSet {
			a, e := p.start, p.end
			if p.cacheHour >= 0 {
				a, e = p.cacheHour, p.cacheHour+hourNS
			}
			if c, ok := clipped[[2]int64{a, e}]; ok {
				return c
			}
			c := clipRaw(rs, a, e)
			clipped[[2]int64{a, e}] = c
			return c
		}
		memo := &acc{intern: a.intern, runs: newRunCache[kept](4), heads: newRunCache[head](4)}
		for i := 0; i < 60; i++ {
			w := randomWindow(rng, start+dayNS/2, end+hourNS)
			w2 := w
			switch to := []int64{r1, p, w.To.UnixNano() + minuteNS*rng.Int64N(90)}[rng.IntN(3)]; {
			case to > w.From.UnixNano():
				w2.To = time.Unix(0, to).UTC()
			}
			for _, w := range []Window{w, w2} {
				ps := planWindow(snap, w, opts.Staleness)
				for o, raw := range rs {
					want := referenceOutlet(raw, w, opts)
					for k, ev := range []*acc{a, memo, memo} {
						got, err := ev.evalOutlet(snap, o, w, ps, opts, rawOf)
						if err != nil {
							t.Fatal(err)
						}
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("seed %d, %s, window %v..%v, opts %+v, keep %v, pieces %v, evaluation %d (1: kept made, 2: kept used):\nroll-up %+v\nliteral %+v",
								seed, o, w.From, w.To, opts, keep, kinds(ps), k, got, want)
						}
					}
				}
			}
		}
	}
}

// TestHeadsFollowThePartial: a head that applied the partial hour's
// summaries is not used once the roll-up replaces them (pgen), even with
// the same generation and the same end: late reports of the partial hour
// then count.
func TestHeadsFollowThePartial(t *testing.T) {
	start := time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	end := start + 3*dayNS
	r0, r1 := start+2*hourNS, end-2*hourNS
	p := r1 + 50*minuteNS
	opts := DefaultOptions()
	changed := 0 // outlets whose answer the late reports change
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		rs := rawSet{}
		for o := 0; o < 3; o++ {
			rs[fmt.Sprintf("o%d", o)] = randomOutlet(rng, start, end)
		}
		rs.normalize()
		// The first partial summaries miss the reports of [r1+10m, p):
		// they had not arrived.
		early := rawSet{}
		for o, r := range rs {
			early[o] = clipRaw(rawSet{o: r}, start, r1+10*minuteNS)[o]
			if early[o] == nil {
				early[o] = &outletRaw{}
			}
		}
		partialOf := func(rs rawSet) map[string]*summary {
			m := map[string]*summary{}
			for o, raw := range rs {
				s := summarizeRaw(raw, r1, p, opts, nil)
				m[o] = &s
			}
			return m
		}
		ix := newIndex(defaultKeep)
		var ups []hourUpdate
		for o, raw := range rs {
			for h := r0; h < r1; h += hourNS {
				if s := summarizeRaw(raw, h, h+hourNS, opts, nil); !s.empty() {
					ups = append(ups, hourUpdate{outlet: o, hour: h, data: appendSummary(nil, &s, h)})
				}
			}
		}
		if err := ix.apply(update{hours: ups, r0: r0, r1: r1, p: p, partial: partialOf(early), ready: true}); err != nil {
			t.Fatal(err)
		}
		w := Window{From: time.Unix(0, r0+dayNS+hourNS+17*minuteNS).UTC(), To: time.Unix(0, p+7*minuteNS).UTC()}
		rawOf := func(pc piece) rawSet {
			if pc.cacheHour >= 0 {
				return clipRaw(rs, pc.cacheHour, pc.cacheHour+hourNS)
			}
			return clipRaw(rs, pc.start, pc.end)
		}
		snap := ix.load()
		memo := &acc{intern: &interner{shared: snap.names, local: map[string]string{}}, runs: newRunCache[kept](4), heads: newRunCache[head](4)}
		ps := planWindow(snap, w, opts.Staleness)
		if k := stablePrefix(ps); k == 0 || ps[k-1].kind != piecePartial {
			t.Fatalf("pieces %s: want the partial hour last of the stable ones", kinds(ps))
		}
		for o := range rs {
			if _, err := memo.evalOutlet(snap, o, w, ps, opts, rawOf); err != nil { // makes the heads
				t.Fatal(err)
			}
		}
		// The late reports arrive: the next cycle replaces the partial
		// summaries, nothing else.
		if err := ix.apply(update{r0: r0, r1: r1, p: p, partial: partialOf(rs)}); err != nil {
			t.Fatal(err)
		}
		next := ix.load()
		if next.gen != snap.gen || next.pgen == snap.pgen {
			t.Fatalf("gen %d → %d, pgen %d → %d: want the same gen and a new pgen", snap.gen, next.gen, snap.pgen, next.pgen)
		}
		// Requests at once, each its own acc over the same kept heads (the
		// race detector watches the heads' shared lists); the newest
		// minutes' raw data read once, as the engine does.
		nextPs := planWindow(next, w, opts.Staleness)
		raws := map[piece]rawSet{}
		for _, pc := range nextPs {
			raws[pc] = rawOf(pc)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 3*len(rs))
		for range 3 {
			wg.Go(func() {
				a := &acc{intern: &interner{shared: next.names, local: map[string]string{}}, runs: memo.runs, heads: memo.heads}
				for o, raw := range rs {
					got, err := a.evalOutlet(next, o, w, nextPs, opts, func(pc piece) rawSet { return raws[pc] })
					if want := referenceOutlet(raw, w, opts); err != nil || got != want {
						errs <- fmt.Errorf("seed %d, %s after the partial changed: %v\n got %+v\nwant %+v", seed, o, err, got, want)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for o, raw := range rs {
			if referenceOutlet(raw, w, opts) != referenceOutlet(early[o], w, opts) {
				changed++
			}
		}
	}
	if changed < 10 {
		t.Fatalf("the late reports change %d answers of 30: too few for the test to prove anything", changed)
	}
}

// clipRaw returns the points of rs in [a, e); outlets without any are
// left out, as from a read.
func clipRaw(rs rawSet, a, e int64) rawSet {
	out := rawSet{}
	for o, r := range rs {
		c := &outletRaw{}
		n := 0
		for _, s := range r.counters {
			cs := c.series(s.device, s.boot)
			for _, p := range s.pts {
				if p.t >= a && p.t < e {
					cs.pts = append(cs.pts, p)
					n++
				}
			}
		}
		for _, b := range r.bins {
			cb := c.bin(b.device)
			for _, rep := range b.reps {
				if rep.t >= a && rep.t < e {
					cb.reps = append(cb.reps, rep)
					n++
				}
			}
		}
		if n > 0 {
			out[o] = c
		}
	}
	return out
}

func kinds(ps []piece) string {
	s := ""
	for _, p := range ps {
		s += fmt.Sprintf("%s[%s,%s)%v ", []string{"day", "hour", "partial", "raw"}[p.kind],
			time.Unix(0, p.start).UTC().Format("02T15:04"), time.Unix(0, p.end).UTC().Format("02T15:04"), map[bool]string{true: "pre", false: ""}[p.pre])
	}
	return s
}

// TestSummaryCodec: encoding round-trips, and combining the summaries of
// consecutive pieces equals summarizing their union.
func TestSummaryCodec(t *testing.T) {
	start := time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	opts := DefaultOptions()
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 9))
		r := randomOutlet(rng, start, start+6*hourNS)
		rs := rawSet{"o": r}
		rs.normalize()
		cut := start + int64(1+rng.IntN(5))*hourNS
		whole := summarizeRaw(r, start+hourNS/2, start+6*hourNS, opts, nil)
		a := summarizeRaw(r, start+hourNS/2, cut, opts, nil)
		b := summarizeRaw(r, cut, start+6*hourNS, opts, nil)
		a.combine(&b)
		a.sort()
		// Minutes are the one part that does not combine from the pieces
		// alone (b needs the reports before cut): compare the rest.
		whole.serving, whole.counting, a.serving, a.counting = 0, 0, 0, 0
		if !reflect.DeepEqual(normalizeSummary(a), normalizeSummary(whole)) {
			t.Fatalf("seed %d: combine(a, b) != summarize(a ∪ b)\n%+v\n%+v", seed, a, whole)
		}
		enc := appendSummary(nil, &whole, start)
		var dec summary
		if err := decodeSummary(&dec, enc, start, &interner{local: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalizeSummary(dec), normalizeSummary(whole)) {
			t.Fatalf("seed %d: decode(encode(s)) != s\n%+v\n%+v", seed, dec, whole)
		}
		for cut := 0; cut < len(enc); cut++ {
			if err := decodeSummary(&dec, enc[:cut], start, nil); err == nil {
				t.Fatalf("seed %d: a summary cut at %d of %d bytes decoded", seed, cut, len(enc))
			}
		}
	}
}

// normalizeSummary zeroes the parts of absent fields, which carry no meaning.
func normalizeSummary(s summary) summary {
	out := s
	out.series = append([]seriesSum(nil), s.series...)
	for i := range out.series {
		for f := 0; f < numFields; f++ {
			if out.series[i].mask&(1<<f) == 0 {
				out.series[i].f[f] = fieldSum{}
			}
		}
	}
	if len(out.series) == 0 {
		out.series = nil
	}
	out.bins = append([]binSum(nil), s.bins...)
	if len(out.bins) == 0 {
		out.bins = nil
	}
	return out
}

// TestSummaryFormat1 reads a row written in format 1 (plain ns times,
// 8-byte fill), which a roll-up persisted before format 2 still holds.
func TestSummaryFormat1(t *testing.T) {
	start := time.Date(2030, 5, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	b := []byte{1}
	b = binary.AppendUvarint(b, 12) // serving
	b = binary.AppendUvarint(b, 30) // counting
	b = binary.AppendUvarint(b, 1)  // one series
	b = appendString(b, "c-1")
	for _, v := range []int64{2, 3, 21, 1_800_000_123} { // boot, nSeq, sumSeq, tLast after start
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, 1<<uint(recyclable))
	for _, v := range []int64{5, 100, 7, 2} { // tLast(series)-tLast(field), first, last-first, inc-(last-first)
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, 1) // one bin
	b = appendString(b, "b-1")
	for _, v := range []int64{0, 4, 4, 10, 3_000_000_000} { // boot, nRep, nSeq, sumSeq, tLast
		b = binary.AppendVarint(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(33.25))
	var got summary
	if err := decodeSummary(&got, b, start, nil); err != nil {
		t.Fatal(err)
	}
	want := summary{serving: 12, counting: 30,
		series: []seriesSum{{device: "c-1", boot: 2, nSeq: 3, sumSeq: 21, tLast: start + 1_800_000_123, mask: 1 << uint(recyclable)}},
		bins:   []binSum{{device: "b-1", nRep: 4, nSeq: 4, sumSeq: 10, tLast: start + 3_000_000_000, fill: 33.25}},
	}
	want.series[0].f[recyclable] = fieldSum{first: 100, last: 107, inc: 9, tLast: start + 1_800_000_118}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("format 1:\n got %+v\nwant %+v", got, want)
	}
	// Format 2 of the same summary is smaller and decodes to the same.
	enc := appendSummary(nil, &want, start)
	var back summary
	if err := decodeSummary(&back, enc, start, nil); err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("format 2 round trip: %v\n got %+v\nwant %+v", err, back, want)
	}
	if len(enc) >= len(b) {
		t.Errorf("format 2 is %d bytes, format 1 %d", len(enc), len(b))
	}
}
