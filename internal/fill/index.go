package fill

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// index holds bins' reports in memory, compactly: the days more than
// HotDays back as compact chunks (compact.go, ~4 bytes a report), the rest
// per bin as a base time and, per report, its offset from it (uint32 ms:
// 49 days) and its reading as a float32 — 8 bytes a report. Readings pass
// through float32 on every path (the raw path too), so an answer does not
// depend on where its reports came from.
//
// Report slices are copy-on-write: a reader takes a bin's slices under the
// read lock and may use them after it, because a writer never changes an
// array a reader may hold; it builds new ones and swaps them in. The
// writers (merge, trim, compact) run in one goroutine, the tracker's:
// compact relies on it to encode without the lock.
type index struct {
	o Options

	mu   sync.RWMutex
	bins map[binKey]*series
	// sorted is bins in outlet and device order, nil when a bin came or
	// went since it was made (views makes it again, under the write lock).
	sorted []*series
	// outlets counts, per device, the outlets it has reports under (one
	// bin is an outlet and a device; InfluxDB's "full since" takes every
	// series of a device as one).
	outlets map[string]int
}

type binKey struct{ outlet, device string }

type series struct {
	key binKey
	// old: the compact days, oldest first, all before the hot reports;
	// oldN reports in all.
	old  []chunk
	oldN int
	// The hot reports.
	base int64    // ms
	off  []uint32 // ms since base, strictly ascending
	pct  []float32
	// below: the index of the last report below FullPct (-1: none) in the
	// reports of one generation, worked out by the first "full since"
	// that needs it (fullsince.go), so a bin full for days is not scanned
	// by every request.
	below atomic.Pointer[belowMemo]
	// mixed: times (ms, ascending) at which two boots reported at once, one
	// below FullPct and one not; the index keeps only the later boot's, so
	// "full since" is not answered from memory over them.
	mixed []int64

	// gen counts changes of the reports: a profile learned from an older
	// generation is not kept.
	gen atomic.Uint64
	// Profiles learned for day starts, dropped when reports they rest on
	// change. Guarded by its own lock: requests fill it while they only
	// hold the index's read lock.
	pmu      sync.Mutex
	profiles map[int64]*Profile
	// fit: the bin's last cycle fit (view.predict), for the reports and
	// the profile it was made from.
	fit atomic.Pointer[fitMemo]
}

// fitMemo is a cycle fit (model.go) with what it was made from: the
// reports of one generation that a time `at` in [aMin, aMax) looks at, and
// the day's profile. The fit depends on nothing else, so a request with
// the same three takes it as it is, without searching for the reports: a
// city's list then fits each bin's 48 hours once per new report rather
// than once per request.
type fitMemo struct {
	gen        uint64
	aMin, aMax int64
	prof       *Profile
	fit        *cycleFit
}

func newIndex(o Options) *index {
	return &index{o: o.withDefaults(), bins: map[binKey]*series{}, outlets: map[string]int{}}
}

// pct32 is a reading as the index keeps it: as a float32, on the same side
// of full as the reading itself (a float32 may round 89.9999999 up to 90),
// so that "at or above FullPct" is the same question in memory as in
// InfluxDB.
func pct32(v, full float64) float32 {
	p := float32(v)
	switch {
	case v < full && float64(p) >= full:
		p = math.Nextafter32(p, float32(math.Inf(-1)))
	case v >= full && float64(p) < full:
		p = math.Nextafter32(p, float32(math.Inf(1)))
	}
	return p
}

// view is one bin's reports as a reader took them. Report i is the i-th
// of the compact days' reports and then of the hot ones.
type view struct {
	s     *series
	gen   uint64
	old   []chunk
	oldN  int
	base  int64
	off   []uint32
	pct   []float32
	mixed []int64
	dec   *decoded // old, decoded by the first reader that needs it
}

func (v *view) len() int { return v.oldN + len(v.off) }

// t is report i's time (ms).
func (v *view) t(i int) int64 {
	switch {
	case i >= v.oldN:
		return v.base + int64(v.off[i-v.oldN])
	case i == v.oldN-1:
		return v.old[len(v.old)-1].last
	}
	return v.cold().t[i]
}

