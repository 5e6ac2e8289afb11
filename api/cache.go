package main

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/greenpost/greenpost/internal/metrics"
)

// figureCache shares the engine's answers between requests. The dashboard
// asks for the city and the districts over the same window at once, the
// bureau's clients poll the same windows: those all need the same outlets
// over the same window, which is one engine call. Identical calls that
// overlap run once (singleflight); an answer is reused for ttl after it was
// computed, so figures may lag new data by at most ttl.
//
// The key is the window and the exact list of outlet ids: the engine's
// answer depends on nothing else (a registry change that adds, removes or
// deactivates an outlet changes the list, hence the key).
type figureCache struct {
	ttl     time.Duration
	timeout time.Duration // bound on a shared computation
	now     clock
	max     int

	mu      sync.Mutex
	entries map[string]cacheEntry
	flight  singleflight.Group
	results *prometheus.CounterVec
	waiting prometheus.Gauge
}

type cacheEntry struct {
	at  time.Time
	val any
}

func newFigureCache(ttl, timeout time.Duration, now clock, reg prometheus.Registerer) *figureCache {
	c := &figureCache{ttl: ttl, timeout: timeout, now: now, max: 64, entries: map[string]cacheEntry{},
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gp_api_figure_cache_total",
			Help: "Engine questions by how they were answered: hit (cached), shared (joined one in flight), miss (computed).",
		}, []string{"result"}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gp_api_figure_waiting",
			Help: "Requests waiting for an engine answer (their own or a shared one).",
		})}
	if reg != nil {
		reg.MustRegister(c.results, c.waiting)
	}
	return c
}

func cacheKey(w metrics.Window, ids []string) string {
	h := fnv.New128a()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return strconv.FormatInt(w.From.Unix(), 10) + "-" + strconv.FormatInt(w.To.Unix(), 10) + "-" + strconv.Itoa(len(ids)) + "-" + string(h.Sum(nil))
}

// get returns the engine's answer for ids over w, computing it with compute
// when no fresh one is cached. The answer is shared: callers must not
// modify it.
func (c *figureCache) get(ctx context.Context, w metrics.Window, ids []string, compute func(context.Context) ([]metrics.Outlet, error)) ([]metrics.Outlet, error) {
	if c == nil || c.ttl <= 0 {
		return compute(ctx) // no cache: no key (hashing 10,000 ids is not free)
	}
	return cached(c, ctx, "outlets-"+cacheKey(w, ids), compute)
}

// devices returns the engine's device states, at most ttl old: alerts are
// "now" within the same bound as the figures.
func (c *figureCache) devices(ctx context.Context, lookback time.Duration, compute func(context.Context) ([]metrics.DeviceState, error)) ([]metrics.DeviceState, error) {
	return cached(c, ctx, "devices-"+lookback.String(), compute)
}

// cached is the cache's one path: a fresh entry, else one shared
// computation, kept when it succeeds.
func cached[T any](c *figureCache, ctx context.Context, key string, compute func(context.Context) (T, error)) (T, error) {
	var zero T
	if c == nil || c.ttl <= 0 {
		return compute(ctx)
	}
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		c.results.WithLabelValues("hit").Inc()
		return e.val.(T), nil
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		// The computation is shared: one caller giving up must not fail
		// the others, so it runs on its own bounded context.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		at := c.now()
		v, err := compute(sctx)
		if err == nil {
			c.put(key, cacheEntry{at: at, val: v})
		}
		return v, err
	})
	c.waiting.Inc()
	defer c.waiting.Dec()
	select {
	case r := <-ch:
		if r.Shared {
			c.results.WithLabelValues("shared").Inc()
		} else {
			c.results.WithLabelValues("miss").Inc()
		}
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (c *figureCache) put(key string, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, old := range c.entries {
		if now.Sub(old.at) >= c.ttl {
			delete(c.entries, k)
		}
	}
	for len(c.entries) >= c.max {
		var oldest string
		for k, old := range c.entries {
			if oldest == "" || old.at.Before(c.entries[oldest].at) {
				oldest = k
			}
		}
		delete(c.entries, oldest)
	}
	c.entries[key] = e
}
