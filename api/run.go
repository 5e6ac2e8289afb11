package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/store"
)

// shutdownGrace bounds how long in-flight requests may take after SIGTERM.
const shutdownGrace = 20 * time.Second

// buildEngine is newEngine; the drain test swaps in an engine it controls.
var buildEngine = newEngine

// run is the whole API server; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := settings.NewLogger(stderr, cfg.LogLevel, "api")
	db, err := store.Open(store.Config{URL: cfg.InfluxURL, Token: cfg.InfluxToken, Org: cfg.InfluxOrg, Bucket: cfg.Bucket, Timeout: cfg.RequestTimeout})
	if err != nil {
		return &settings.Error{Problems: []string{"GP_INFLUX_URL: " + err.Error()}}
	}
	defer db.Close()
	// own holds the API's own measurements (registry, roll-up, target
	// sets, audit): the same
	// server and token, perhaps another bucket (GP_API_BUCKET), so that
	// the telemetry bucket is only ever read.
	own := db
	if cfg.APIBucket != cfg.Bucket {
		own, err = store.Open(store.Config{URL: cfg.InfluxURL, Token: cfg.InfluxToken, Org: cfg.InfluxOrg, Bucket: cfg.APIBucket, Timeout: cfg.RequestTimeout})
		if err != nil {
			return &settings.Error{Problems: []string{"GP_API_BUCKET: " + err.Error()}}
		}
		defer own.Close()
	}

	reg := newRegistry(own, cfg.Districts, log)
	targets := newTargetBook(own, reg.stamp, log)
	promReg := newPromRegistry()
	// The collection list's model keeps every bin's recent reports in
	// memory and follows InfluxDB (docs/collections.md); the roll-up's
	// late-data check tells it which older hours to read again.
	bins := fill.NewTracker(fill.TrackerConfig{
		Source:     db,
		Options:    fill.Options{FullPct: cfg.FullPct, Staleness: cfg.Staleness},
		Logger:     log.With("part", "fill"),
		Registerer: promReg,
	})
	engine, engineWorker, err := buildEngine(db, own, cfg, log, promReg, bins.Late)
	if err != nil {
		return fmt.Errorf("metrics engine: %w", err)
	}
	app := newApp(&deps{
		cfg: cfg, log: log, db: db, reg: reg, engine: engine,
		fill: storeFill{db}, bins: storeFill{db}, full: trackerFull{bins, db}, judge: bins, targets: targets, audit: own, now: time.Now, promReg: promReg,
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	var dln net.Listener
	if cfg.DebugAddr != "" {
		if dln, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (GP_API_DEBUG_ADDR): %w", cfg.DebugAddr, err)
		}
	}
	// The actual address: with GP_API_ADDR=...:0 the kernel picks the port.
	scoped := 0
	for _, k := range cfg.Keys {
		if !k.Scope.all {
			scoped++
			log.Info("scoped key", "name", k.Name, "role", k.Role, "scope", k.Scope.String())
		}
	}
	log.Info("started", "addr", ln.Addr().String(), "influx", cfg.InfluxURL, "bucket", cfg.Bucket, "api_bucket", cfg.APIBucket, "keys", len(cfg.Keys), "scoped_keys", scoped)

	// Background work (registry and target set refreshes, the metrics
	// roll-up worker, the collection list's tracker) has its own context: it must outlive the
	// HTTP server's drain, because in-flight requests still read what it
	// maintains.
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var work errgroup.Group
	work.Go(func() error { keepLoaded(workCtx, cfg.RegistryRefresh, "registry", log, reg.Load); return nil })
	work.Go(func() error { keepLoaded(workCtx, cfg.RegistryRefresh, "target sets", log, targets.Load); return nil })
	if engineWorker != nil {
		work.Go(func() error { return engineWorker(workCtx) })
	}
	work.Go(func() error {
		// The tracker loads days of every bin's reports; it starts once
		// the roll-up has loaded, so that a restart serves the city's
		// figures first rather than both later (measured at 10,000
		// outlets: the two loads share InfluxDB's CPU).
		if r, ok := engine.(interface{ Ready() <-chan struct{} }); ok {
			select {
			case <-r.Ready():
			case <-workCtx.Done():
				return nil
			}
		}
		return bins.Run(workCtx)
	})

	if dln != nil {
		work.Go(func() error { serveDebug(workCtx, dln, log); return nil })
	}

	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		served = nil
	}

	// Shutdown order: 1. stop accepting and let in-flight requests finish
	// (bounded by shutdownGrace); 2. stop the background work; 3. close the
	// InfluxDB client (deferred).
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := app.ShutdownWithContext(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	ln.Close() // in case Serve had not yet taken it over when the signal came
	if served != nil {
		serveErr = <-served
	}
	stopWork()
	workErr := work.Wait()
	switch {
	case serveErr != nil && !errors.Is(serveErr, net.ErrClosed):
		return fmt.Errorf("serve: %w", serveErr)
	case workErr != nil && !errors.Is(workErr, context.Canceled):
		return fmt.Errorf("background work: %w", workErr)
	}
	log.Info("stopped")
	return nil
}
