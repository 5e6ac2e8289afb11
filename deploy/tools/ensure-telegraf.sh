#!/usr/bin/env bash
# Builds Telegraf 1.37.2 (only the plugins the collector benchmark compares
# against) once into the user cache and prints the binary's path. Only
# `make bench-collector` needs it; `make test` does not.
set -euo pipefail
CGO_ENABLED=0 exec "$(dirname "$0")/go-install-once.sh" telegraf 1.37.2 github.com/influxdata/telegraf/cmd/telegraf \
  -tags "custom,inputs.mqtt_consumer,outputs.influxdb_v2,parsers.json_v2,parsers.json"
