// Package ratelimit is the token bucket that both binaries use: the
// collector for dead letters written per second, the API per key.
package ratelimit

import (
	"math"
	"time"
)

// Bucket holds up to burst tokens and gains rate tokens a second; it starts
// full. It is not safe for concurrent use: its owner locks.
type Bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// New returns a full bucket. A rate of 0 or less never gives a token.
func New(rate, burst float64) *Bucket {
	if rate <= 0 {
		burst = 0
	}
	return &Bucket{rate: rate, burst: burst, tokens: burst}
}

// Take spends one token at now and returns 0; when none is left it returns
// how long until one will be (math.MaxInt64 when the rate is 0).
func (b *Bucket) Take(now time.Time) time.Duration {
	if !b.last.IsZero() && b.rate > 0 {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	if b.rate <= 0 {
		return math.MaxInt64
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// Allow spends one token at now and reports whether there was one.
func (b *Bucket) Allow(now time.Time) bool { return b.Take(now) == 0 }
