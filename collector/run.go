package main

import (
	"context"
	"io"

	"github.com/greenpost/greenpost/internal/settings"
)

// run is the whole collector; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := settings.NewLogger(stderr, cfg.LogLevel, "collector")
	log.Info("started", "mqtt", cfg.MQTTURL, "influx", cfg.InfluxURL, "bucket", cfg.Bucket)
	<-ctx.Done()
	log.Info("stopped")
	return nil
}
