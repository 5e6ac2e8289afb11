package metrics

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"syscall"
	"testing"
	"time"
)

// cityRaw makes n outlets' raw data over [start, end) shaped like the
// simulator's city: one counter and two bins per outlet, a report every 5
// minutes, counters rising, bins filling and being emptied.
func cityRaw(n int, start, end int64) rawSet {
	rs := rawSet{}
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	for o := range n {
		id := fmt.Sprintf("o-%05d", o+1)
		r := rs.outlet(id)
		s := r.series(fmt.Sprintf("c-%05d", o+1), 1)
		var v [numFields]int64
		seq := int64(0)
		for t := start + rng.Int64N(int64(5*time.Minute)); t < end; t += int64(5 * time.Minute) {
			for f := range v {
				v[f] += rng.Int64N(3)
			}
			seq++
			s.pts = append(s.pts, counterPoint{t: t, v: v, has: 1<<numFields - 1, seq: seq, hasSeq: true})
		}
		for b := range 2 {
			d := r.bin(fmt.Sprintf("b-%05d-%d", o+1, b+1))
			fill := 0.0
			seq := int64(0)
			for t := start + rng.Int64N(int64(5*time.Minute)); t < end; t += int64(5 * time.Minute) {
				if fill += float64(rng.IntN(20)) / 10; fill > 100 {
					fill = 0
				}
				seq++
				d.reps = append(d.reps, binReport{t: t, boot: 1, fill: fill, seq: seq, hasFill: true, hasSeq: true})
			}
		}
	}
	rs.normalize()
	return rs
}

// sliceRaw is rs cut to [a, b), as a read of that range would return it.
func sliceRaw(rs rawSet, a, b int64) rawSet {
	out := rawSet{}
	for o, r := range rs {
		c := out.outlet(o)
		for _, s := range r.counters {
			i, j := sort.Search(len(s.pts), func(k int) bool { return s.pts[k].t >= a }), sort.Search(len(s.pts), func(k int) bool { return s.pts[k].t >= b })
			if i < j {
				c.counters = append(c.counters, &counterSeries{device: s.device, boot: s.boot, pts: s.pts[i:j]})
			}
		}
		for _, d := range r.bins {
			i, j := sort.Search(len(d.reps), func(k int) bool { return d.reps[k].t >= a }), sort.Search(len(d.reps), func(k int) bool { return d.reps[k].t >= b })
			if i < j {
				c.bins = append(c.bins, &binDevice{device: d.device, reps: d.reps[i:j]})
			}
		}
	}
	return out
}

// rollChunked is rollInMemory reading a day at a time, as the worker does.
func rollChunked(t testing.TB, rs rawSet, opts Options, r0, r1, p int64) *snapshot {
	ix := newIndex()
	var ups []hourUpdate
	for a := r0; a < r1; a += dayNS {
		b := min(a+dayNS, r1)
		for o, raw := range sliceRaw(rs, a-opts.Staleness.Nanoseconds(), b) {
			for h := a; h < b; h += hourNS {
				if s := summarizeRaw(raw, h, h+hourNS, opts, nil); !s.empty() {
					ups = append(ups, hourUpdate{outlet: o, hour: h, data: appendSummary(nil, &s, h)})
				}
			}
		}
	}
	partial := map[string]*summary{}
	for o, raw := range sliceRaw(rs, r1-opts.Staleness.Nanoseconds(), p) {
		s := summarizeRaw(raw, r1, p, opts, nil)
		partial[o] = &s
	}
	if err := ix.apply(update{hours: ups, r0: r0, r1: r1, p: p, partial: partial, ready: true}); err != nil {
		t.Fatal(err)
	}
	return ix.load()
}

// BenchmarkCityWindow is the engine's own work for a 30-day question over
// the whole city, from the memory index (no InfluxDB, no HTTP): both edges
// cut an hour, the raw edges already in memory as the raw-hour cache and
// the live read would hold them. It reports the index's memory per
// outlet-day beside the time.
func BenchmarkCityWindow(b *testing.B) {
	for _, n := range []int{1000, 3000, 10000} {
		b.Run(fmt.Sprintf("outlets=%d", n), func(b *testing.B) {
			opts := DefaultOptions()
			end := time.Date(2030, 6, 2, 9, 37, 0, 0, time.UTC).UnixNano()
			start := end - 32*dayNS
			rs := cityRaw(n, start, end)
			r1 := floorDiv(end-int64(time.Minute), hourNS) * hourNS
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			snap := rollChunked(b, rs, opts, floorDiv(start, hourNS)*hourNS+hourNS, r1, end-int64(time.Minute))
			runtime.GC()
			runtime.ReadMemStats(&m1)
			days := float64(r1-start) / float64(dayNS)
			outlets := make([]string, 0, n)
			for o := range rs {
				outlets = append(outlets, o)
			}
			w := Window{From: time.Unix(0, end-30*dayNS-int64(13*time.Minute)), To: time.Unix(0, end)}
			ps := planWindow(snap, w, opts.Staleness)
			// The raw pieces' data as the engine holds it: each cut hour
			// read whole (the cache), the newest minutes read live.
			raws := map[int64]rawSet{}
			for _, p := range ps {
				if p.kind == pieceRaw {
					raws[p.start] = sliceRaw(rs, p.start-opts.Staleness.Nanoseconds(), p.end)
				}
			}
			rawFor := func(p piece) rawSet { return raws[p.start] }
			heap := float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n) / days
			est := float64(snap.memoryBytes()) / float64(n) / days
			// Each piece combined by every request, and the runs of whole
			// pieces kept combined from the first request on (runs.go).
			for _, kept := range []bool{false, true} {
				b.Run(fmt.Sprintf("runs-kept=%v", kept), func(b *testing.B) {
					a := &acc{intern: &interner{shared: snap.names, local: map[string]string{}}}
					if kept {
						a.runs = newRunCache(runsKept)
					}
					c0 := cpuTime()
					for range b.N {
						for _, o := range outlets {
							if _, err := a.evalOutlet(snap, o, w, ps, opts, rawFor); err != nil {
								b.Fatal(err)
							}
						}
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/outlet")
					b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N)/float64(n), "cpu-µs/outlet")
					b.ReportMetric(heap, "heapB/outlet-day")
					b.ReportMetric(est, "estB/outlet-day")
				})
			}
			runtime.KeepAlive(snap)
		})
	}
}

// cpuTime is this process's user and system CPU time so far: on a shared
// machine it says more than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