// p is report i's reading.
func (v *view) p(i int) float32 {
	switch {
	case i >= v.oldN:
		return v.pct[i-v.oldN]
	case i == v.oldN-1:
		return v.old[len(v.old)-1].lastPct
	}
	return v.cold().p[i]
}

func (v *view) at(i int) Report { return Report{T: v.t(i), Pct: float64(v.p(i))} }

// cold decodes the compact days, once per view.
func (v *view) cold() *decoded {
	if v.dec == nil {
		d := &decoded{t: make([]int64, 0, v.oldN), p: make([]float32, 0, v.oldN)}
		for i := range v.old {
			d.t, d.p = v.old[i].decode(d.t, d.p)
		}
		v.dec = d
	}
	return v.dec
}

// search returns the first index with time >= t.
func (v *view) search(t int64) int {
	if v.oldN > 0 && t <= v.old[len(v.old)-1].last {
		if t <= v.old[0].first {
			return 0
		}
		i, _ := slices.BinarySearch(v.cold().t, t)
		return i
	}
	return v.oldN + searchOff(v.base, v.off, t)
}

// between decodes the reports [lo, hi) into buf.
func (v *view) between(buf []Report, lo, hi int) []Report {
	buf = buf[:0]
	for i := lo; i < hi; i++ {
		buf = append(buf, v.at(i))
	}
	return buf
}

// predict is predict (model.go) on the view's reports in [at − Cycle, at]
// and the one before them, with the cycle fitted only when those reports
// or the day's profile p are not the ones of the bin's last fit.
func (v *view) predict(p *Profile, at int64, ahead time.Duration, o Options, buf *[]Report, sc *scratch) Prediction {
	if m := v.s.fit.Load(); m != nil && m.gen == v.gen && m.aMin <= at && at < m.aMax && m.prof == p {
		return m.fit.predict(p, at, ahead, o)
	}
	c := o.Cycle.Milliseconds()
	hi := v.search(at + 1)
	lo := min(v.search(at-c), hi)
	if lo == hi {
		if lo == 0 {
			return noCycle(nil, at, o)
		}
		before := v.at(lo - 1)
		return noCycle(&before, at, o)
	}
	// The times at which the same search would find lo and hi: after the
	// report before hi, before the one at hi; and lo's reports Cycle on.
	m := &fitMemo{gen: v.gen, aMin: v.t(hi - 1), aMax: math.MaxInt64, prof: p}
	if hi < v.len() {
		m.aMax = min(m.aMax, v.t(hi))
	}
	if lo > 0 {
		m.aMin = max(m.aMin, v.t(lo-1)+c+1)
	}
	m.aMax = min(m.aMax, v.t(lo)+c+1)
	*buf = v.between(*buf, lo, hi)
	m.fit = fitCycle(p, *buf, o, sc)
	v.s.fit.Store(m)
	return m.fit.predict(p, at, ahead, o)
}

// reports decodes the reports with from <= T < to into buf, and the
// `before` reports before from.
func (v *view) reports(buf []Report, from, to int64, before int) []Report {
	buf = buf[:0]
	for i := max(0, v.search(from)-before); i < v.len() && v.t(i) < to; i++ {
		buf = append(buf, v.at(i))
	}
	return buf
}

// views returns every bin of the given outlets (all when outlets is nil),
// in outlet and device order.
func (x *index) views(outlets map[string]bool) []view {
	x.mu.RLock()
	if x.sorted != nil {
		defer x.mu.RUnlock()
		return x.viewsLocked(outlets)
	}
	x.mu.RUnlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sorted == nil {
		// Sorting 20,000 bins took a tenth of a city list's CPU: sort
		// once per change of the set of bins instead.
		sorted := make([]*series, 0, len(x.bins))
		for _, s := range x.bins {
			sorted = append(sorted, s)
		}
		slices.SortFunc(sorted, func(a, b *series) int {
			return cmp.Or(cmp.Compare(a.key.outlet, b.key.outlet), cmp.Compare(a.key.device, b.key.device))
		})
		x.sorted = sorted
	}
	return x.viewsLocked(outlets)
}

// viewsLocked is views once sorted is made; the caller holds the lock.
func (x *index) viewsLocked(outlets map[string]bool) []view {
	out := make([]view, 0, len(x.sorted))
	for _, s := range x.sorted {
		if outlets != nil && !outlets[s.key.outlet] {
			continue
		}
		out = append(out, s.view())
	}
	return out
}

