package fill

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// "Full since" for the alerts (GET /v1/alerts, bin_full): since when a full
// bin has been full, with InfluxDB's answer (internal/store's FullSince):
// the first fill report at or above FullPct after the device's last report
// below it, within [now − lookback, now], every boot (and every outlet) of
// the device as one; none when its last report is below, or it has none.
//
// The tracker holds every report of the last Keep, so it answers from
// memory for the bins whose trailing run of full reports begins inside
// what it holds. It asks InfluxDB only:
//   - for the reports newer than its own newest of a bin that the caller's
//     device states already show (its poll is up to Interval behind): one
//     small read of that tail, of those bins' outlets only;
//   - for the bins full for longer than memory reaches (or whose run may
//     reach past it), through the caller's ask: once, then the answer is
//     kept while memory shows the bin still full since the answer was
//     read (a bin that stays full keeps its since);
//   - for everything while the first load is not done, for another
//     FullPct than the tracker's, for a device reported under two outlets,
//     and for a run that holds a time at which two boots reported at once,
//     one full and one not (memory keeps one of them).
// Reports stored late (after the tracker read their time) are seen once
// its recheck reads them again (Run), as the collection list sees them.

// FullBin is a bin whose "full since" is asked: its outlet, its device and
// its last report as the caller's device states show it.
type FullBin struct {
	Outlet, Device string
	Last           time.Time
}

// FullSinceFunc answers "full since" from InfluxDB (internal/store's
// FullSince): the answer for each device that has one.
type FullSinceFunc func(ctx context.Context, devices []string, fullPct float64, now time.Time, lookback time.Duration) (map[string]time.Time, error)

// longFull is a kept answer for a bin full since before memory: since (ms),
// the time (ms) of the read that gave it and the lookback it was asked with
// (an answer cut by a shorter lookback is not one for a longer).
type longFull struct {
	since, read int64
	lookback    time.Duration
}

// fullCache holds the kept answers of bins full for longer than memory.
type fullCache struct {
	mu sync.Mutex
	m  map[binKey]longFull
}

// runKind is what memory alone says of a bin's trailing full run.
type runKind int

const (
	runNone    runKind = iota // no report in range, or the newest is below: no answer (when exact)
	runSince                  // the run begins at since
	runLong                   // every report memory holds in range is full, and the range reaches before memory
	runUnknown                // memory cannot tell (a mixed-boot time in range)
)

// memRun is a bin's trailing run from memory over [from, to] (ms), memory
// being complete from covered on.
type memRun struct {
	kind   runKind
	since  int64
	below  bool  // runNone: the newest report in range is below (else there is none)
	newest int64 // the newest report memory holds of the bin (any time); 0 when none
}

func (v *view) fullRun(from, to, covered int64, full float64) memRun {
	r := memRun{}
	if n := v.len(); n > 0 {
		r.newest = v.t(n - 1)
	}
	if k, _ := slices.BinarySearch(v.mixed, from); k < len(v.mixed) && v.mixed[k] <= to {
		r.kind = runUnknown
		return r
	}
	lo, hi := v.search(from), v.search(to+1)
	if lo == hi {
		if from >= covered {
			r.kind = runNone
		} else {
			r.kind = runLong // nothing in memory, but memory does not reach from
		}
		return r
	}
	// i: the last report below full before hi (-1: none), with its time
	// and the time of the one after it (what the answer needs; from the
	// memo, so that a bin full for days does not decode its compact days
	// on every request).
	var i int
	var ti, next int64
	if hi == v.len() && v.s != nil {
		// No report after to: the last below in range is the bin's last
		// below, when in range.
		m := v.lastBelow(full)
		i, ti, next = m.i, m.t, m.next
	} else {
		i = hi - 1
		for ; i >= lo && float64(v.p(i)) >= full; i-- {
		}
		if i >= lo {
			ti, next = v.t(i), v.t(i+1)
		}
	}
	switch {
	case i == hi-1:
		r.kind, r.below = runNone, true
	case i >= lo && ti >= covered:
		r.kind, r.since = runSince, next
	case i < lo && from >= covered:
		r.kind, r.since = runSince, v.t(lo)
	default:
		r.kind = runLong
	}
	return r
}

// belowMemo is a series' last report below full, for one generation: its
// index (-1: none), its time and the time of the report after it.
type belowMemo struct {
	gen     uint64
	i       int
	t, next int64
}

