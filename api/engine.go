package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
)

// newEngine builds the metrics engine the handlers read from, and the
// worker that keeps its roll-ups (nil when it needs none).
//
// The engine is internal/metrics' job; until its implementation lands the
// API answers every figure with 503 rather than compute numbers of its own.
func newEngine(db *store.Store, cfg config, log *slog.Logger) (metrics.Engine, func(context.Context) error) {
	log.Warn("no metrics engine in this build: rates, series and alerts answer 503")
	return noEngine{}, nil
}

// noEngine answers every question with "unavailable".
type noEngine struct{}

var errNoEngine = &apiError{Code: codeUnavailable, Detail: "the metrics engine is not available in this build"}

func (noEngine) Outlets(context.Context, metrics.Window, []string) (map[string]metrics.Outlet, error) {
	return nil, errNoEngine
}

func (noEngine) Series(context.Context, string, metrics.Window, time.Duration) ([]metrics.Outlet, error) {
	return nil, errNoEngine
}

func (noEngine) Devices(context.Context, time.Time, time.Duration) ([]metrics.DeviceState, error) {
	return nil, errNoEngine
}
