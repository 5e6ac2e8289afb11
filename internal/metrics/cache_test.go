package metrics

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLiveCacheSharesReadsForTTL(t *testing.T) {
	tests := []struct {
		name      string
		ttl       time.Duration
		wait      time.Duration // between the two rounds
		wantReads int64
		atLeast   bool // requests after the ttl may read again
	}{
		{"off: every request reads", 0, 0, 2 * 8, false},
		{"within ttl: one read", time.Hour, 0, 1, false},
		{"after ttl: read again", time.Millisecond, 20 * time.Millisecond, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newLiveCache(tt.ttl)
			var reads atomic.Int64
			release := make(chan struct{})
			fetch := func(context.Context) (rawSet, error) {
				reads.Add(1)
				<-release
				return rawSet{"o": &outletRaw{}}, nil
			}
			round := func() {
				var wg sync.WaitGroup
				for i := 0; i < 8; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rs, err := c.get(context.Background(), liveKey{1, 2, "*"}, fetch)
						if err != nil || rs["o"] == nil {
							t.Errorf("get: %v %v", rs, err)
						}
					}()
				}
				// Let every goroutine ask before the read ends.
				deadline := time.Now().Add(5 * time.Second)
				for tt.ttl > 0 && reads.Load() == 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				close(release)
				wg.Wait()
				release = make(chan struct{})
			}
			round()
			time.Sleep(tt.wait)
			round()
			if n := reads.Load(); n < tt.wantReads || (!tt.atLeast && n != tt.wantReads) {
				t.Errorf("%d reads, want %d (at least: %v)", n, tt.wantReads, tt.atLeast)
			}
		})
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
