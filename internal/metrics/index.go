package metrics

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	hourNS = int64(time.Hour)
	dayNS  = 24 * hourNS
)

// snapshot is one immutable state of the in-memory roll-up. Requests read
// a snapshot without locks while the worker builds the next one; a new
// snapshot shares every day block that did not change.
type snapshot struct {
	base    int64 // ns, UTC midnight: days[0] of every outlet starts here
	r0, r1  int64 // the closed hours [r0, r1) are rolled up (whole hours)
	p       int64 // partial summaries cover [r1, p) (whole minutes); p == r1 when none
	outlets map[string]*outletHist
	// nOut numbers the outlets: each outletHist has a number below it,
	// kept for the index's life (what was combined for an outlet is kept
	// in arrays by that number, runs.go).
	nOut    int
	partial map[string]*summary
	ready   bool // the first load is done: requests may use it
	// gen changes whenever a closed hour or the rolled range changes (not
	// when only the partial hour does): what was combined from the hours
	// of one generation holds for every snapshot of that generation.
	gen uint64
	// pgen changes whenever the partial summaries are replaced (every
	// cycle): a head that applied them holds for this pgen only.
	pgen uint64
	// names holds one string per device name of the index (read-only).
	names map[string]string
	// compactTo: every complete day that ends at or before it is compact
	// (compact.go).
	compactTo int64
	// compacted lists the day blocks that the update which made this
	// snapshot compacted: the worker persists them as day rows (dayrows.go).
	compacted []odKey
	// byName: the outlets in name order, made by the first request that
	// needs them (hists).
	byName      sync.Once
	outletNames []string
	namedHists  []*outletHist
}

// hists returns the history of each outlet of ids (nil: none). A city's
// ids come sorted (the registry's order): they are walked beside the
// snapshot's sorted names, which reads memory in order where a look-up per
// outlet hashed each id and missed the cache on each.
func (s *snapshot) hists(ids []string) []*outletHist {
	out := make([]*outletHist, len(ids))
	if len(ids) < 64 || !slices.IsSorted(ids) {
		for i, id := range ids {
			out[i] = s.outlets[id]
		}
		return out
	}
	s.byName.Do(func() {
		s.outletNames = slices.Sorted(maps.Keys(s.outlets))
		s.namedHists = make([]*outletHist, len(s.outletNames))
		for i, n := range s.outletNames {
			s.namedHists[i] = s.outlets[n]
		}
	})
	j := 0
	for i, id := range ids {
		for j < len(s.outletNames) && s.outletNames[j] < id {
			j++
		}
		if j < len(s.outletNames) && s.outletNames[j] == id {
			out[i] = s.namedHists[j]
		}
	}
	return out
}

// outletHist is one outlet's hours, day by day from snapshot.base.
type outletHist struct {
	days []*dayBlock
	num  int // the outlet's number (snapshot.nOut)
}

// dayBlock is one outlet's day: the encoded summary of each hour, back to
// back in one buffer (24 slices would cost more than the data), and, once
// every hour of the day is rolled, the day's summary decoded, so that a
// 30-day window combines 30 days and not 720 hours.
type dayBlock struct {
	data []byte
	off  *[25]uint32 // hour i is data[off[i]:off[i+1]]; empty: no data that hour (nil when compact)
	// sum is the day's summary, encoded (codec.go) once every hour of the
	// day is in [r0, r1), else nil: decoded when used (a run combines it
	// once per generation, runs.go), it costs a fifth of the decoded form.
	sum []byte
	// z holds the hours of a compact day (compact.go), or cold says where
	// they are on disk (cold.go); data and off are then empty: open the
	// block (opener) to read its hours.
	z    []byte
	cold *coldRef
}

// isCompact reports whether the block holds its hours compact (in z or
// cold), to be opened to read them.
func (b *dayBlock) isCompact() bool { return b.z != nil || b.cold != nil }

// compactHours returns a compact block's deflated hours.
func (b *dayBlock) compactHours() ([]byte, error) {
	if b.cold != nil {
		return b.cold.read()
	}
	return b.z, nil
}

// hour returns the encoded summary of hour i of the day (nil: no data).
// The block must not be compact (see opener).
func (b *dayBlock) hour(i int) []byte {
	if b.off[i] == b.off[i+1] {
		return nil
	}
	return b.data[b.off[i]:b.off[i+1]:b.off[i+1]]
}

// packDay builds a day block from its hours (nil: no data).
func packDay(hours *[24][]byte) *dayBlock {
	n := 0
	for _, h := range hours {
		n += len(h)
	}
	b := &dayBlock{data: make([]byte, 0, n), off: new([25]uint32)}
	for i, h := range hours {
		b.off[i] = uint32(len(b.data))
		b.data = append(b.data, h...)
	}
	b.off[24] = uint32(len(b.data))
	return b
}

