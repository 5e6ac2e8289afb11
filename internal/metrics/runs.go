package metrics

import (
	"slices"
	"sync"
	"sync/atomic"
)

// A window's whole pieces (days and hours) come in at most two runs: the
// look-back before from, and the inside from the first whole hour to the
// last rolled one. Combined once per outlet (summaries combine exactly,
// summary.go), a run is one summary to apply instead of some 30 days and
// 46 hours to decode and apply; every request whose window cuts the same
// hours — "the last 30 days" all through an hour, every question over the
// same period — then does per outlet a few applies and its raw edges.
//
// The combinations are keyed by the index's generation (bumped whenever a
// closed hour changes, late data included) and the run's span, so an
// answer from them is exactly the answer from the pieces.
//
// The state of an outlet's evaluation after a window's stable pieces (all
// but the newest minutes, the raw data read live) is kept too, as a head:
// every request of the generation that shares the window's from and the
// stable pieces' end then starts from it and applies only the newest
// minutes. A head that applied the partial hour's summaries is kept for
// those summaries only (snapshot.pgen, new every cycle), made from the
// head before them, which lives as long as the generation (acc.fromHead).
// The stable pieces include the raw
// pieces cut from the closed hour the window starts in ("the last 30
// days" asked all through a minute cuts the same ones). Their summary
// depends on the hour's raw data, which the generation covers (the raw
// cache is invalidated before a changed hour's generation is published),
// and on the devices' last reports before the piece, which the window's
// 24-hour look-back makes a matter of the data alone (no report older
// than the staleness decides a minute). Raw pieces of the newest minutes
// (read live) are never kept: their data grows. Nothing of a head is
// copied into a request until a newer piece changes it: its counter series
// (a month holds one for every boot of every device) count as their sum
// and one is copied when a newer piece adds to it (acc.seriesOf); its
// device lists and last reports are shared until a newer piece has a
// report (acc.own) — an outlet's devices report every few minutes, so
// most outlets have none in a request's newest minutes.

// runKey names one run of whole pieces, or one head (cut: the window's
// from; pgen: the partial summaries' when the head applied them), in one
// generation of the index.
type runKey struct {
	gen, pgen  uint64
	start, end int64
	pre        bool
	cut        int64
}

// runEntry holds what is kept for each outlet asked so far, by the
// outlet's number (outletHist.num).
type runEntry[T any] struct {
	sums []atomic.Pointer[T] // read-only once stored
}

// kept is one outlet's combination of a run, with the last report of each of its devices: what the summary adds to a
// carry (carry.addSummary) — a month holds a series and a bin entry for
// every boot of every device, the carry needs one per device.
type kept struct {
	sum  *summary
	last carry
}

func keep(sum *summary, full float64) *kept {
	k := &kept{sum: sum}
	k.last.addSummary(sum, full)
	return k
}

// get returns outlet number i's kept value (nil: not yet).
func (e *runEntry[T]) get(i int) *T {
	if i >= 0 && i < len(e.sums) {
		return e.sums[i].Load()
	}
	return nil
}

// put keeps v for outlet number i.
func (e *runEntry[T]) put(i int, v *T) {
	if i >= 0 && i < len(e.sums) {
		e.sums[i].Store(v)
	}
}

// runCache keeps the entries of the keys asked for most recently: a
// request for many windows (outlets that joined during one are asked from
// their own start) must not push out the one every request asks.
type runCache[T any] struct {
	mu      sync.Mutex
	max     int
	entries map[runKey]*runEntry[T]
	order   []runKey // least recently asked first
}

func newRunCache[T any](max int) *runCache[T] {
	return &runCache[T]{max: max, entries: map[runKey]*runEntry[T]{}}
}

// entry returns k's entry, made anew for n outlets when it is not kept (n
// is the generation's snapshot.nOut).
func (c *runCache[T]) entry(k runKey, n int) *runEntry[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[k]; e != nil {
		i := slices.Index(c.order, k)
		c.order = append(slices.Delete(c.order, i, i+1), k)
		return e
	}
	e := &runEntry[T]{sums: make([]atomic.Pointer[T], n)}
	c.entries[k] = e
	c.order = append(c.order, k)
	for len(c.order) > c.max {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
	return e
}

// used holds the entries of one runCache a request has used: each is
// taken from the cache (under its lock) once per request, and the one of
// the outlet before is the usual answer for the next.
type used[T any] struct {
	m    map[runKey]*runEntry[T]
	last runKey
	e    *runEntry[T]
}

// of returns c's entry for k (n: the generation's snapshot.nOut).
func (u *used[T]) of(c *runCache[T], k runKey, n int) *runEntry[T] {
	if u.e != nil && u.last == k {
		return u.e
	}
	e := u.m[k]
	if e == nil {
		if u.m == nil {
			u.m = map[runKey]*runEntry[T]{}
		}
		e = c.entry(k, n)
		u.m[k] = e
	}
	u.last, u.e = k, e
	return e
}

// stablePrefix returns how many of ps's first pieces are stable within a
// generation and its partial summaries (pgen): whole days and hours, raw
// pieces cut from closed hours and the partial hour, up to the first live
// raw piece (the newest minutes, read from InfluxDB by each request).
func stablePrefix(ps []piece) int {
	for i, p := range ps {
		if p.kind == pieceRaw && p.cacheHour < 0 {
			return i
		}
	}
	return len(ps)
}

// minRun is the shortest run worth combining and keeping.
const minRun = 3

// runEnd returns the end (exclusive) of the run of whole pieces starting
// at ps[i]: consecutive days and hours on the same side of from.
func runEnd(ps []piece, i int) int {
	j := i
	for j < len(ps) && (ps[j].kind == pieceDay || ps[j].kind == pieceHour) && ps[j].pre == ps[i].pre &&
		(j == i || ps[j].start == ps[j-1].end) {
		j++
	}
	return j
}

// combineRun combines one outlet's pieces ps (one run) into a new summary.
func (a *acc) combineRun(s *snapshot, outlet string, ps []piece) (*summary, error) {
	sum := &summary{}
	for _, p := range ps {
		switch p.kind {
		case pieceDay:
			if b := s.block(outlet, p.start); b != nil && b.sum != nil {
				if err := decodeSummary(&a.tmp, b.sum, p.start, a.intern); err != nil {
					return nil, err
				}
				sum.combine(&a.tmp)
			}
		case pieceHour:
			data, err := s.hourVia(&a.open, outlet, p.start)
			if err != nil {
				return nil, err
			}
			if data == nil {
				continue
			}
			if err := decodeSummary(&a.tmp, data, p.start, a.intern); err != nil {
				return nil, err
			}
			sum.combine(&a.tmp)
		}
	}
	return sum, nil
}
