package metrics

import (
	"context"
	"sync"
	"time"
)

// rawCache keeps the raw data of a few closed hours for every outlet. A
// window that does not start on a whole hour needs the raw data of the
// hour it starts in; for the whole city that read costs InfluxDB about
// 150 ms, while the hour changes once an hour for "the last N days". An
// hour's entry is dropped when the roll-up finds that hour changed
// (invalidate), so the cache is exactly as fresh as the roll-up itself.
type rawCache struct {
	mu      sync.Mutex
	max     int
	entries map[int64]*cacheEntry
	gen     map[int64]uint64 // bumped by invalidate; an entry of an older gen is stale
	tick    uint64
}

type cacheEntry struct {
	gen  uint64
	done chan struct{}
	data rawSet
	err  error
	used uint64
}

func newRawCache(max int) *rawCache {
	return &rawCache{max: max, entries: map[int64]*cacheEntry{}, gen: map[int64]uint64{}}
}

// peek returns the cached data of an hour when it is there and ready.
func (c *rawCache) peek(hour int64) rawSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[hour]
	if e == nil || e.gen != c.gen[hour] {
		return nil
	}
	select {
	case <-e.done:
		if e.err == nil {
			c.tick++
			e.used = c.tick
			return e.data
		}
	default:
	}
	return nil
}

// get returns the hour's data, reading it with fetch once for all the
// requests that ask at the same time.
func (c *rawCache) get(ctx context.Context, hour int64, fetch func(context.Context) (rawSet, error)) (rawSet, error) {
	for {
		c.mu.Lock()
		e := c.entries[hour]
		if e != nil && e.gen == c.gen[hour] {
			c.tick++
			e.used = c.tick
			c.mu.Unlock()
			select {
			case <-e.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if e.err == nil {
				return e.data, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue // the reader failed (perhaps its own request ended): try again
		}
		e = &cacheEntry{gen: c.gen[hour], done: make(chan struct{})}
		c.tick++
		e.used = c.tick
		c.entries[hour] = e
		c.evict()
		c.mu.Unlock()

		e.data, e.err = fetch(ctx)
		c.mu.Lock()
		if e.err != nil || e.gen != c.gen[hour] {
			if c.entries[hour] == e {
				delete(c.entries, hour)
			}
		}
		c.mu.Unlock()
		close(e.done)
		return e.data, e.err
	}
}

// evict drops the least recently used entries beyond max. Called with mu.
func (c *rawCache) evict() {
	for len(c.entries) > c.max {
		var oldest int64
		var min uint64 = ^uint64(0)
		for h, e := range c.entries {
			if e.used < min {
				min, oldest = e.used, h
			}
		}
		delete(c.entries, oldest)
	}
}

// invalidate forgets hours whose raw data changed.
func (c *rawCache) invalidate(hours []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hours {
		c.gen[h]++
		delete(c.entries, h)
	}
}

// liveCache shares the live reads (the newest minutes, after the partial
// hour, and the edges of small requests) between requests for ttl: a city
// question costs InfluxDB about 40 µs per series even for one minute of
// data (3,000 series: ~120 ms), so requests arriving together read once.
// Answers may then miss points that reached InfluxDB less than ttl ago.
// ttl 0 shares nothing (every request reads), which tests use.
//
// One outlet's questions each have a key of their own: at 10,000 outlets
// and ~1,800 such requests a second the cache holds ~9,000 entries, so
// the expired ones are swept at most once per ttl (a sweep of every entry
// on every call was most of such a request's CPU), and an expired entry
// found before its sweep is read again.
type liveCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[liveKey]*liveEntry
	swept   time.Time // the last sweep
}

type liveKey struct {
	a, e   int64
	filter string // the outlets asked for, "*" for all
}

type liveEntry struct {
	done chan struct{}
	data rawSet
	err  error
	at   time.Time // when the read finished
}

// expired says whether e's read finished, and failed or is older than ttl
// at now; one still reading is not.
func (e *liveEntry) expired(now time.Time, ttl time.Duration) bool {
	select {
	case <-e.done:
		return e.err != nil || now.Sub(e.at) > ttl
	default:
		return false
	}
}

func newLiveCache(ttl time.Duration) *liveCache {
	return &liveCache{ttl: ttl, entries: map[liveKey]*liveEntry{}}
}

func (c *liveCache) get(ctx context.Context, k liveKey, fetch func(context.Context) (rawSet, error)) (rawSet, error) {
	if c.ttl <= 0 {
		return fetch(ctx)
	}
	now := time.Now()
	c.mu.Lock()
	if now.Sub(c.swept) > c.ttl {
		for key, e := range c.entries {
			if e.expired(now, c.ttl) {
				delete(c.entries, key)
			}
		}
		c.swept = now
	}
	if e := c.entries[k]; e != nil && !e.expired(now, c.ttl) {
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.data, nil
		}
		return fetch(ctx) // the shared read failed: read for this request
	}
	e := &liveEntry{done: make(chan struct{})}
	c.entries[k] = e
	c.mu.Unlock()
	e.data, e.err = fetch(ctx)
	e.at = time.Now()
	close(e.done)
	return e.data, e.err
}