func (s *snapshot) block(outlet string, day int64) *dayBlock {
	h := s.outlets[outlet]
	if h == nil || day < s.base {
		return nil
	}
	i := (day - s.base) / dayNS
	if i >= int64(len(h.days)) {
		return nil
	}
	return h.days[i]
}

// dayComplete reports whether every hour of the day is rolled up.
func (s *snapshot) dayComplete(day int64) bool { return day >= s.r0 && day+dayNS <= s.r1 }

// index holds the current snapshot.
type index struct {
	cur atomic.Pointer[snapshot]
	mu  sync.Mutex // serializes writers
	// keep: complete days that end more than keep before r1 are compact
	// (compact.go); negative: every complete day.
	keep int64
	// cold, when set, keeps the compact days' hours on disk (cold.go).
	cold *coldStore
	// readyCh closes when the first snapshot marked ready is stored.
	readyCh   chan struct{}
	readyOnce sync.Once
}

// newIndex makes an empty index; see index.keep.
func newIndex(keep time.Duration) *index {
	ix := &index{readyCh: make(chan struct{}), keep: int64(keep)}
	ix.cur.Store(&snapshot{outlets: map[string]*outletHist{}, partial: map[string]*summary{}})
	return ix
}

func (ix *index) load() *snapshot { return ix.cur.Load() }

// hourUpdate sets one outlet's hour: data nil means no data.
type hourUpdate struct {
	outlet string
	hour   int64
	data   []byte
}

// dayUpdate sets one outlet's whole day from a compact block (a day row,
// dayrows.go): its hours deflated and its day summary.
type dayUpdate struct {
	outlet string
	day    int64
	block  *dayBlock
}

// update is one change of the index, applied as a whole.
type update struct {
	hours   []hourUpdate
	days    []dayUpdate
	r0, r1  int64 // new range (r0 may move back when building, forward when pruning)
	p       int64
	partial map[string]*summary // replaces the partial summaries when non-nil
	ready   bool
}

