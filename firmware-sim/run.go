package main

import (
	"context"
	"io"

	"github.com/greenpost/greenpost/internal/settings"
)

// run is the whole simulator; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := settings.NewLogger(stderr, cfg.LogLevel, "firmware-sim")
	log.Info("started", "mqtt", cfg.MQTTURL, "outlets", cfg.Outlets, "bins", cfg.Bins, "seed", cfg.Seed)
	<-ctx.Done()
	log.Info("stopped")
	return nil
}
