package metrics

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cityRaw makes n outlets' raw data over [a, b) shaped like the
// simulator's city: one counter and two bins per outlet, a report every 5
// minutes, counters rising, bins filling and being emptied. Every report
// is a function of its outlet and time alone, so any slice of time can be
// made on its own (a month of 10,000 outlets would not fit in memory).
func cityRaw(n int, a, b int64) rawSet {
	rs := rawSet{}
	const every = int64(5 * time.Minute)
	for o := range n {
		r := rs.outlet(fmt.Sprintf("o-%05d", o+1))
		phase := int64(o) * 7919 * int64(time.Millisecond) % every
		k0 := (a - phase + every - 1) / every // first report at or after a
		s := r.series(fmt.Sprintf("c-%05d", o+1), 1)
		for k := k0; phase+k*every < b; k++ {
			p := counterPoint{t: phase + k*every, has: 1<<numFields - 1, seq: k, hasSeq: true}
			for f := range p.v {
				p.v[f] = k * int64(1+(o+f)%3) / 2
			}
			s.pts = append(s.pts, p)
		}
		for bi := range 2 {
			d := r.bin(fmt.Sprintf("b-%05d-%d", o+1, bi+1))
			for k := k0; phase+k*every < b; k++ {
				fill := float64((k*int64(7+bi)+int64(o))%1000) / 10
				d.reps = append(d.reps, binReport{t: phase + k*every + int64(bi)*int64(time.Second), boot: 1, fill: fill, seq: k, hasFill: true, hasSeq: true})
			}
		}
	}
	rs.normalize()
	return rs
}

// rollChunked summarizes n outlets' hours of [r0, r1) and the partial
// [r1, p) as the worker does, making the raw data a day at a time.
func rollChunked(t testing.TB, n int, opts Options, r0, r1, p int64) *index {
	return rollChunkedCold(t, n, opts, r0, r1, p, "")
}

// rollChunkedCold is rollChunked with the compact days' hours in files of
// coldDir when it is set (cold.go).
func rollChunkedCold(t testing.TB, n int, opts Options, r0, r1, p int64, coldDir string) *index {
	ix := testIndex(t, defaultKeep, coldDir)
	var ups []hourUpdate
	for a := r0; a < r1; a += dayNS {
		b := min(a+dayNS, r1)
		for o, raw := range cityRaw(n, a-opts.Staleness.Nanoseconds(), b) {
			for h := a; h < b; h += hourNS {
				if s := summarizeRaw(raw, h, h+hourNS, opts, nil); !s.empty() {
					ups = append(ups, hourUpdate{outlet: o, hour: h, data: appendSummary(nil, &s, h)})
				}
			}
		}
	}
	partial := map[string]*summary{}
	for o, raw := range cityRaw(n, r1-opts.Staleness.Nanoseconds(), p) {
		s := summarizeRaw(raw, r1, p, opts, nil)
		partial[o] = &s
	}
	if err := ix.apply(update{hours: ups, r0: r0, r1: r1, p: p, partial: partial, ready: true}); err != nil {
		t.Fatal(err)
	}
	return ix
}

