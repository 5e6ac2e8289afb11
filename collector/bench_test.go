package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/spool"
	"github.com/greenpost/greenpost/internal/testenv"
)

// BenchmarkIngestAndRead is the collector's own CPU per message between the
// MQTT callback and the InfluxDB request: a group of 4096 bin messages is
// validated, encoded and made durable with one fsync by the ingester, then
// read back and parsed as the writer does. It uses only what both the
// previous release and this one have, to compare them side by side.
func BenchmarkIngestAndRead(b *testing.B) {
	const n = 4096
	sp, err := spool.Open(b.TempDir(), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	q := make(chan message, n)
	g := &ingester{in: q, spool: sp, m: newPromMetrics(func() (float64, float64) { return 0, 0 }),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), limiter: newTokenBucket(100),
		pending: new(atomic.Int64), maxGroup: n}
	msgs := binMsgs("bench-o1", 64, n, time.Now().Add(-time.Hour))
	r := sp.NewReader()
	defer r.Close()
	var body []byte
	b.ReportAllocs()
	before, err := testenv.ReadProcStats(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	iters := 0
	for b.Loop() {
		now := time.Now()
		for _, m := range msgs {
			q <- message{topic: m.topic, payload: []byte(m.payload), recv: now, ack: func() {}}
		}
		if err := g.handle(context.Background(), <-q); err != nil {
			b.Fatal(err)
		}
		points, records := 0, int64(0)
		body = body[:0]
		for {
			data, ok, err := r.Next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			k, lines, err := parseRecord(data)
			if err != nil {
				b.Fatal(err)
			}
			body = append(body, lines...)
			points += k
			records++
		}
		if points != n {
			b.Fatalf("read %d points of %d", points, n)
		}
		if err := sp.Commit(r.Pos(), records); err != nil {
			b.Fatal(err)
		}
		iters++
	}
	after, err := testenv.ReadProcStats(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric((after.CPUSeconds-before.CPUSeconds)*1e9/float64(iters*n), "cpu-ns/msg")
}
