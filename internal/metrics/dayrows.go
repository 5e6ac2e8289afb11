package metrics

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/store"
)

// Day rows: what a restart reads for old days. Loading every hour row of
// the horizon costs a restart ~24 rows per outlet-day (7.2 M rows, ~3 min
// at 10,000 outlets × 30 days); an old day is compact in memory anyway
// (compact.go), so the worker also writes each compact block as one row,
// and a restart reads one row per outlet-day for the old days and hour
// rows only for the recent ones.
//
// A day row is a rollup row under the roll-up key + "/day2" (metrics.md),
// at the day's midnight, its data uvarint(len(sum)) sum z: the day's
// summary and its hours deflated, exactly as in memory. A day's rows are
// trusted only under its marker: a row of the same key with outlet "*"
// and data "1" ("0": pending). The worker writes the marker after every
// day row of the day is written, and "0" before it writes any hour row of
// a marked day (late data re-rolled, a rebuild), so a day row that may be
// older than its hours is never read: a restart reads that day's hours
// instead.

const (
	dayMarkerOutlet = "*"
	dayMarkDone     = "1"
	dayMarkPending  = "0"
)

var errBadDayRow = errors.New("bad roll-up day row")

// dayRowKey is the roll-up key of the day rows; its 2 names the compact
// form (compact.go: the hours as differences from the hour before; the
// first form, without, was never released).
func (r *Rollup) dayRowKey() string { return r.key + "/day2" }

func encodeDayRow(b *dayBlock) ([]byte, error) {
	z, err := b.compactHours()
	if err != nil {
		return nil, err
	}
	out := binary.AppendUvarint(make([]byte, 0, 4+len(b.sum)+len(z)), uint64(len(b.sum)))
	out = append(out, b.sum...)
	return append(out, z...), nil
}

func decodeDayRow(data []byte) (*dayBlock, error) {
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)-k) {
		return nil, errBadDayRow
	}
	sum := data[k : k+int(n) : k+int(n)]
	z := data[k+int(n):]
	if len(sum) == 0 || len(z) == 0 {
		return nil, errBadDayRow
	}
	return &dayBlock{sum: sum, z: z}, nil
}

// readDayMarks returns the days in [a, e) whose day rows are complete.
func (r *Rollup) readDayMarks(ctx context.Context, src source, a, e int64) (map[int64]bool, error) {
	marks := map[int64]bool{}
	err := src.rollups(ctx, r.dayRowKey(), a, e, []string{dayMarkerOutlet}, func(outlet string, t int64, data string) error {
		// One marker a day (a point per series and time); its data is
		// base64 as every row's.
		if v, err := base64.StdEncoding.DecodeString(data); outlet == dayMarkerOutlet && err == nil && string(v) == dayMarkDone {
			marks[t] = true
		}
		return nil
	})
	return marks, err
}

// readDayRows returns the day rows of the given days in [a, e).
func (r *Rollup) readDayRows(ctx context.Context, src source, a, e int64, days map[int64]bool) ([]dayUpdate, error) {
	var out []dayUpdate
	err := src.rollups(ctx, r.dayRowKey(), a, e, nil, func(outlet string, t int64, data string) error {
		if outlet == dayMarkerOutlet || !days[t] {
			return nil
		}
		raw, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return fmt.Errorf("roll-up day row %s %v: %w", outlet, time.Unix(0, t).UTC(), err)
		}
		b, err := decodeDayRow(raw)
		if err != nil {
			return fmt.Errorf("roll-up day row %s %v: %w", outlet, time.Unix(0, t).UTC(), err)
		}
		out = append(out, dayUpdate{outlet: outlet, day: t, block: b})
		return nil
	})
	return out, err
}

// unmarkDays writes the pending marker of every marked day that [a, e)
// touches: called before hour rows of those days are written.
func (r *Rollup) unmarkDays(ctx context.Context, a, e int64) error {
	var lines []byte
	for d := floorDiv(a, dayNS) * dayNS; d < e; d += dayNS {
		if r.marked[d] {
			lines = store.AppendRollupRow(lines, dayMarkerOutlet, r.dayRowKey(), d, []byte(dayMarkPending), 0, 0)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	if err := r.write(ctx, lines); err != nil {
		return err
	}
	for d := floorDiv(a, dayNS) * dayNS; d < e; d += dayNS {
		if r.marked[d] {
			delete(r.marked, d)
			r.remark[d] = true
		}
	}
	return nil
}

// apply applies u to the index, then writes the day rows of the blocks it
// compacted and marks their days (and the days unmarked for this update)
// complete. Writes that fail are tried again after the next update.
func (r *Rollup) apply(ctx context.Context, u update) error {
	if err := r.ix.apply(u); err != nil {
		return err
	}
	snap := r.ix.load()
	r.dayTodo = append(r.dayTodo, snap.compacted...)
	for _, k := range snap.compacted {
		r.remark[k.day] = true
	}
	return r.writeDayRows(ctx, snap)
}

func (r *Rollup) writeDayRows(ctx context.Context, snap *snapshot) error {
	if len(r.dayTodo) == 0 && len(r.remark) == 0 {
		return nil
	}
	slices.SortFunc(r.dayTodo, func(x, y odKey) int {
		return cmp.Or(cmp.Compare(x.day, y.day), strings.Compare(x.outlet, y.outlet))
	})
	var lines []byte
	for len(r.dayTodo) > 0 {
		k := r.dayTodo[0]
		// Written from the current snapshot: its block is the newest.
		if b := snap.block(k.outlet, k.day); b != nil && b.isCompact() {
			var serving, counting int64
			var s summary
			if err := decodeSummary(&s, b.sum, k.day, nil); err == nil {
				serving, counting = s.serving, s.counting
			}
			row, err := encodeDayRow(b)
			if err != nil {
				return err
			}
			lines = store.AppendRollupRow(lines, k.outlet, r.dayRowKey(), k.day, row, serving, counting)
		}
		if len(lines) > 4<<20 || len(r.dayTodo) == 1 {
			if err := r.write(ctx, lines); err != nil {
				return err
			}
			lines = lines[:0]
		}
		r.dayTodo = r.dayTodo[1:]
	}
	r.dayTodo = nil
	for d := range r.remark {
		// Marked only when every block of the day is compact: it is then
		// all in day rows (each was written when it was compacted).
		if !snap.dayComplete(d) || d+dayNS > snap.compactTo {
			continue
		}
		lines = store.AppendRollupRow(lines, dayMarkerOutlet, r.dayRowKey(), d, []byte(dayMarkDone), 0, 0)
	}
	if len(lines) > 0 {
		if err := r.write(ctx, lines); err != nil {
			return err
		}
	}
	for d := range r.remark {
		if snap.dayComplete(d) && d+dayNS <= snap.compactTo {
			r.marked[d] = true
		}
		delete(r.remark, d)
	}
	return nil
}

// write writes line protocol to the roll-up's own bucket. A computed row
// is written even when the request that asked is ending: the next start
// then has less to do.
func (r *Rollup) write(ctx context.Context, lines []byte) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return r.own.Write(wctx, lines)
}