// BenchmarkCityWindow is the engine's own work for a 30-day question over
// the whole city, from the memory index (no InfluxDB, no HTTP): both edges
// cut an hour, the raw edges already in memory as the raw-hour cache and
// the live read would hold them. It reports the index's memory per
// outlet-day beside the CPU per outlet (on a shared machine the CPU time
// says more than the wall clock).
func BenchmarkCityWindow(b *testing.B) {
	for _, n := range []int{1000, 3000, 10000} {
		b.Run(fmt.Sprintf("outlets=%d", n), func(b *testing.B) {
			opts := DefaultOptions()
			end := time.Date(2030, 6, 2, 9, 37, 0, 0, time.UTC).UnixNano()
			start := end - 32*dayNS
			r0, r1 := floorDiv(start, hourNS)*hourNS+hourNS, floorDiv(end-int64(time.Minute), hourNS)*hourNS
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			ix := rollChunked(b, n, opts, r0, r1, end-int64(time.Minute))
			snap := ix.load()
			runtime.GC()
			runtime.ReadMemStats(&m1)
			days := float64(r1-r0) / float64(dayNS)
			outlets := make([]string, 0, n)
			for o := range snap.outlets {
				outlets = append(outlets, o)
			}
			w := Window{From: time.Unix(0, end-30*dayNS-int64(13*time.Minute)), To: time.Unix(0, end)}
			ps := planWindow(snap, w, opts.Staleness)
			// The raw pieces' data as the engine reads it: each cut hour
			// whole (the cache), the newest minutes from the piece's start
			// (what came before is in the carry).
			raws := map[int64]rawSet{}
			for _, p := range ps {
				if p.kind == pieceRaw {
					a, e := p.start, p.end
					if p.cacheHour >= 0 {
						a, e = p.cacheHour, p.cacheHour+hourNS
					}
					raws[p.start] = cityRaw(n, a, e)
				}
			}
			rawFor := func(p piece) rawSet { return raws[p.start] }
			heap := float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n) / days
			est := float64(snap.memoryBytes()) / float64(n) / days
			// Each piece combined by every request; the runs of whole
			// pieces kept combined from the first request on; the heads,
			// as for the requests that cut the same minute (runs.go); and
			// the first request after a cycle replaced the partial hour's
			// summaries (the head with them made anew from the one before).
			for _, mode := range []string{"none", "runs", "runs+heads", "heads,new-cycle"} {
				b.Run("kept="+mode, func(b *testing.B) {
					a := &acc{intern: &interner{shared: snap.names, local: map[string]string{}}}
					if mode != "none" {
						// The first request combines what is kept (that
						// is the kept=none cost); time the rest.
						a.runs = newRunCache[kept](runsKept)
						if mode != "runs" {
							a.heads = newRunCache[head](headsKept)
						}
						for _, o := range outlets {
							if _, err := a.evalOutlet(snap, o, w, ps, opts, rawFor); err != nil {
								b.Fatal(err)
							}
						}
						b.ResetTimer()
					}
					c0, spent := cpuTime(), time.Duration(0)
					for range b.N {
						snap := snap
						if mode == "heads,new-cycle" {
							b.StopTimer()
							// The same partial summaries, replaced: a new pgen.
							if err := ix.apply(update{r0: snap.r0, r1: snap.r1, p: snap.p, partial: snap.partial}); err != nil {
								b.Fatal(err)
							}
							snap = ix.load()
							b.StartTimer()
							c0 = cpuTime()
						}
						for _, o := range outlets {
							if _, err := a.evalOutlet(snap, o, w, ps, opts, rawFor); err != nil {
								b.Fatal(err)
							}
						}
						spent += cpuTime() - c0
						c0 = cpuTime()
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/outlet")
					b.ReportMetric(float64(spent.Microseconds())/float64(b.N)/float64(n), "cpu-µs/outlet")
					b.ReportMetric(heap, "heapB/outlet-day")
					b.ReportMetric(est, "estB/outlet-day")
				})
			}
			runtime.KeepAlive(snap)
		})
	}
}

// BenchmarkRollupMemory is the roll-up's heap per outlet-day over the
// API's default 94-day horizon (GP_API_MAX_WINDOW 93 days + 1), with the
// compact days' hours in the heap and in cold files (GP_API_COLD_DIR): the
// figure the API's memory formula rests on (docs/benchmarks.md). One
// iteration is enough: it measures, not times.
func BenchmarkRollupMemory(b *testing.B) {
	const n, days = 1000, 94
	for _, cold := range []bool{false, true} {
		b.Run(fmt.Sprintf("outlets=%d/days=%d/cold=%v", n, days, cold), func(b *testing.B) {
			opts := DefaultOptions()
			end := time.Date(2030, 6, 2, 9, 37, 0, 0, time.UTC).UnixNano()
			r0, r1 := floorDiv(end-days*dayNS, dayNS)*dayNS, floorDiv(end, hourNS)*hourNS
			dir := ""
			if cold {
				dir = b.TempDir()
			}
			for range b.N {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				ix := rollChunkedCold(b, n, opts, r0, r1, r1, dir)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				st := ix.coldStats()
				d := float64(r1-r0) / float64(dayNS)
				b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n)/d, "heapB/outlet-day")
				b.ReportMetric(float64(st.written)/float64(n)/d, "coldB/outlet-day")
				b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "heapMiB")
				runtime.KeepAlive(ix)
			}
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
