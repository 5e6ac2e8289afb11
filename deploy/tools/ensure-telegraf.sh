#!/usr/bin/env bash
# Builds Telegraf 1.37.2 (only the plugins the collector benchmark compares
# against) once into the user cache and prints the binary's path. Only
# `make bench-collector` needs it; `make test` does not.
set -euo pipefail
version=1.37.2
cache="${GREENPOST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/greenpost}"
dest="$cache/telegraf-$version"
if [ ! -x "$dest/telegraf" ]; then
  echo "building telegraf $version into $dest (about 5 minutes, once)" >&2
  mkdir -p "$dest"
  CGO_ENABLED=0 GOBIN="$dest" go install \
    -tags "custom,inputs.mqtt_consumer,outputs.influxdb_v2,parsers.json_v2,parsers.json" \
    "github.com/influxdata/telegraf/cmd/telegraf@v$version"
fi
echo "$dest/telegraf"
