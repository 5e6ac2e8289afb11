package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/testenv"
)

// blockingEngine holds every Outlets call until released, and runs a
// worker that records that it was stopped.
type blockingEngine struct {
	fakeEngine
	entered chan struct{}
	release chan struct{}
	stopped atomic.Bool
}

func (b *blockingEngine) Outlets(ctx context.Context, w metrics.Window, ids []string) ([]metrics.Outlet, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeEngine.Outlets(ctx, w, ids)
}

// TestShutdownDrainsInFlightRequests: on SIGTERM (ctx cancelled) run stops
// accepting, lets a request that is already being served finish, stops the
// background worker after that, and returns nil.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	in := testenv.SharedInflux(t)
	eng := &blockingEngine{fakeEngine: fakeEngine{outlets: map[string]metrics.Outlet{}}, entered: make(chan struct{}, 1), release: make(chan struct{})}
	var workerStoppedBeforeDrain atomic.Bool
	drained := make(chan struct{})
	buildEngine = func(_, _ *store.Store, _ config, _ *slog.Logger, _ prometheus.Registerer, _ func([]time.Time)) (metrics.Engine, func(context.Context) error, error) {
		return eng, func(ctx context.Context) error {
			<-ctx.Done()
			select {
			case <-drained:
			default:
				workerStoppedBeforeDrain.Store(true)
			}
			eng.stopped.Store(true)
			return ctx.Err()
		}, nil
	}
	defer func() { buildEngine = newEngine }()

	p := startRun(t, map[string]string{
		"GP_INFLUX_URL": in.URL, "GP_INFLUX_BUCKET": freshBucket(t, in),
		"GP_API_KEYS": "admin:" + adminKey + ",viewer:" + viewerKey,
	})
	waitUntil(t, 20*time.Second, "readyz", func() bool { return p.do(t, "GET", "/readyz", "", "", "").Status == 200 })
	if a := p.do(t, "PUT", "/v1/outlets/o-0001", adminKey, "application/json", `{"name":"n","district":"d","lat":1,"lon":1,"operator":"o"}`); a.Status != 200 {
		t.Fatal(a)
	}

	inflight := make(chan answer, 1)
	go func() { inflight <- p.do(t, "GET", "/v1/rates?group_by=city", viewerKey, "", "") }()
	<-eng.entered // the request is inside the handler

	p.cancel() // what SIGTERM does through settings.Main
	p.cancel = nil
	addr := p.base[len("http://"):]
	waitUntil(t, 10*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return true
	})
	if eng.stopped.Load() {
		t.Error("the background worker stopped while a request was still in flight")
	}
	close(drained)
	close(eng.release)
	a := <-inflight
	if a.Status != http.StatusOK {
		t.Errorf("in-flight request: %s", a)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
	if !eng.stopped.Load() || workerStoppedBeforeDrain.Load() {
		t.Errorf("worker stopped %v, before the drain %v", eng.stopped.Load(), workerStoppedBeforeDrain.Load())
	}
}
