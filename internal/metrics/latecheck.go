package metrics

import (
	"context"
	"slices"
	"sort"
	"time"
)

// The late-data check: each cycle refreshes the partial hour, compares
// fingerprints with InfluxDB and re-rolls the hours that changed.

// cycle refreshes the partial hour and re-rolls the hours whose
// fingerprints changed: every hour of the last Recheck, and every
// CheckEvery-th cycle one older day (every hour within the horizon when
// full).
func (r *Rollup) cycle(ctx context.Context, src source, now time.Time, full bool) error {
	snap := r.ix.load()
	p := floorDiv(now.Add(-r.cfg.Grace).UnixNano(), minuteNS) * minuteNS
	partial := map[string]*summary{}
	if p > snap.r1 && p-snap.r1 < hourNS {
		sums, err := r.summarizeRange(ctx, src, snap.r1, p)
		if err != nil {
			return err
		}
		partial = sums
	} else {
		p = snap.r1
	}

	ranges := r.checkRanges(snap, now, full)
	t0 := time.Now()
	defer func() {
		r.cfg.Logger.Debug("roll-up cycle", "partial_to", time.Unix(0, p).UTC(), "checked", ranges, "took", time.Since(t0).Round(time.Millisecond))
	}()
	dirty := map[int64]map[string]bool{}
	for _, rg := range ranges {
		for a := rg[0]; a < rg[1]; a += 7 * dayNS {
			b := min(a+7*dayNS, rg[1])
			if err := r.compare(ctx, src, snap, a, b, dirty); err != nil {
				return err
			}
		}
	}
	ups, changed, err := r.reroll(ctx, src, snap, dirty)
	if err != nil {
		return err
	}
	// The engine's raw cache drops the changed hours before the generation
	// that has them is published: raw pieces kept for a generation
	// (runs.go) are then never summarized from the hours' old data.
	if f := r.onInvalidate.Load(); len(changed) > 0 && f != nil {
		(*f)(changed)
	}
	if len(changed) > 0 && r.cfg.OnLate != nil {
		r.cfg.OnLate(slices.Clone(changed))
	}
	return r.apply(ctx, update{hours: ups, r0: snap.r0, r1: snap.r1, p: p, partial: partial})
}

// checkRanges returns the ranges whose fingerprints a cycle compares:
// every hour of the last Recheck and, every CheckEvery-th cycle, the day
// before the rotating cursor, which then moves back a day (to the newest
// again once past CheckHorizon); every hour when full.
func (r *Rollup) checkRanges(snap *snapshot, now time.Time, full bool) [][2]int64 {
	if full {
		return [][2]int64{{snap.r0, snap.r1}}
	}
	var ranges [][2]int64
	recent := max(snap.r0, floorDiv(now.Add(-r.cfg.Recheck).UnixNano(), hourNS)*hourNS)
	if recent < snap.r1 {
		ranges = append(ranges, [2]int64{recent, snap.r1})
	}
	oldest := max(snap.r0, floorDiv(now.Add(-r.cfg.CheckHorizon).UnixNano(), hourNS)*hourNS)
	r.cycles++
	if oldest < recent && r.cycles%r.cfg.CheckEvery == 1%r.cfg.CheckEvery {
		if r.checkCursor <= oldest || r.checkCursor > recent {
			r.checkCursor = recent
		}
		a := max(r.checkCursor-dayNS, oldest)
		ranges = append(ranges, [2]int64{a, r.checkCursor})
		r.checkCursor = a
	}
	return ranges
}

// summarizeRange summarizes every outlet over [a, e) as one piece.
func (r *Rollup) summarizeRange(ctx context.Context, src source, a, e int64) (map[string]*summary, error) {
	rs := rawSet{}
	if err := src.raw(ctx, a-r.opts.Staleness.Nanoseconds(), e, nil, rs); err != nil {
		return nil, err
	}
	rs.normalize()
	out := make(map[string]*summary, len(rs))
	for o, raw := range rs {
		s := summarizeRaw(raw, a, e, r.opts, nil)
		if !s.empty() {
			out[o] = &s
		}
	}
	return out, nil
}

