package metrics

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLiveCacheSharesReadsForTTL(t *testing.T) {
	key := liveKey{1, 2, "*"}
	t.Run("off: every request reads", func(t *testing.T) {
		c := newLiveCache(0)
		var reads atomic.Int64
		for i := 0; i < 3; i++ {
			c.get(context.Background(), key, func(context.Context) (rawSet, error) { reads.Add(1); return rawSet{}, nil })
		}
		if n := reads.Load(); n != 3 {
			t.Errorf("%d reads, want 3", n)
		}
	})
	t.Run("requests together and within the ttl share one read", func(t *testing.T) {
		c := newLiveCache(time.Hour)
		var reads, asking atomic.Int64
		release := make(chan struct{})
		fetch := func(context.Context) (rawSet, error) {
			reads.Add(1)
			<-release
			return rawSet{"o": &outletRaw{}}, nil
		}
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				asking.Add(1)
				if rs, err := c.get(context.Background(), key, fetch); err != nil || rs["o"] == nil {
					t.Errorf("get: %v %v", rs, err)
				}
			}()
		}
		deadline := time.Now().Add(5 * time.Second)
		for (asking.Load() < 8 || reads.Load() == 0) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		close(release)
		wg.Wait()
		c.get(context.Background(), key, fetch)
		if n := reads.Load(); n != 1 {
			t.Errorf("%d reads, want 1", n)
		}
	})
	t.Run("after the ttl a request reads again", func(t *testing.T) {
		c := newLiveCache(time.Millisecond)
		var reads atomic.Int64
		fetch := func(context.Context) (rawSet, error) { reads.Add(1); return rawSet{}, nil }
		c.get(context.Background(), key, fetch)
		deadline := time.Now().Add(5 * time.Second)
		for reads.Load() < 2 && time.Now().Before(deadline) {
			c.get(context.Background(), key, fetch)
		}
		if n := reads.Load(); n < 2 {
			t.Errorf("%d reads in 5 s with a 1 ms ttl, want a second one", n)
		}
	})
}

