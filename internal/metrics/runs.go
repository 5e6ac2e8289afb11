package metrics

import (
	"sync"
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

// runKey names one run of whole pieces in one generation of the index.
type runKey struct {
	gen        uint64
	start, end int64
	pre        bool
}

// runEntry holds the run's combination for each outlet asked so far.
type runEntry struct {
	sums sync.Map // outlet → *summary (read-only once stored)
}

// runCache keeps the entries of the last few runs asked for.
type runCache struct {
	mu      sync.Mutex
	max     int
	entries map[runKey]*runEntry
	order   []runKey // oldest first
}

func newRunCache(max int) *runCache {
	return &runCache{max: max, entries: map[runKey]*runEntry{}}
}

// entry returns the run's entry, made anew when it is not kept.
func (c *runCache) entry(k runKey) *runEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[k]; e != nil {
		return e
	}
	e := &runEntry{}
	c.entries[k] = e
	c.order = append(c.order, k)
	for len(c.order) > c.max {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
	return e
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