// compare marks the outlet-hours of [a, b) whose fingerprint in InfluxDB
// differs from the roll-up's.
func (r *Rollup) compare(ctx context.Context, src source, snap *snapshot, a, b int64, dirty map[int64]map[string]bool) error {
	fps, err := src.fingerprints(ctx, a, b)
	if err != nil {
		return err
	}
	mark := func(h int64, o string) {
		if dirty[h] == nil {
			dirty[h] = map[string]bool{}
		}
		dirty[h][o] = true
	}
	var tmp summary
	seen := map[fpKey]bool{}
	var op opener
	for o := range snap.outlets {
		for h := a; h < b; h += hourNS {
			data, err := snap.hourVia(&op, o, h)
			if err != nil {
				return err
			}
			if data == nil {
				continue
			}
			if err := decodeSummary(&tmp, data, h, nil); err != nil {
				return err
			}
			var got fingerprint
			got.counterN, got.counterSum, got.binN, got.binSum = tmp.fingerprint()
			k := fpKey{o, h}
			seen[k] = true
			if fps[k] != got {
				mark(h, o)
			}
		}
	}
	for k, fp := range fps {
		if !seen[k] && fp != (fingerprint{}) {
			mark(k.hour, k.outlet)
		}
	}
	return nil
}

// reroll summarizes the dirty outlet-hours again, with the hours after
// them that their reports reach into (a report serves for up to
// staleness), and writes them. It returns the index updates and the hours
// whose raw data changed.
func (r *Rollup) reroll(ctx context.Context, src source, snap *snapshot, dirty map[int64]map[string]bool) ([]hourUpdate, []int64, error) {
	if len(dirty) == 0 {
		return nil, nil, nil
	}
	var changed []int64
	todo := map[int64]map[string]bool{}
	reach := r.opts.Staleness.Nanoseconds()
	for h, os := range dirty {
		changed = append(changed, h)
		for x := h; x < h+hourNS+reach && x < snap.r1; x += hourNS {
			if todo[x] == nil {
				todo[x] = map[string]bool{}
			}
			for o := range os {
				todo[x][o] = true
			}
		}
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i] < changed[j] })
	hours := make([]int64, 0, len(todo))
	for h := range todo {
		hours = append(hours, h)
	}
	sort.Slice(hours, func(i, j int) bool { return hours[i] < hours[j] })
	var ups []hourUpdate
	for i := 0; i < len(hours); {
		// A run of consecutive hours, at most a build chunk long.
		j := i + 1
		for j < len(hours) && hours[j] == hours[j-1]+hourNS && hours[j]-hours[i] < int64(r.cfg.BuildChunk) {
			j++
		}
		a, b := hours[i], hours[j-1]+hourNS
		set := map[string]bool{}
		for _, h := range hours[i:j] {
			for o := range todo[h] {
				set[o] = true
			}
		}
		outlets := make([]string, 0, len(set))
		for o := range set {
			outlets = append(outlets, o)
		}
		sort.Strings(outlets)
		sums, err := r.summarize(ctx, src, a, b, outlets)
		if err != nil {
			return nil, nil, err
		}
		u, err := r.persist(ctx, snap, sums, a, b, outlets)
		if err != nil {
			return nil, nil, err
		}
		for _, x := range u {
			reason := "spill"
			if dirty[x.hour][x.outlet] {
				reason = "late"
			}
			r.met.hours.WithLabelValues(reason).Inc()
		}
		ups = append(ups, u...)
		i = j
	}
	if len(ups) > 0 {
		r.cfg.Logger.Info("roll-up: re-rolled hours changed by late data", "outlet_hours", len(ups), "first", time.Unix(0, hours[0]).UTC())
	}
	return ups, changed, nil
}