// TestLiveCacheSweepsOthersExpired: entries of keys nobody asks again go
// once expired (one outlet's questions each have a key of their own).
func TestLiveCacheSweepsOthersExpired(t *testing.T) {
	c := newLiveCache(10 * time.Millisecond)
	fetch := func(context.Context) (rawSet, error) { return rawSet{}, nil }
	for i := range 1000 {
		c.get(context.Background(), liveKey{int64(i), 0, "o"}, fetch)
	}
	size := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.entries)
	}
	if n := size(); n < 100 {
		t.Fatalf("%d entries right after 1,000 reads: the cache shares nothing", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; size() > 10 && time.Now().Before(deadline); i++ {
		c.get(context.Background(), liveKey{-1, int64(i % 3), "o"}, fetch)
	}
	if n := size(); n > 10 {
		t.Errorf("%d entries kept 5 s after a 10 ms ttl", n)
	}
}

// BenchmarkLiveCacheOneOutletKeys: one outlet's question at 10,000
// outlets, each request another outlet's key, a 5-s ttl.
func BenchmarkLiveCacheOneOutletKeys(b *testing.B) {
	c := newLiveCache(5 * time.Second)
	fetch := func(context.Context) (rawSet, error) { return rawSet{}, nil }
	i := 0
	for b.Loop() {
		c.get(context.Background(), liveKey{0, 0, strconv.Itoa(i % 10000)}, fetch)
		i += 7919
	}
}

// TestLiveCachePromotes: some outlets' reads of a range are served by a
// fresh city-wide read of it, and the promoteAfter-th miss within a ttl
// makes that read (when the city's read is allowed); a closed hour is
// promoted the same way.
func TestLiveCachePromotes(t *testing.T) {
	ctx := context.Background()
	for _, city := range []bool{true, false} {
		c := newLiveCache(time.Hour)
		var some, all int
		fetch := func(_ context.Context, whole bool) (rawSet, error) {
			if whole {
				all++
			} else {
				some++
			}
			return rawSet{}, nil
		}
		for i := range promoteAfter {
			c.getSome(ctx, liveKey{1, 2, strconv.Itoa(i)}, city, fetch)
		}
		if some != promoteAfter || all != 0 {
			t.Fatalf("city %v: %d misses read %d outlets' and %d city-wide", city, promoteAfter, some, all)
		}
		c.getSome(ctx, liveKey{1, 2, "next"}, city, fetch)
		c.getSome(ctx, liveKey{1, 2, "after"}, city, fetch)
		c.getSome(ctx, liveKey{1, 3, "another range"}, city, fetch)
		if city && (some != promoteAfter+1 || all != 1) {
			t.Errorf("after the %d-th miss: %d outlets' reads, %d city-wide; want %d and 1", promoteAfter+1, some, all, promoteAfter+1)
		}
		if !city && (some != promoteAfter+3 || all != 0) {
			t.Errorf("no city read allowed: %d outlets' reads, %d city-wide; want %d and 0", some, all, promoteAfter+3)
		}
	}
	c := newLiveCache(time.Hour)
	c.get(ctx, liveKey{5, 6, "*"}, func(context.Context) (rawSet, error) { return rawSet{}, nil })
	if _, err := c.getSome(ctx, liveKey{5, 6, "o-1"}, false, func(context.Context, bool) (rawSet, error) {
		t.Error("a fresh city-wide read of the range did not serve it")
		return rawSet{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range promoteAfter + 1 {
		if got := c.promoted([2]int64{7, 8}); got != (i == promoteAfter) {
			t.Fatalf("miss %d of an hour: promoted %v", i+1, got)
		}
	}
	if newLiveCache(0).promoted([2]int64{7, 8}) {
		t.Error("promoted with the sharing off")
	}
}

func TestLiveCacheDoesNotKeepErrors(t *testing.T) {
	c := newLiveCache(time.Hour)
	boom := errors.New("boom")
	if _, err := c.get(context.Background(), liveKey{1, 2, "*"}, func(context.Context) (rawSet, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	rs, err := c.get(context.Background(), liveKey{1, 2, "*"}, func(context.Context) (rawSet, error) { return rawSet{}, nil })
	if err != nil || rs == nil {
		t.Fatalf("a failed read was kept: %v %v", rs, err)
	}
}

// TestRawCacheInvalidate: an hour invalidated while it is being read is not
// kept, and later requests read it again.
func TestRawCacheInvalidate(t *testing.T) {
	c := newRawCache(2)
	ctx := context.Background()
	var reads int
	read := func(context.Context) (rawSet, error) { reads++; return rawSet{}, nil }
	if _, err := c.get(ctx, 10, read); err != nil {
		t.Fatal(err)
	}
	if c.peek(10) == nil {
		t.Fatal("hour 10 not cached")
	}
	c.invalidate([]int64{10})
	if c.peek(10) != nil {
		t.Fatal("an invalidated hour is still served")
	}
	c.get(ctx, 10, func(ctx context.Context) (rawSet, error) {
		c.invalidate([]int64{10}) // changes while being read
		return read(ctx)
	})
	if c.peek(10) != nil {
		t.Fatal("a read that raced an invalidation was kept")
	}
	for h := int64(20); h < 25; h++ {
		c.get(ctx, h, read)
	}
	if len(c.entries) > 2 {
		t.Errorf("%d entries kept, max 2", len(c.entries))
	}
	if reads != 7 {
		t.Errorf("%d reads, want 7", reads)
	}
}

// TestRunCacheKeepsTheRecent: what is kept goes by the last time it was
// asked for, not by when it was made: a key every request asks for stays
// while requests for other windows come and go.
func TestRunCacheKeepsTheRecent(t *testing.T) {
	c := newRunCache[kept](2)
	k := func(i int64) runKey { return runKey{start: i} }
	a := c.entry(k(1), 3)
	c.entry(k(2), 3)
	if c.entry(k(1), 3) != a {
		t.Fatal("a kept key gave a new entry")
	}
	c.entry(k(3), 3) // pushes out 2, asked least recently
	if c.entry(k(1), 3) != a {
		t.Error("the key asked most recently was pushed out")
	}
	if _, ok := c.entries[k(2)]; ok {
		t.Error("the key asked least recently is still kept")
	}
	if len(c.entries) != 2 || len(c.order) != 2 {
		t.Errorf("%d entries, order %v; want 2", len(c.entries), c.order)
	}
}
