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
			if err := await(ctx, e.done); err != nil {
				return nil, err
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
// One outlet's questions each have a key of their own (getSome): at
// 10,000 outlets ~1,000 such requests a second each missed, and each read
// cost ~1 ms of InfluxDB's CPU and more than that of the API's (the HTTP
// round trip, the answer decoded). A fresh city-wide read of the same
// range serves them, and once promoteAfter outlets' reads of a range have
// missed within a ttl, the next one reads the city's instead. Expired
// entries are swept at most once per ttl (a sweep of every entry on every
// call was a quarter of one outlet's question's CPU at 1,000 outlets), and
// an expired entry met before its sweep is read again.
type liveCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[liveKey]*liveEntry
	misses  map[[2]int64]int // some outlets' reads made per range since the sweep
	swept   time.Time        // the last sweep
}

// promoteAfter is how many reads of some outlets' same range within a ttl
// make the next one read the whole city's range: a city's read of a minute
// costs InfluxDB about what 30 one-outlet reads do at 1,000 outlets (40 µs
// a series against ~1 ms a query), and a dashboard's few one-outlet
// questions a minute never come near it.
const promoteAfter = 32

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
	return &liveCache{ttl: ttl, entries: map[liveKey]*liveEntry{}, misses: map[[2]int64]int{}}
}

// get returns the read of k, shared with the requests within ttl.
func (c *liveCache) get(ctx context.Context, k liveKey, fetch func(context.Context) (rawSet, error)) (rawSet, error) {
	if c.ttl <= 0 {
		return fetch(ctx)
	}
	now := time.Now()
	c.mu.Lock()
	c.sweepLocked(now)
	if e := c.freshLocked(k, now); e != nil {
		c.mu.Unlock()
		return e.wait(ctx, fetch)
	}
	return c.readLocked(ctx, k, fetch)
}

// freshLocked returns k's entry, unless there is none or it has expired.
func (c *liveCache) freshLocked(k liveKey, now time.Time) *liveEntry {
	if e := c.entries[k]; e != nil && !e.expired(now, c.ttl) {
		return e
	}
	return nil
}

// getSome is get for a read of some outlets (k.filter): a fresh read of the
// whole city's same range serves it, and when city allows one (its size),
// the promoteAfter-th miss of the range within a ttl reads the city's.
// fetch reads k's outlets, or the city's when all.
func (c *liveCache) getSome(ctx context.Context, k liveKey, city bool, fetch func(ctx context.Context, all bool) (rawSet, error)) (rawSet, error) {
	some := func(ctx context.Context) (rawSet, error) { return fetch(ctx, false) }
	if c.ttl <= 0 {
		return some(ctx)
	}
	whole := liveKey{k.a, k.e, "*"}
	now := time.Now()
	c.mu.Lock()
	c.sweepLocked(now)
	for _, key := range [...]liveKey{whole, k} {
		if e := c.freshLocked(key, now); e != nil {
			c.mu.Unlock()
			return e.wait(ctx, some)
		}
	}
	r := [2]int64{k.a, k.e}
	if c.misses[r]++; city && c.misses[r] > promoteAfter {
		return c.readLocked(ctx, whole, func(ctx context.Context) (rawSet, error) { return fetch(ctx, true) })
	}
	return c.readLocked(ctx, k, some)
}

// promoted counts a small request's miss of the closed hour r (not in the
// raw-hour cache) and says whether it is the promoteAfter-th within a ttl:
// then the request reads the hour for the whole city into that cache.
func (c *liveCache) promoted(r [2]int64) bool {
	if c.ttl <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(time.Now())
	c.misses[r]++
	return c.misses[r] > promoteAfter
}

// sweepLocked forgets the expired entries and the counted misses, at most
// once per ttl.
func (c *liveCache) sweepLocked(now time.Time) {
	if now.Sub(c.swept) <= c.ttl {
		return
	}
	for key, e := range c.entries {
		if e.expired(now, c.ttl) {
			delete(c.entries, key)
		}
	}
	clear(c.misses)
	c.swept = now
}

// readLocked makes the shared read of k, for this request and those that
// come while it reads; it unlocks c.
func (c *liveCache) readLocked(ctx context.Context, k liveKey, fetch func(context.Context) (rawSet, error)) (rawSet, error) {
	e := &liveEntry{done: make(chan struct{})}
	c.entries[k] = e
	c.mu.Unlock()
	e.data, e.err = fetch(ctx)
	e.at = time.Now()
	close(e.done)
	return e.data, e.err
}

// wait returns e's data once read, or reads with fetch for this request
// when e's read failed.
func (e *liveEntry) wait(ctx context.Context, fetch func(context.Context) (rawSet, error)) (rawSet, error) {
	if err := await(ctx, e.done); err != nil {
		return nil, err
	}
	if e.err == nil {
		return e.data, nil
	}
	return fetch(ctx) // the shared read failed: read for this request
}

// await waits until done is closed or ctx ends.
func await(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