// apply builds and stores the next snapshot. Outlets and day blocks that
// do not change are shared with the old snapshot (requests may be reading
// it); the rest are copied before they are written. Day summaries are
// computed for the days that changed or just became complete.
func (ix *index) apply(u update) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	old := ix.load()
	next := &snapshot{
		r0: u.r0, r1: u.r1, p: u.p,
		outlets: make(map[string]*outletHist, len(old.outlets)),
		partial: old.partial,
		ready:   old.ready || u.ready,
		names:   old.names,
		nOut:    old.nOut,
		gen:     old.gen,
		pgen:    old.pgen,
		// Days before old.compactTo are compact already; newer ones that
		// have aged past keep are compacted below.
		compactTo: old.compactTo,
	}
	if len(u.hours) > 0 || len(u.days) > 0 || u.r0 != old.r0 || u.r1 != old.r1 {
		next.gen++
	}
	if u.partial != nil {
		next.partial = u.partial
		next.pgen++
	}
	// Names new to the index go to a copy of the table (requests read the
	// old one); the day summaries below then share its strings.
	in := &interner{shared: old.names, local: map[string]string{}}
	var tmp summary
	for _, hu := range u.hours {
		if hu.data != nil {
			if err := decodeSummary(&tmp, hu.data, hu.hour, in); err != nil {
				return err
			}
		}
	}
	for _, du := range u.days { // their day summary names every device of the day
		if err := decodeSummary(&tmp, du.block.sum, du.day, in); err != nil {
			return err
		}
	}
	for _, ps := range u.partial { // new, not yet seen by any request
		for i := range ps.series {
			ps.series[i].device = in.get([]byte(ps.series[i].device))
		}
		for i := range ps.bins {
			ps.bins[i].device = in.get([]byte(ps.bins[i].device))
		}
	}
	if len(in.local) > 0 {
		names := make(map[string]string, len(old.names)+len(in.local))
		for k, v := range old.names {
			names[k] = v
		}
		for k, v := range in.local {
			names[k] = v
		}
		next.names = names
	}
	in = &interner{shared: next.names}
	next.base = floorDiv(u.r0, dayNS) * dayNS
	nDays := 0
	if u.r1 > u.r0 {
		nDays = int((floorDiv(u.r1-1, dayNS)*dayNS-next.base)/dayNS) + 1
	}
	copied := map[string]bool{}
	for o, h := range old.outlets {
		if next.base == old.base && len(h.days) == nDays {
			next.outlets[o] = h
			continue
		}
		next.outlets[o] = rebase(h, old.base, next.base, nDays)
		copied[o] = true
	}
	hist := func(o string) *outletHist {
		h := next.outlets[o]
		switch {
		case h == nil:
			h = &outletHist{days: make([]*dayBlock, nDays), num: next.nOut}
			next.nOut++
		case !copied[o]:
			h = &outletHist{days: append([]*dayBlock(nil), h.days...), num: h.num}
		default:
			return h
		}
		next.outlets[o] = h
		copied[o] = true
		return h
	}
	ix.cold.forget(next.base)
	var loaded []blockAt
	for _, du := range u.days {
		if !next.dayComplete(du.day) || !du.block.isCompact() || du.block.sum == nil {
			continue // only complete days come as day rows
		}
		h := hist(du.outlet)
		i := int((du.day - next.base) / dayNS)
		h.days[i] = du.block
		loaded = append(loaded, blockAt{&h.days[i], du.day})
	}
	ix.cold.spillAll(loaded)
	touched := map[odKey]bool{}
	unpacked := map[odKey]*[24][]byte{}
	var op opener
	for _, hu := range u.hours {
		if hu.hour < u.r0 || hu.hour >= u.r1 {
			continue
		}
		day := floorDiv(hu.hour, dayNS) * dayNS
		k := odKey{hu.outlet, day}
		hours := unpacked[k]
		if hours == nil {
			hours = new([24][]byte)
			b, err := op.open(next.block(hu.outlet, day))
			if err != nil {
				return err
			}
			if b != nil {
				for i := range hours {
					hours[i] = b.hour(i)
				}
			}
			unpacked[k] = hours
			touched[k] = true
		}
		hours[(hu.hour-day)/hourNS] = hu.data
	}
	for k, hours := range unpacked {
		hist(k.outlet).days[int((k.day-next.base)/dayNS)] = packDay(hours)
	}
	// Days whose completeness changed, for every outlet with data then.
	for day := next.base; day < next.base+int64(nDays)*dayNS; day += dayNS {
		if next.dayComplete(day) == old.dayComplete(day) {
			continue
		}
		for o := range next.outlets {
			// A compact block of a complete day has its summary already.
			if b := next.block(o, day); b != nil && (!b.isCompact() || !next.dayComplete(day)) {
				touched[odKey{o, day}] = true
			}
		}
	}
	for k := range touched {
		h := hist(k.outlet)
		i := int((k.day - next.base) / dayNS)
		b, err := op.open(h.days[i])
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		nb := *b
		nb.sum = nil
		if next.dayComplete(k.day) {
			sum, err := daySummary(&nb, k.day, in)
			if err != nil {
				return err
			}
			nb.sum = appendSummary(nil, sum, k.day)
		}
		h.days[i] = &nb
	}
	// Compact the days that have aged past keep, and the old days this
	// update wrote (the build going back in time, late data).
	next.compactTo = floorDiv(next.r1-ix.keep, dayNS) * dayNS
	if ix.keep < 0 {
		next.compactTo = next.r1
	}
	var todo []blockAt
	want := func(o string, day int64) {
		if !next.dayComplete(day) || day+dayNS > next.compactTo {
			return
		}
		i := int((day - next.base) / dayNS)
		if i < 0 || i >= nDays {
			return
		}
		if b := next.outlets[o].days[i]; b != nil && !b.isCompact() {
			todo = append(todo, blockAt{&hist(o).days[i], day})
			next.compacted = append(next.compacted, odKey{o, day})
		}
	}
	for k := range touched {
		want(k.outlet, k.day)
	}
	for day := max(old.compactTo, next.base); day < next.compactTo; day += dayNS {
		for o := range next.outlets {
			if !touched[odKey{o, day}] {
				want(o, day)
			}
		}
	}
	if err := compactAll(todo); err != nil {
		return err
	}
	ix.cold.spillAll(todo)
	ix.cur.Store(next)
	if next.ready {
		ix.readyOnce.Do(func() { close(ix.readyCh) })
	}
	return nil
}

// odKey names one outlet's day.
type odKey struct {
	outlet string
	day    int64
}

// rebase returns h with its days re-indexed from newBase, nDays long.
func rebase(h *outletHist, oldBase, newBase int64, nDays int) *outletHist {
	out := &outletHist{days: make([]*dayBlock, nDays), num: h.num}
	shift := int((oldBase - newBase) / dayNS)
	for i, b := range h.days {
		j := i + shift
		if j >= 0 && j < nDays {
			out.days[j] = b
		}
	}
	return out
}

// daySummary combines the 24 hours of a day block.
func daySummary(b *dayBlock, day int64, in *interner) (*summary, error) {
	sum := &summary{}
	var tmp summary
	for i := 0; i < 24; i++ {
		data := b.hour(i)
		if data == nil {
			continue
		}
		if err := decodeSummary(&tmp, data, day+int64(i)*hourNS, in); err != nil {
			return nil, err
		}
		sum.combine(&tmp)
	}
	return sum, nil
}

// memoryBytes estimates the index's size, for the roll-up's gauge.
func (s *snapshot) memoryBytes() int64 {
	var n int64
	for o, h := range s.outlets {
		n += int64(len(o)) + 64 + int64(len(h.days))*8
		for _, b := range h.days {
			if b == nil {
				continue
			}
			n += 80 + int64(cap(b.data))
			if b.off != nil {
				n += 112
			}
			n += int64(cap(b.sum)) + int64(cap(b.z))
			if b.cold != nil {
				n += 32 // the data is on disk
			}
		}
	}
	return n
}
