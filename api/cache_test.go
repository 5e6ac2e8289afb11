package main

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFigureCache(t *testing.T) {
	ts := cityFixture(t, func(c *config) { c.CacheTTL = 10 * time.Second })
	calls := func() int {
		ts.engine.mu.Lock()
		defer ts.engine.mu.Unlock()
		return len(ts.engine.asked)
	}
	cityTotal := func() int64 {
		var ans groupsAnswer
		a := ts.do("GET", "/v1/rates?group_by=city&"+day1, viewerKey, "")
		if a.Status != 200 {
			t.Fatal(a)
		}
		a.json(t, &ans)
		return ans.Groups[0].Parcels.Total
	}
	if got := cityTotal(); got != 250 || calls() != 1 {
		t.Fatalf("city %d after %d engine calls", got, calls())
	}
	// The districts, the outlets and waste-free over the same window need
	// the same outlets: no new engine call.
	for _, p := range []string{"/v1/rates?group_by=district&", "/v1/rates?group_by=outlet&", "/v1/waste-free?"} {
		if a := ts.do("GET", p+day1, viewerKey, ""); a.Status != 200 {
			t.Fatal(a)
		}
	}
	if calls() != 1 {
		t.Errorf("%d engine calls for four questions over one window and one outlet list", calls())
	}
	// Another window or another list is another question.
	ts.do("GET", "/v1/rates?group_by=city&from=2026-11-26T00:00:00Z&to=2026-11-27T00:00:00Z", viewerKey, "")
	ts.do("GET", "/v1/outlets/o-0001/rates?"+day1, viewerKey, "")
	if calls() != 3 {
		t.Errorf("%d engine calls, want 3", calls())
	}

	// New data shows after the TTL, not before.
	ts.engine.set(func(f *fakeEngine) {
		o := f.outlets["o-0001"]
		o.Parcels.ByClass[0] += 1000
		f.outlets["o-0001"] = o
	})
	if got := cityTotal(); got != 250 {
		t.Errorf("city %d within the TTL, want the cached 250", got)
	}
	ts.now = ts.now.Add(10 * time.Second)
	if got := cityTotal(); got != 1250 {
		t.Errorf("city %d after the TTL, want 1250", got)
	}

	// A registry change that changes the outlet list is seen at once.
	ts.putOutlet(Outlet{ID: "o-0002", Name: "Two", District: "jianghan", Lat: 30, Lon: 114, Operator: "ems", Active: false})
	if got := cityTotal(); got != 1150 {
		t.Errorf("city %d after deactivating o-0002 (100 parcels), want 1150", got)
	}

	// Errors are not kept.
	ts.now = ts.now.Add(time.Minute)
	ts.engine.set(func(f *fakeEngine) { f.err = &apiError{Code: codeUnavailable, Detail: "down"} })
	checkProblem(t, ts.do("GET", "/v1/rates?group_by=city&"+day1, viewerKey, ""), 503)
	ts.engine.set(func(f *fakeEngine) { f.err = nil })
	if got := cityTotal(); got != 1150 {
		t.Errorf("city %d after an error, want 1150", got)
	}

	// Device states for the alerts are shared the same way.
	for range 3 {
		if a := ts.do("GET", "/v1/alerts?kind=bin_full", viewerKey, ""); a.Status != 200 {
			t.Fatal(a)
		}
	}
	ts.engine.mu.Lock()
	dc := ts.engine.devCalls
	ts.engine.mu.Unlock()
	if dc != 1 {
		t.Errorf("%d device queries for 3 alert requests within the TTL", dc)
	}

	m := string(ts.do("GET", "/metrics", "", "").Body)
	if !strings.Contains(m, `gp_api_figure_cache_total{result="hit"}`) || !strings.Contains(m, `gp_api_figure_cache_total{result="miss"}`) {
		t.Errorf("no cache counters in /metrics")
	}
}

// TestFigureCacheSharesOverlappingRequests: concurrent requests for the
// same figures make one engine call.
func TestFigureCacheSharesOverlappingRequests(t *testing.T) {
	ts := cityFixture(t, func(c *config) { c.CacheTTL = 10 * time.Second })
	gate := make(chan struct{})
	ts.engine.gate = gate
	var wg sync.WaitGroup
	answers := make([]answer, 6)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/v1/rates?group_by=city&"
			if i%2 == 1 {
				path = "/v1/rates?group_by=district&"
			}
			answers[i] = ts.do("GET", path+day1, viewerKey, "")
		}()
	}
	// Let the first call through once every request is waiting on it.
	waitUntil(t, 10*time.Second, "6 requests waiting for the engine", func() bool {
		return strings.Contains(string(ts.do("GET", "/metrics", "", "").Body), "\ngp_api_figure_waiting 6\n")
	})
	close(gate)
	wg.Wait()
	for i, a := range answers {
		if a.Status != 200 {
			t.Fatalf("request %d: %s", i, a)
		}
	}
	ts.engine.mu.Lock()
	n := len(ts.engine.asked)
	ts.engine.mu.Unlock()
	if n != 1 {
		t.Errorf("%d engine calls for 6 overlapping requests, want 1", n)
	}
}