// lastBelow returns the view's last report below full, kept per
// generation of the series' reports.
func (v *view) lastBelow(full float64) belowMemo {
	if m := v.s.below.Load(); m != nil && m.gen == v.gen {
		return *m
	}
	m := belowMemo{gen: v.gen, i: v.len() - 1}
	for ; m.i >= 0 && float64(v.p(m.i)) >= full; m.i-- {
	}
	if m.i >= 0 {
		m.t = v.t(m.i)
		if m.i+1 < v.len() {
			m.next = v.t(m.i + 1)
		}
	}
	v.s.below.Store(&m)
	return m
}

// pending is a bin and what memory says of it.
type pending struct {
	b   FullBin
	run memRun
}

// tailOutlets is the most outlets one read of the newest reports names.
const tailOutlets = 64

// tailReport is a report newer than memory's newest of its bin.
type tailReport struct {
	t     int64
	below bool
}

// FullSince answers since when each bin has been full, as ask (InfluxDB)
// would, from memory where memory can tell (see above), and asks the rest.
// The answer is keyed by device, like ask's.
func (t *Tracker) FullSince(ctx context.Context, bins []FullBin, fullPct float64, now time.Time, lookback time.Duration, ask FullSinceFunc) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if len(bins) == 0 {
		return out, nil
	}
	to := now.UnixMilli()                                                                           // reports with time <= now
	from := (now.Add(-lookback).UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond) // >= now - lookback
	// The bins' reports first, then where memory starts (trim moves the
	// start before it drops reports).
	views := make([]view, len(bins))
	skip := make([]bool, len(bins))
	t.x.mu.RLock()
	for i, b := range bins {
		s := t.x.bins[binKey{b.Outlet, b.Device}]
		if s == nil || t.x.outlets[b.Device] > 1 {
			skip[i] = true
			continue
		}
		views[i] = s.view()
	}
	t.x.mu.RUnlock()
	t.mu.Lock()
	ready, covered := t.ready, t.coveredFrom
	t.mu.Unlock()
	if !ready || fullPct != t.cfg.Options.FullPct {
		return t.askAll(ctx, bins, fullPct, now, lookback, ask, "store")
	}
	var (
		rest   []FullBin // asked of InfluxDB
		long   []pending // full since before memory: kept answers, or InfluxDB
		lag    []pending // memory is behind the caller's states: read the tail
		counts = map[string]int{}
	)
	runs := make([]pending, len(bins))
	for i, b := range bins {
		runs[i].b = b
		if skip[i] {
			runs[i].run.kind = runUnknown
			continue
		}
		runs[i].run = views[i].fullRun(from, to, covered, fullPct)
	}
	for _, p := range runs {
		switch {
		case p.run.kind == runUnknown:
			rest = append(rest, p.b)
		case p.run.newest < min(p.b.Last.UnixMilli(), to):
			lag = append(lag, p)
		case p.run.kind == runSince:
			out[p.b.Device] = time.UnixMilli(p.run.since).UTC()
			counts["memory"]++
		case p.run.kind == runLong:
			long = append(long, p)
		default: // runNone: no answer, as InfluxDB's
			counts["memory"]++
		}
	}
	if len(lag) > 0 {
		tails, err := t.tails(ctx, lag, fullPct, from, to)
		if err != nil {
			return nil, err
		}
		for _, p := range lag {
			tail := tails[p.b.Device]
			if tail == nil {
				// The tail read found nothing newer: memory is not
				// behind after all (the states' last report is
				// outside the range, or was not found).
				tail = []tailReport{}
			}
			last := -1
			for j, r := range tail {
				if r.below {
					last = j
				}
			}
			counts["tail"]++
			switch {
			case last >= 0:
				if last+1 < len(tail) {
					out[p.b.Device] = time.UnixMilli(tail[last+1].t).UTC()
				}
			case p.run.kind == runSince:
				out[p.b.Device] = time.UnixMilli(p.run.since).UTC()
			case p.run.kind == runNone:
				if len(tail) > 0 {
					out[p.b.Device] = time.UnixMilli(tail[0].t).UTC()
				}
			default: // runLong, still full: as a long run
				counts["tail"]--
				long = append(long, p)
			}
		}
	}
	if len(long) > 0 {
		t.full.mu.Lock()
		for _, p := range long {
			k := binKey{p.b.Outlet, p.b.Device}
			lf, ok := t.full.m[k]
			// Kept while memory reaches back to the read that gave it
			// and shows the bin full ever since (runLong), for the same
			// lookback and a now no earlier than the read's, while it is
			// inside the lookback: the first report after
			// the last below, or (the run reaching past the lookback)
			// the first in it, stays the first as the lookback moves on.
			if ok && lf.lookback == lookback && lf.read >= covered && lf.read <= to && lf.since >= from && lf.since <= to {
				out[p.b.Device] = time.UnixMilli(lf.since).UTC()
				counts["kept"]++
				continue
			}
			delete(t.full.m, k)
			rest = append(rest, p.b)
		}
		t.full.mu.Unlock()
	}
	if len(rest) > 0 {
		got, err := t.askAll(ctx, rest, fullPct, now, lookback, ask, "")
		if err != nil {
			return nil, err
		}
		counts["store"] += len(rest)
		t.full.mu.Lock()
		if t.full.m == nil {
			t.full.m = map[binKey]longFull{}
		}
		for _, p := range long {
			if s, ok := got[p.b.Device]; ok {
				t.full.m[binKey{p.b.Outlet, p.b.Device}] = longFull{since: s.UnixMilli(), read: to, lookback: lookback}
			}
		}
		t.full.mu.Unlock()
		for d, s := range got {
			out[d] = s
		}
	}
	for src, n := range counts {
		t.fullAnswers.WithLabelValues(src).Add(float64(n))
	}
	return out, nil
}

