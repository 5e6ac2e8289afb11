package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
)

// newEngine builds internal/metrics' engine and the worker that keeps its
// hourly roll-up (persisted in InfluxDB, indexed in memory). run owns the
// worker's goroutine and stops it only after the HTTP server has drained.
// Telemetry is read from db; the roll-up's own rows live in own
// (GP_API_BUCKET; the same store as db by default).
//
// The roll-up reaches back as far as the longest window a request may ask
// for (and at least the engine's default 35 days): a window beyond it would
// have to be read raw, which the engine refuses at city scale.
//
// onLate is told the hours late data changed (the collection list's
// tracker reads them again).
func newEngine(db, own *store.Store, cfg config, log *slog.Logger, reg prometheus.Registerer, onLate func(hours []time.Time)) (metrics.Engine, func(context.Context) error, error) {
	opts := metrics.Options{Staleness: cfg.Staleness, FullPct: cfg.FullPct}
	rc := metrics.RollupConfig{
		Horizon:    max(35*24*time.Hour, cfg.MaxWindow+24*time.Hour),
		Logger:     log.With("part", "rollup"),
		Registerer: reg,
		Own:        own,
		ColdDir:    cfg.ColdDir,
		OnLate: func(hours []int64) {
			ts := make([]time.Time, len(hours))
			for i, h := range hours {
				ts[i] = time.Unix(0, h)
			}
			onLate(ts)
		},
	}
	roll, err := metrics.NewRollup(db, opts, rc)
	if err != nil && cfg.coldDirDefault {
		// The temporary directory by default only: one that takes no
		// files (a read-only image) costs memory, not the start.
		log.Warn("old days of the roll-up kept in memory: the temporary directory takes no files; set GP_API_COLD_DIR", "dir", cfg.ColdDir, "err", err)
		rc.ColdDir = ""
		roll, err = metrics.NewRollup(db, opts, rc)
	}
	if err != nil {
		return nil, nil, err
	}
	eng, err := metrics.NewInfluxEngine(db, opts, roll)
	if err != nil {
		return nil, nil, err
	}
	return eng, roll.Run, nil
}
