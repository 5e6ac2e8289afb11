package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/greenpost/greenpost/internal/spool"
	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// sink is where points go; *store.Store is one.
type sink interface {
	Write(ctx context.Context, lines []byte) error
}

var _ sink = (*store.Store)(nil)

// writer drains the spool to InfluxDB in order, in batches, and commits
// each batch once InfluxDB has it. It retries retryable failures forever
// (the spool holds the data meanwhile), splits batches InfluxDB rejects so
// one bad point cannot block the rest, and stops on fatal ones.
type writer struct {
	spool         *spool.Spool
	sink          sink
	m             *promMetrics
	log           *slog.Logger
	pending       *atomic.Int64 // points in the spool, shared with the ingester
	batchSize     int
	flushInterval time.Duration
	maxBackoff    time.Duration

	down bool // InfluxDB state, to log changes only
}

// batch is what one write sends.
type batch struct {
	body    []byte
	points  int
	records int64
	end     int64 // spool position after the batch
	skipped bool  // the batch stepped over damaged records
}

// Run writes until ctx is cancelled. After drain is closed it stops waiting
// for batches to fill and returns once the spool is empty.
func (w *writer) Run(ctx context.Context, drain <-chan struct{}) error {
	if w.maxBackoff == 0 {
		w.maxBackoff = 30 * time.Second
	}
	r := w.spool.NewReader()
	defer r.Close()
	var b batch
	for {
		b.body, b.points, b.records, b.skipped = b.body[:0], 0, 0, false
		done, err := w.fill(ctx, drain, r, &b)
		if err != nil {
			return err
		}
		if b.points > 0 {
			if err := w.write(ctx, b.body, b.points, true); err != nil {
				if ctx.Err() != nil {
					return nil // shutdown: the batch stays in the spool
				}
				return err
			}
		}
		if b.records > 0 || b.skipped {
			if err := w.spool.Commit(b.end, b.records); err != nil {
				w.log.Error("spool commit failed (the batch will be written again)", "err", err)
			}
			w.pending.Add(-int64(b.points))
		}
		if done {
			return nil
		}
	}
}

// fill reads records into b until it holds batchSize points, or it has some
// and flushInterval passed since the first, or (after drain) the spool is
// empty. done reports that the writer should stop after this batch.
func (w *writer) fill(ctx context.Context, drain <-chan struct{}, r *spool.Reader, b *batch) (done bool, err error) {
	var deadline <-chan time.Time
	for b.points < w.batchSize {
		changed := w.spool.Changed()
		data, ok, err := r.Next()
		var ce *spool.CorruptError
		switch {
		case errors.As(err, &ce):
			// Counted, logged and quarantined by the spool's OnDamage (once,
			// though pendingPoints met it first); commit past it with the batch.
			b.end, b.skipped = r.Pos(), true
			if ce.Appended { // damaged since this process wrote them: one point per record
				w.pending.Add(-int64(ce.Records))
			}
			if deadline == nil {
				deadline = time.After(w.flushInterval)
			}
			continue
		case err != nil:
			return true, err
		case ok:
			n, lines, err := parseRecord(data)
			if err != nil {
				// Intact on disk (its CRCs held) but not ours to read: a bug,
				// not damage. Counted with the damaged records; never silent.
				w.m.spoolDamaged.Inc()
				w.log.Error("spool record without a header: skipped", "pos", r.Pos(), "bytes", len(data))
			} else {
				b.body = append(b.body, lines...)
				b.points += n
			}
			b.records++
			b.end = r.Pos()
			if deadline == nil {
				deadline = time.After(w.flushInterval)
			}
			continue
		}
		// Nothing to read right now.
		select {
		case <-drain:
			return true, nil
		default:
		}
		select {
		case <-changed:
		case <-deadline:
			return false, nil
		case <-drain:
		case <-ctx.Done():
			return true, nil
		}
	}
	return false, nil
}

// write sends body with retries (store.Retry: capped, jittered backoff that
// honours Retry-After). A permanent rejection splits the batch (when split
// is set) or is returned.
func (w *writer) write(ctx context.Context, body []byte, points int, split bool) error {
	retry := store.Retry{Initial: 100 * time.Millisecond, Max: w.maxBackoff, Jitter: true, // jitter keeps replicas apart
		OnRetry: func(err error, _ time.Duration) {
			w.setDown(true, err)
			w.m.retries.Inc()
		}}
	err := retry.Do(ctx, func(ctx context.Context) error {
		start := time.Now()
		err := w.sink.Write(ctx, body)
		w.m.writeSeconds.Observe(time.Since(start).Seconds())
		if err != nil && ctx.Err() == nil {
			status := 0
			var we *store.WriteError
			if errors.As(err, &we) {
				status = we.Status
			}
			w.m.influxErrors.WithLabelValues(strconv.Itoa(status)).Inc()
		}
		return err
	})
	if err == nil {
		w.m.batchPoints.Observe(float64(points))
		w.m.pointsWritten.Add(float64(points))
		w.setDown(false, nil)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch store.ClassOf(err) {
	case store.Permanent:
		w.setDown(false, nil)
		if !split {
			return err
		}
		return w.split(ctx, body, err)
	default: // Fatal (a retryable failure only ends with ctx)
		w.setDown(true, err)
		return err
	}
}

// split writes halves of a rejected batch; a single point InfluxDB refuses
// becomes a dead letter, so nothing is dropped without a trace.
func (w *writer) split(ctx context.Context, body []byte, cause error) error {
	lines := bytes.Count(body, []byte{'\n'})
	if lines <= 1 {
		w.m.rejectedPoints.Inc()
		w.log.Warn("influxdb rejected a point: stored as a dead letter", "err", cause, "point", telemetry.TruncateUTF8(string(body), 200))
		dl := telemetry.AppendDeadLetter(nil, reasonInfluxRejected, "", bytes.TrimSuffix(body, []byte{'\n'}), time.Now())
		err := w.write(ctx, dl, 1, false)
		if err != nil && store.ClassOf(err) == store.Permanent {
			w.log.Error("influxdb refused the dead letter too: point dropped (counted)", "err", err)
			return nil
		}
		return err
	}
	mid := 0
	for i, n := 0, 0; i < len(body); i++ {
		if body[i] == '\n' {
			n++
			if n == lines/2 {
				mid = i + 1
				break
			}
		}
	}
	if err := w.write(ctx, body[:mid], lines/2, true); err != nil {
		return err
	}
	return w.write(ctx, body[mid:], lines-lines/2, true)
}

func (w *writer) setDown(down bool, err error) {
	if down {
		w.m.influxUp.Set(0)
	} else {
		w.m.influxUp.Set(1)
	}
	if down == w.down {
		return
	}
	w.down = down
	if down {
		w.log.Warn("influxdb down: points wait in the spool", "err", err)
	} else {
		w.log.Info("influxdb up: draining the spool", "spool_points", w.pending.Load())
	}
}
