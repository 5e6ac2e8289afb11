package main

import (
	"context"
	"io"

	"github.com/greenpost/greenpost/internal/settings"
)

// run is the whole API server; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := settings.NewLogger(stderr, cfg.LogLevel, "api")
	log.Info("started", "addr", cfg.Addr, "influx", cfg.InfluxURL, "bucket", cfg.Bucket, "keys", len(cfg.Keys))
	<-ctx.Done()
	log.Info("stopped")
	return nil
}
