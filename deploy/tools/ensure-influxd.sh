#!/usr/bin/env bash
# Builds InfluxDB OSS 1.8.10 (the release the tests run against) once into the
# user cache and prints the binary's path. Newer InfluxDB needs Rust to build;
# 1.8 serves the same v2 write and Flux query API through its compatibility layer.
set -euo pipefail
exec "$(dirname "$0")/go-install-once.sh" influxd 1.8.10 github.com/influxdata/influxdb/cmd/influxd