// askAll asks InfluxDB for every bin (counted under src when not empty).
func (t *Tracker) askAll(ctx context.Context, bins []FullBin, fullPct float64, now time.Time, lookback time.Duration, ask FullSinceFunc, src string) (map[string]time.Time, error) {
	devices := make([]string, len(bins))
	for i, b := range bins {
		devices[i] = b.Device
	}
	slices.Sort(devices)
	devices = slices.Compact(devices)
	out, err := ask(ctx, devices, fullPct, now, lookback)
	if err != nil {
		return nil, err
	}
	if src != "" {
		t.fullAnswers.WithLabelValues(src).Add(float64(len(bins)))
	}
	return out, nil
}

// tails reads the reports of the lagging bins newer than memory's newest
// of each, up to `to` (ms), by device: in time order, a time being below
// when any report at it is (two boots at once), as InfluxDB's "last report
// below" takes it.
func (t *Tracker) tails(ctx context.Context, lag []pending, full float64, from, to int64) (map[string][]tailReport, error) {
	after := map[string]int64{} // device: memory's newest
	var outlets []string
	start := to
	for _, p := range lag {
		after[p.b.Device] = p.run.newest
		outlets = append(outlets, p.b.Outlet)
		start = min(start, p.run.newest+1)
	}
	start = max(start, from)
	slices.Sort(outlets)
	outlets = slices.Compact(outlets)
	got := map[string][]tailReport{}
	began := time.Now()
	var err error
	// A few outlets per read: a read naming its outlets costs InfluxDB
	// their series only; one of every outlet costs every series of the
	// city, however short (internal/store reads every outlet above 64).
	for c := range slices.Chunk(outlets, tailOutlets) {
		err = t.cfg.Source.BinReports(ctx, time.UnixMilli(start), time.UnixMilli(to+1), c, func(_, device string, _, ts int64, pct float64) error {
			if n, ok := after[device]; ok && ts > n && ts >= from && ts <= to {
				got[device] = append(got[device], tailReport{t: ts, below: pct < full})
			}
			return nil
		})
		if err != nil {
			break
		}
	}
	t.seconds.WithLabelValues("tail").Observe(time.Since(began).Seconds())
	if err != nil {
		t.reads.WithLabelValues("tail", "error").Inc()
		return nil, fmt.Errorf("bin reports newer than memory: %w", err)
	}
	t.reads.WithLabelValues("tail", "ok").Inc()
	for d, rs := range got {
		slices.SortStableFunc(rs, func(a, b tailReport) int { return cmp.Compare(a.t, b.t) })
		// One entry per time, below when any report at it is.
		w := 0
		for _, r := range rs {
			if w > 0 && rs[w-1].t == r.t {
				rs[w-1].below = rs[w-1].below || r.below
				continue
			}
			rs[w] = r
			w++
		}
		got[d] = rs[:w]
	}
	return got, nil
}
