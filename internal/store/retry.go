package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Retry is the one retry loop for writes to InfluxDB: a capped
// exponential backoff that honours the server's Retry-After and stops on
// ctx, retrying only what is Retryable (a permanent or fatal failure is
// the caller's to handle). The zero value retries from 100 ms up to 10 s
// until ctx ends.
type Retry struct {
	Initial, Max time.Duration
	// Attempts bounds the tries (0: until ctx ends).
	Attempts int
	// Jitter waits a random part of the backoff's upper half, so that
	// replicas retrying together spread out.
	Jitter bool
	// OnRetry, when set, is told each retryable failure and the wait that
	// follows it.
	OnRetry func(err error, wait time.Duration)
}

// Do calls try until it succeeds, fails other than Retryable, runs out of
// attempts (the last error) or ctx ends (ctx's error).
func (r Retry) Do(ctx context.Context, try func(context.Context) error) error {
	backoff := r.Initial
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	ceiling := r.Max
	if ceiling <= 0 {
		ceiling = 10 * time.Second
	}
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var we *WriteError
		if !errors.As(err, &we) || we.Class != Retryable || (r.Attempts > 0 && attempt >= r.Attempts) {
			return err
		}
		wait := backoff
		if r.Jitter {
			wait = backoff/2 + rand.N(backoff/2+1)
		}
		wait = max(wait, we.RetryAfter)
		if r.OnRetry != nil {
			r.OnRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		backoff = min(2*backoff, ceiling)
	}
}