// view takes the series' slices; the caller holds the index's lock.
func (s *series) view() view {
	return view{s: s, gen: s.gen.Load(), old: s.old, oldN: s.oldN, base: s.base, off: s.off, pct: s.pct, mixed: s.mixed}
}

// binReports are one bin's reports from a read, sorted by time.
type binReports struct {
	key binKey
	rs  []Report
}

// merge writes reports into the index: a report with the time of one already
// there replaces it (InfluxDB does the same with a point written twice).
// It returns how many reports were new or changed.
func (x *index) merge(in []binReports) int {
	changed := 0
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, b := range in {
		if len(b.rs) == 0 {
			continue
		}
		s := x.bins[b.key]
		if s == nil {
			s = &series{key: b.key, base: b.rs[0].T}
			x.bins[b.key] = s
			x.sorted = nil
			x.outlets[b.key.device]++
		}
		n, first := s.mergeLocked(b.rs, x.o.FullPct)
		if n > 0 {
			changed += n
			s.forget(first, x.o)
		}
	}
	return changed
}

// mergeLocked builds the bin's new slices from the old ones and rs; it
// returns how many reports were new or changed and the earliest of them.
// A read that changes nothing (the tracker reads most reports again: its
// polls' margin, its rechecks) leaves the slices as they are: rebuilding
// 9 days of a bin's reports for nothing cost ~20 KB a bin and a read.
func (s *series) mergeLocked(rs []Report, full float64) (int, int64) {
	if s.holds(rs, full) {
		return 0, 0
	}
	if s.oldN > 0 && rs[0].T <= s.old[len(s.old)-1].last {
		// Into a compact day (a report stored days late): rarely enough
		// that every report turns hot until the next compact.
		s.thawLocked()
	}
	base := min(s.base, rs[0].T)
	if len(s.off) == 0 {
		base = rs[0].T
	}
	off := make([]uint32, 0, len(s.off)+len(rs))
	pct := make([]float32, 0, len(s.off)+len(rs))
	changed, first := 0, int64(0)
	note := func(t int64) {
		if changed == 0 || t < first {
			first = t
		}
		changed++
	}
	i, j := 0, 0
	for i < len(s.off) || j < len(rs) {
		var t int64
		var p float32
		switch {
		case j == len(rs) || (i < len(s.off) && s.base+int64(s.off[i]) < rs[j].T):
			t, p = s.base+int64(s.off[i]), s.pct[i]
			i++
		case i == len(s.off) || rs[j].T < s.base+int64(s.off[i]):
			t, p = rs[j].T, pct32(rs[j].Pct, full)
			note(t)
			j++
		default: // the same time: the read wins
			t, p = rs[j].T, pct32(rs[j].Pct, full)
			if p != s.pct[i] {
				note(t)
			}
			i++
			j++
		}
		// Two reports of one read at the same time (two boots): the later
		// one is the one kept.
		if n := len(off); n > 0 && base+int64(off[n-1]) == t {
			if (float64(pct[n-1]) >= full) != (float64(p) >= full) {
				if k, found := slices.BinarySearch(s.mixed, t); !found {
					// A new array: readers may hold the old one.
					s.mixed = slices.Insert(slices.Clip(s.mixed), k, t)
				}
			}
			pct[n-1] = p
			continue
		}
		if t-base > int64(^uint32(0)) {
			// Beyond 49 days of the base: the trim moves the base on long
			// before that; a report so far ahead is not kept.
			continue
		}
		off = append(off, uint32(t-base))
		pct = append(pct, p)
	}
	if changed > 0 || base != s.base {
		s.base, s.off, s.pct = base, off, pct
		s.gen.Add(1)
	}
	return changed, first
}

