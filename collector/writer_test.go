package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/spool"
	"github.com/greenpost/greenpost/internal/store"
)

// fakeSink fails as told and records the lines it accepted.
type fakeSink struct {
	mu         sync.Mutex
	failFirst  int           // first writes fail as retryable
	rejectAll  bool          // every write is rejected as permanent
	retryAfter time.Duration // sent with those failures
	calls      int
	lines      map[string]int
	writes     []time.Time
}

func (f *fakeSink) Write(_ context.Context, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.writes = append(f.writes, time.Now())
	if f.calls <= f.failFirst {
		return &store.WriteError{Class: store.Retryable, Status: 503, RetryAfter: f.retryAfter, Err: errors.New("unavailable")}
	}
	if f.rejectAll || bytes.HasPrefix(body, []byte("m v=BAD")) || bytes.Contains(body, []byte("\nm v=BAD")) {
		return &store.WriteError{Class: store.Permanent, Status: 400, Err: errors.New("partial write: field type conflict")}
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		f.lines[l]++
	}
	return nil
}

func newTestWriter(t *testing.T, s sink, batch int) (*writer, *spool.Spool) {
	t.Helper()
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	m := newPromMetrics(func() (float64, float64) { return 0, 0 })
	return &writer{spool: sp, sink: s, m: m, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		pending: new(atomic.Int64), batchSize: batch, flushInterval: 10 * time.Millisecond, maxBackoff: 50 * time.Millisecond}, sp
}

func appendPoints(t *testing.T, sp *spool.Spool, lines ...string) {
	t.Helper()
	var body []byte
	for _, l := range lines {
		body = append(body, l+"\n"...)
	}
	rec := appendRecordHeader(nil, len(lines))
	if err := sp.Append([][]byte{append(rec, body...)}); err != nil {
		t.Fatal(err)
	}
}

// runUntilDrained runs the writer until the spool is empty.
func runUntilDrained(t *testing.T, w *writer, sp *spool.Spool) error {
	t.Helper()
	drain := make(chan struct{})
	close(drain)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := w.Run(ctx, drain)
	if st := sp.Stats(); err == nil && st.Bytes != 0 {
		t.Fatalf("spool not drained: %+v", st)
	}
	return err
}

func TestWriterSplitsRejectedBatchAndDeadLettersTheBadPoint(t *testing.T) {
	f := &fakeSink{lines: map[string]int{}}
	w, sp := newTestWriter(t, f, 100)
	var lines []string
	for i := range 9 {
		lines = append(lines, fmt.Sprintf("m v=%di %d", i, i))
	}
	lines[5] = "m v=BAD 5"
	appendPoints(t, sp, lines...)
	if err := runUntilDrained(t, w, sp); err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		if i != 5 && f.lines[l] != 1 {
			t.Errorf("line %q written %d times, want once", l, f.lines[l])
		}
	}
	var dl []string
	for l := range f.lines {
		if strings.HasPrefix(l, "deadletter,reason=influx_rejected") {
			dl = append(dl, l)
		}
	}
	if len(dl) != 1 || !strings.Contains(dl[0], `payload="m v=BAD 5"`) {
		t.Errorf("dead letters: %q", dl)
	}
	if got := metricValue(w.m.rejectedPoints); got != 1 {
		t.Errorf("rejected points %v, want 1", got)
	}
}

// TestWriterDropsWhatInfluxRefusesEvenAsDeadLetter ends without looping
// when InfluxDB refuses everything: each point is counted, the spool drains.
func TestWriterDropsWhatInfluxRefusesEvenAsDeadLetter(t *testing.T) {
	f := &fakeSink{lines: map[string]int{}, rejectAll: true}
	w, sp := newTestWriter(t, f, 100)
	appendPoints(t, sp, "m v=1i 1", "m v=2i 2", "m v=3i 3")
	if err := runUntilDrained(t, w, sp); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(w.m.rejectedPoints); got != 3 {
		t.Errorf("rejected points %v, want 3", got)
	}
	// 1 batch + 2 halves + 1 split of the 2-line half + 3 dead letters.
	if f.calls != 3+2+3 {
		t.Errorf("%d writes", f.calls)
	}
}

func TestWriterRetriesAndHonoursRetryAfter(t *testing.T) {
	f := &fakeSink{lines: map[string]int{}, failFirst: 2, retryAfter: 300 * time.Millisecond}
	w, sp := newTestWriter(t, f, 100)
	appendPoints(t, sp, "m v=1i 1", "m v=2i 2")
	if err := runUntilDrained(t, w, sp); err != nil {
		t.Fatal(err)
	}
	if f.calls != 3 || f.lines["m v=1i 1"] != 1 || f.lines["m v=2i 2"] != 1 {
		t.Fatalf("calls %d, lines %v", f.calls, f.lines)
	}
	for i := 1; i < len(f.writes); i++ {
		if gap := f.writes[i].Sub(f.writes[i-1]); gap < 300*time.Millisecond {
			t.Errorf("retry %d came %v after the last try, before Retry-After", i, gap)
		}
	}
	if got := metricValue(w.m.retries); got != 2 {
		t.Errorf("retries %v, want 2", got)
	}
}

func TestWriterStopsOnFatal(t *testing.T) {
	w, sp := newTestWriter(t, sinkFunc(func(context.Context, []byte) error {
		return &store.WriteError{Class: store.Fatal, Status: 401, Err: errors.New("unauthorized")}
	}), 100)
	appendPoints(t, sp, "m v=1i 1")
	err := runUntilDrainedOrErr(w)
	if store.ClassOf(err) != store.Fatal {
		t.Fatalf("err = %v, want fatal", err)
	}
	if st := sp.Stats(); st.Records != 1 {
		t.Errorf("the unwritten batch left the spool: %+v", st)
	}
}

func TestWriterBatchesBySize(t *testing.T) {
	var sizes []int
	var mu sync.Mutex
	w, sp := newTestWriter(t, sinkFunc(func(_ context.Context, b []byte) error {
		mu.Lock()
		sizes = append(sizes, bytes.Count(b, []byte{'\n'}))
		mu.Unlock()
		return nil
	}), 10)
	for i := range 7 {
		appendPoints(t, sp, fmt.Sprintf("m v=%di %d", i, i*2), fmt.Sprintf("m v=%di %d", i, i*2+1), fmt.Sprintf("m w=%di %d", i, i)) // 3 per record
	}
	if err := runUntilDrained(t, w, sp); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, s := range sizes {
		total += s
		if s > 10+2 { // whole records: at most one record past the batch size
			t.Errorf("batch of %d points, batch size 10", s)
		}
	}
	if total != 21 || len(sizes) < 2 {
		t.Errorf("batches %v", sizes)
	}
}

type sinkFunc func(context.Context, []byte) error

func (f sinkFunc) Write(ctx context.Context, b []byte) error { return f(ctx, b) }

func runUntilDrainedOrErr(w *writer) error {
	drain := make(chan struct{})
	close(drain)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Run(ctx, drain)
}

func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(10)
	now := time.Unix(0, 0)
	n := 0
	for range 100 {
		if b.Allow(now) {
			n++
		}
	}
	if n != 10 {
		t.Errorf("burst took %d, want 10", n)
	}
	if !b.Allow(now.Add(150*time.Millisecond)) || b.Allow(now.Add(150*time.Millisecond)) {
		t.Error("refill after 150ms at 10/s should give exactly one token")
	}
	if newTokenBucket(0).Allow(now) {
		t.Error("rate 0 let a dead letter through")
	}
}
