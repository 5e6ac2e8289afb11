package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// stamper gives this replica's writes their times: each after the one
// before, so two quick writes never share a time stamp (a point is its
// series and its time: the second would overwrite the first). The registry,
// the target sets and the audit share one.
type stamper struct {
	mu   sync.Mutex
	last time.Time
}

func (s *stamper) next() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := time.Now().UTC()
	if !t.After(s.last) {
		t = s.last.Add(time.Nanosecond)
	}
	s.last = t
	return t
}

// keepLoaded calls load every interval until ctx ends, so that writes by
// other replicas show up (the registry, the target sets). Until the first
// load succeeds it retries every 2 s at most: until then the API is not
// ready.
func keepLoaded(ctx context.Context, every time.Duration, what string, log *slog.Logger, load func(context.Context) error) {
	wait, loaded := time.Duration(0), false
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := load(lctx)
		cancel()
		switch {
		case err == nil:
			wait, loaded = every, true
		case ctx.Err() != nil:
			return
		default:
			log.Warn(what+" load failed", "err", err)
			wait = min(every, 2*time.Second)
			if loaded {
				wait = every
			}
		}
	}
}