// holds reports whether the bin already has every report of rs (in time
// order) at its time with its reading, so that merging rs would change
// nothing. Two reports of rs at one time (two boots) make it answer false:
// the merge decides those.
func (s *series) holds(rs []Report, full float64) bool {
	if s.oldN > 0 && rs[0].T <= s.old[len(s.old)-1].last {
		// Reaching into the compact days (a late hour read again):
		// report by report, through a view.
		v := s.view()
		for j, r := range rs {
			if j > 0 && r.T <= rs[j-1].T {
				return false
			}
			i := v.search(r.T)
			if i == v.len() || v.t(i) != r.T || v.p(i) != pct32(r.Pct, full) {
				return false
			}
		}
		return true
	}
	if len(s.off) == 0 || rs[0].T < s.base {
		return false
	}
	i := 0
	for j, r := range rs {
		if j > 0 && r.T <= rs[j-1].T {
			return false // a time twice, or out of order: the merge's job
		}
		d := r.T - s.base
		if d > int64(^uint32(0)) {
			return false
		}
		k, found := slices.BinarySearch(s.off[i:], uint32(d))
		if i += k; !found || s.pct[i] != pct32(r.Pct, full) {
			return false
		}
	}
	return true
}

// forget drops the profiles that rest on reports at or after t: those of
// the days whose history window holds t.
func (s *series) forget(t int64, o Options) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for day := range s.profiles {
		if o.ProfileStart(day) <= t && t < day {
			delete(s.profiles, day)
		}
	}
}

// trim drops reports before t (and bins left without any), moving each
// base forward so offsets keep their range.
func (x *index) trim(t int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, s := range x.bins {
		if s.oldN > 0 {
			if s.trimOld(t) {
				s.gen.Add(1)
				s.trimProfiles(t)
			}
			if s.oldN > 0 {
				s.trimMixed(t)
				continue
			}
		}
		i := searchOff(s.base, s.off, t)
		if i == len(s.off) {
			delete(x.bins, k)
			x.sorted = nil
			if x.outlets[k.device]--; x.outlets[k.device] <= 0 {
				delete(x.outlets, k.device)
			}
			continue
		}
		s.trimMixed(t)
		if i == 0 {
			continue
		}
		s.base, s.off, s.pct = dropFirst(s.base, s.off, s.pct, i)
		s.gen.Add(1)
		s.trimProfiles(t)
	}
}

// trimMixed drops the two-boot times before t.
func (s *series) trimMixed(t int64) {
	if len(s.mixed) > 0 && s.mixed[0] < t {
		j, _ := slices.BinarySearch(s.mixed, t)
		s.mixed = slices.Clone(s.mixed[j:])
	}
}

// trimProfiles drops the profiles of days before t.
func (s *series) trimProfiles(t int64) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for day := range s.profiles {
		if day < t {
			delete(s.profiles, day)
		}
	}
}

// stats returns the number of bins and reports held, and the bytes the
// reports take.
func (x *index) stats() (bins, reports, bytes int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, s := range x.bins {
		reports += s.oldN + len(s.off)
		bytes += s.bytes()
	}
	return len(x.bins), reports, bytes
}

// Bin is one bin's prediction.
type Bin struct {
	Outlet, Device string
	Prediction
}

// judge predicts every bin in views at `at` with the look-ahead ahead.
// Quiet bins are left out.
func (x *index) judge(vs []view, at int64, ahead time.Duration) []Bin {
	out := make([]Bin, 0, len(vs)) // room for every bin: a city's are 20,000
	day := DayStart(at)
	var buf []Report
	var sc scratch
	for i := range vs {
		v := &vs[i]
		p := v.profile(day, x.o, &buf)
		pr := v.predict(p, at, ahead, x.o, &buf, &sc)
		if pr.State == Quiet {
			continue
		}
		out = append(out, Bin{Outlet: v.s.key.outlet, Device: v.s.key.device, Prediction: pr})
	}
	return out
}

// profile returns the bin's curve for the day starting at day, learning it
// from the view's reports the first time it is asked for.
func (v *view) profile(day int64, o Options, buf *[]Report) *Profile {
	s := v.s
	s.pmu.Lock()
	p, ok := s.profiles[day]
	s.pmu.Unlock()
	if ok {
		return p
	}
	*buf = v.reports(*buf, o.ProfileStart(day), day, 0)
	lp := Learn(*buf, day, o)
	p = &lp
	s.pmu.Lock()
	// Kept only if no merge came in between (it would have dropped it).
	if s.gen.Load() == v.gen {
		if s.profiles == nil {
			s.profiles = map[int64]*Profile{}
		}
		s.profiles[day] = p
	}
	s.pmu.Unlock()
	return p
}
