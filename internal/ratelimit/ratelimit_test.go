package ratelimit

import (
	"math"
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := New(2, 3) // 2 a second, burst 3
	for i := 0; i < 3; i++ {
		if w := b.Take(t0); w != 0 {
			t.Fatalf("take %d of the burst: wait %v", i, w)
		}
	}
	if w := b.Take(t0); w != 500*time.Millisecond {
		t.Errorf("empty bucket: wait %v, want 500ms", w)
	}
	if !b.Allow(t0.Add(500 * time.Millisecond)) {
		t.Error("a token after 500ms at 2/s")
	}
	if b.Allow(t0.Add(500 * time.Millisecond)) {
		t.Error("only one token after 500ms")
	}
	// A long pause refills to the burst, not beyond.
	later := t0.Add(time.Hour)
	n := 0
	for b.Allow(later) {
		n++
	}
	if n != 3 {
		t.Errorf("after an hour %d tokens, want the burst of 3", n)
	}
	z := New(0, 10)
	if z.Allow(t0) || z.Take(t0.Add(time.Hour)) != math.MaxInt64 {
		t.Error("a zero rate must never give a token")
	}
}
