#!/usr/bin/env bash
# Builds InfluxDB OSS 1.8.10 (the release the tests run against) once into the
# user cache and prints the binary's path. Newer InfluxDB needs Rust to build;
# 1.8 serves the same v2 write and Flux query API through its compatibility layer.
set -euo pipefail
version=1.8.10
cache="${GREENPOST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/greenpost}"
dest="$cache/influxd-$version"
if [ ! -x "$dest/influxd" ]; then
  echo "building influxd $version into $dest (about 2 minutes, once)" >&2
  mkdir -p "$dest"
  GOBIN="$dest" go install "github.com/influxdata/influxdb/cmd/influxd@v$version"
fi
echo "$dest/influxd"
