package main

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/greenpost/greenpost/internal/ratelimit"
	"github.com/greenpost/greenpost/internal/spool"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// ingester validates messages, appends their points to the spool in groups
// (one fsync per group) and acknowledges each message once its group is
// durable. It is the only goroutine that acknowledges, so acknowledgements
// leave in the order the messages arrived.
type ingester struct {
	in      <-chan message
	spool   *spool.Spool
	m       *promMetrics
	log     *slog.Logger
	limiter *ratelimit.Bucket
	// retainedLog limits the warnings about invalid retained messages.
	retainedLog *ratelimit.Bucket
	pending     *atomic.Int64 // points in the spool, shared with the writer
	maxGroup    int

	body    []byte   // the group's records, back to back
	ends    []int    // where each record ends in body
	records [][]byte // slices of body, one per point
	group   []message
}

// record format: uvarint(number of points), then the points as line
// protocol. The ingester writes one point per record, so that damage to a
// record on disk costs that point alone (the previous release wrote one
// record per group; its records still read the same way).
func appendRecordHeader(dst []byte, points int) []byte {
	return binary.AppendUvarint(dst, uint64(points))
}

// parseRecord splits a spool record into its point count and lines.
func parseRecord(rec []byte) (int, []byte, error) {
	n, k := binary.Uvarint(rec)
	if k <= 0 {
		return 0, nil, errors.New("spool record without a header")
	}
	return int(n), rec[k:], nil
}

// Run consumes until stop is closed, then drains what was already received.
// ctx bounds everything, including a drain blocked on a full spool.
func (g *ingester) Run(ctx context.Context, stop <-chan struct{}) error {
	for {
		var first message
		select {
		case first = <-g.in:
		case <-stop:
			return g.drain(ctx)
		case <-ctx.Done():
			return nil
		}
		if err := g.handle(ctx, first); err != nil {
			return err
		}
	}
}

func (g *ingester) drain(ctx context.Context) error {
	for {
		select {
		case msg := <-g.in:
			if err := g.handle(ctx, msg); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// handle takes first and whatever else is already waiting (up to maxGroup)
// as one group: validate, append, fsync, acknowledge.
func (g *ingester) handle(ctx context.Context, first message) error {
	g.group = append(g.group[:0], first)
	for len(g.group) < g.maxGroup {
		select {
		case msg := <-g.in:
			g.group = append(g.group, msg)
			continue
		default:
		}
		break
	}
	body, ends := g.body[:0], g.ends[:0]
	for i := range g.group {
		msg := &g.group[i]
		m, err := telemetry.Decode(msg.topic, msg.payload, msg.recv)
		if err == nil {
			body = telemetry.AppendPoint(appendRecordHeader(body, 1), &m)
			ends = append(ends, len(body))
			g.m.accepted.WithLabelValues(m.Topic.Kind.String(), m.Topic.Channel.String()).Inc()
			continue
		}
		reason := telemetry.ReasonOf(err)
		if msg.retained {
			// The broker sends its retained store again at every
			// (re)subscription. The message was dead-lettered when it was
			// published (the persistent session saw it live); writing it
			// again at every reconnect would count one bad message many times.
			g.m.retainedInvalid.WithLabelValues(string(reason)).Inc()
			if g.retainedLog.Allow(msg.recv) {
				g.log.Warn("the broker holds an invalid retained message: not dead-lettered again; clear it at the broker",
					"topic", clip(msg.topic, 200), "reason", reason)
			}
			continue
		}
		g.m.invalid.WithLabelValues(string(reason)).Inc()
		if g.limiter.Allow(msg.recv) {
			body = telemetry.AppendDeadLetter(appendRecordHeader(body, 1), reason, msg.topic, msg.payload, msg.recv)
			ends = append(ends, len(body))
		} else {
			g.m.deadLetterSkips.WithLabelValues(string(reason)).Inc()
		}
	}
	g.body, g.ends = body, ends
	g.records = g.records[:0]
	for i, end := range ends {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		g.records = append(g.records, body[start:end])
	}

	if points := len(g.records); points > 0 {
		if err := g.append(ctx); err != nil {
			return err
		}
		g.pending.Add(int64(points))
	}
	now := time.Now()
	for i := range g.group {
		g.group[i].ack()
		g.m.ackLag.Observe(now.Sub(g.group[i].recv).Seconds())
		g.group[i] = message{}
	}
	g.m.acked.Add(float64(len(g.group)))
	g.m.spoolGroup.Observe(float64(len(g.group)))
	return nil
}

// append writes the record, waiting while the spool is full. While it
// waits nothing is acknowledged: the broker's in-flight window fills and the
// broker keeps the rest in our session (back-pressure, not loss).
func (g *ingester) append(ctx context.Context) error {
	full := false
	for {
		changed := g.spool.Changed()
		err := g.spool.Append(g.records)
		if err == nil {
			if full {
				g.log.Info("spool has room again: acknowledging")
			}
			return nil
		}
		if !errors.Is(err, spool.ErrFull) {
			return err // a disk error: stop rather than acknowledge what is not durable
		}
		if !full {
			full = true
			g.m.spoolFull.Inc()
			g.log.Warn("spool full: holding acknowledgements until InfluxDB drains it", "spool_bytes", g.spool.Stats().Bytes)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// newTokenBucket limits dead letters per second (a second's worth of
// burst); the rest are only counted.
func newTokenBucket(perSecond int) *ratelimit.Bucket {
	return ratelimit.New(float64(perSecond), float64(perSecond))
}
