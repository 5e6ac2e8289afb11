#!/usr/bin/env bash
# GreenPost on one machine, with nothing installed but Go: `make run`.
#
# Starts, in order: InfluxDB 1.8.10 (built once by go install, data kept in
# ./data/influxdb), the collector with its embedded MQTT broker on
# 127.0.0.1:1883, the API and dashboard on 127.0.0.1:8080, and the simulator
# (a city of outlets reporting every 10 s) whose outlets are imported into
# the registry. Ctrl-C stops everything in reverse order; data stays in ./data.
#
# The parts are functions so that tests can run them for real: sourcing this
# file defines them and starts nothing (testenv.DeploySettings reads
# settings_for, the API's tests use the keys that ensure_keys writes).
set -euo pipefail

# settings_for prints the GP_ settings that one program gets here, one
# NAME=VALUE a line. Tests check every name and value with the program's
# own settings loader, so a setting this script gives cannot be refused.
settings_for() {
  case "$1" in
    collector)
      printf '%s\n' GP_INFLUX_URL=http://127.0.0.1:8086 GP_INFLUX_BUCKET=gp/autogen \
        GP_EMBEDDED_BROKER=127.0.0.1:1883 "GP_SPOOL_DIR=$data/spool" GP_COLLECTOR_ADDR=127.0.0.1:9100 \
        "GP_EMBEDDED_BROKER_USERS_FILE=$data/credentials/embedded-users" ;;
    api)
      printf '%s\n' GP_INFLUX_URL=http://127.0.0.1:8086 GP_INFLUX_BUCKET=gp/autogen \
        GP_API_ADDR=127.0.0.1:8080 "GP_API_KEYS_FILE=$data/api-keys" ;;
    firmware-sim)
      printf '%s\n' GP_MQTT_URL=tcp://127.0.0.1:1883 GP_INFLUX_URL=http://127.0.0.1:8086 GP_INFLUX_BUCKET=gp/autogen ;;
    *) echo "settings_for: no program $1" >&2; return 1 ;;
  esac
}

# ensure_keys keeps an admin and a viewer key in $data (made on the first
# run, the same afterwards, so a browser that remembers one keeps working)
# and writes the API's keys file from them in the production form.
ensure_keys() {
  local role key line
  : > "$data/api-keys.new"
  chmod 600 "$data/api-keys.new"
  for role in admin viewer; do
    if [ -s "$data/$role-key" ]; then
      line=$(GREENPOST_KEY="$(cat "$data/$role-key")" deploy/tools/new-api-key.sh "$role" "local-$role" | tail -n 1)
    else
      { read -r key; read -r line; } < <(deploy/tools/new-api-key.sh "$role" "local-$role")
      (umask 077; printf '%s\n' "$key" > "$data/$role-key")
    fi
    printf '%s\n' "$line" >> "$data/api-keys.new"
  done
  mv "$data/api-keys.new" "$data/api-keys"
}

# start runs a program with its settings in the background, its output in
# its log, and remembers it for the stop.
start() {
  local prog=$1; shift
  local env
  mapfile -t env < <(settings_for "$prog")
  env "${env[@]}" "bin/$prog" "$@" >"$data/logs/$prog.log" 2>&1 &
  pids+=($!)
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

main() {
  cd "$(dirname "$0")/../.."
  data="${GREENPOST_DATA:-$PWD/data}"
  outlets="${GREENPOST_OUTLETS:-50}"
  mkdir -p "$data/influxdb" "$data/spool" "$data/logs"
  command -v curl >/dev/null || { echo "curl is needed (apt-get install curl)" >&2; exit 1; }

  influxd=$(deploy/tools/ensure-influxd.sh)
  pids=()
  cleanup() {
    trap - INT TERM EXIT
    echo "stopping…"
    for ((i=${#pids[@]}-1; i>=0; i--)); do
      kill -TERM "${pids[$i]}" 2>/dev/null || true
      wait "${pids[$i]}" 2>/dev/null || true
    done
  }
  trap cleanup INT TERM EXIT

  for p in 8086 1883 8080 9100; do
    port_free "$p" || { echo "port $p is in use: stop what uses it first" >&2; exit 1; }
  done

  cat > "$data/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:8088"
[meta]
  dir = "$data/influxdb/meta"
[data]
  dir = "$data/influxdb/data"
  wal-dir = "$data/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:8086"
  flux-enabled = true
  log-enabled = false
[logging]
  level = "warn"
CONF
  "$influxd" run -config "$data/influxdb.conf" >"$data/logs/influxd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs http://127.0.0.1:8086/ping >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fs -XPOST http://127.0.0.1:8086/query --data-urlencode "q=CREATE DATABASE gp" >/dev/null

  ensure_keys
  admin_key=$(cat "$data/admin-key")
  viewer_key=$(cat "$data/viewer-key")

  # Each simulated device gets its own password; the embedded broker lets in
  # only those, each on its own outlet, kind and id (a re-run keeps them).
  bin/gpctl provision -out "$data/credentials" -sim-outlets "$outlets" >/dev/null
  start collector
  start api
  for _ in $(seq 100); do curl -fs http://127.0.0.1:8080/healthz >/dev/null 2>&1 && curl -fs http://127.0.0.1:9100/healthz >/dev/null 2>&1 && break; sleep 0.2; done

  # The outlets are judged from when their data began (active_since): the
  # first run's start, kept with the data.
  [ -s "$data/active-since" ] || date -u +%Y-%m-%dT%H:%M:00Z >"$data/active-since"
  start firmware-sim -outlets "$outlets" -interval 10s -speed 60 -credentials "$data/credentials/credentials.csv" \
    -registry "$data/registry.csv" -active-since "$(cat "$data/active-since")" -truth "$data/truth.json"
  for _ in $(seq 50); do [ -s "$data/registry.csv" ] && break; sleep 0.2; done
  curl -fs -XPOST -H "Authorization: Bearer $admin_key" -H "Content-Type: text/csv" \
    --data-binary @"$data/registry.csv" http://127.0.0.1:8080/v1/outlets/import >/dev/null \
    && echo "registry: $outlets outlets imported" || echo "registry import failed (see $data/logs/api.log)" >&2

  cat <<MSG

GreenPost is running ($outlets simulated outlets, reports every 10 s, the city's day 60× faster):
  dashboard   http://127.0.0.1:8080/dashboard/   viewer key: $viewer_key
                                                 admin key:  $admin_key
  API         curl -H "Authorization: Bearer $viewer_key" http://127.0.0.1:8080/v1/rates?group_by=district
  keys        $data/api-keys (one a line: <viewer|admin> <name> <sha256 hex of the key>);
              more: deploy/tools/new-api-key.sh viewer NAME prints a key and its line; add the line, restart
  collector   http://127.0.0.1:9100/metrics   (embedded MQTT broker on 127.0.0.1:1883)
  InfluxDB    http://127.0.0.1:8086           (database gp)
  logs        $data/logs/
Ctrl-C stops it; data stays in $data.
MSG
  wait -n "${pids[@]}"
  echo "a process exited: see $data/logs/" >&2
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
