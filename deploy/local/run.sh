#!/usr/bin/env bash
# GreenPost on one machine, with nothing installed but Go: `make run`.
#
# Starts, in order: InfluxDB 1.8.10 (built once by go install, data kept in
# ./data/influxdb), the collector with its embedded MQTT broker on
# 127.0.0.1:1883, the API and dashboard on 127.0.0.1:8080, and the simulator
# (a city of outlets reporting every 10 s) whose outlets are imported into
# the registry. On the first run it fills the last 7 days of the city's
# history first, so 7-day figures and trends have data at once.
#
# Ctrl-C (SIGINT) or SIGTERM stops everything in reverse order — the
# simulator, the API, the collector (which drains its spool into InfluxDB),
# then InfluxDB — and exits 0. Each program runs in a process group of its
# own, so a terminal's Ctrl-C reaches this script alone and the order holds.
# Data and the logs of the last runs stay in ./data.
#
# The parts are functions so that tests can run them for real: sourcing this
# file defines them and starts nothing (testenv.DeploySettings reads
# settings_for, e2e's TestMakeRun runs the whole script).
set -euo pipefail

# Ports, and where the programs are (tests run the script on free ports).
influx_port=${GREENPOST_INFLUX_PORT:-8086}
influx_rpc_port=${GREENPOST_INFLUX_RPC_PORT:-8088}
mqtt_port=${GREENPOST_MQTT_PORT:-1883}
api_port=${GREENPOST_API_PORT:-8080}
collector_port=${GREENPOST_COLLECTOR_PORT:-9100}
bin=${GREENPOST_BIN:-bin}

# settings_for prints the GP_ settings that one program gets here, one
# NAME=VALUE a line. Tests check every name and value with the program's
# own settings loader, so a setting this script gives cannot be refused.
settings_for() {
  local influx="GP_INFLUX_URL=http://127.0.0.1:$influx_port"
  case "$1" in
    collector)
      printf '%s\n' "$influx" GP_INFLUX_BUCKET=gp/autogen \
        "GP_EMBEDDED_BROKER=127.0.0.1:$mqtt_port" "GP_SPOOL_DIR=$data/spool" "GP_COLLECTOR_ADDR=127.0.0.1:$collector_port" \
        "GP_EMBEDDED_BROKER_USERS_FILE=$data/credentials/embedded-users" ;;
    api)
      printf '%s\n' "$influx" GP_INFLUX_BUCKET=gp/autogen \
        "GP_API_ADDR=127.0.0.1:$api_port" "GP_API_KEYS_FILE=$data/api-keys" ;;
    firmware-sim)
      printf '%s\n' "GP_MQTT_URL=tcp://127.0.0.1:$mqtt_port" "$influx" GP_INFLUX_BUCKET=gp/autogen ;;
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

# rotate_logs keeps the logs of the last runs: logs/ holds this run's,
# logs/run-1 the run before, and so on up to logs/run-$keep (older ones go).
rotate_logs() {
  local dir=$1 keep=${2:-5} i
  mkdir -p "$dir"
  compgen -G "$dir/*.log" >/dev/null || return 0
  rm -rf "${dir:?}/run-$keep"
  for ((i = keep - 1; i >= 1; i--)); do
    if [ -d "$dir/run-$i" ]; then mv "$dir/run-$i" "$dir/run-$((i + 1))"; fi
  done
  mkdir "$dir/run-1"
  mv "$dir"/*.log "$dir/run-1/"
}

# start runs a program with its settings in the background (in a process
# group of its own: set -m), its output in its log, and remembers it for
# the stop.
start() {
  local prog=$1; shift
  local env
  mapfile -t env < <(settings_for "$prog")
  env "${env[@]}" "$bin/$prog" "$@" >"$data/logs/$prog.log" 2>&1 &
  pids+=($!)
  names+=("$prog")
}

# stop_all stops the programs in reverse order of their start, each after
# the one before has exited: the collector drains into a running InfluxDB.
stop_all() {
  local i
  [ "${#pids[@]}" -gt 0 ] || return 0
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    echo "stopping ${names[$i]}…"
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  pids=() names=()
  echo "stopped"
}

# fill_history writes the last $history_days days of the simulated city
# into InfluxDB, once (a later run keeps them, and the time it was off is
# an honest gap), printing its progress.
fill_history() {
  if [ "$history_days" = 0 ] || [ -e "$data/history.done" ]; then return 0; fi
  echo "filling the last $history_days days of history for $outlets outlets (first run only)…"
  local env line
  mapfile -t env < <(settings_for firmware-sim)
  { env "${env[@]}" "$bin/firmware-sim" -mode history -influx -days "$history_days" -outlets "$outlets" 2>&1 >/dev/null; } |
    tee "$data/logs/history.log" | while IFS= read -r line; do
      if [[ "$line" == *'"msg":"history progress"'* && "$line" =~ \"percent\":([0-9]+) ]]; then
        echo "  history: ${BASH_REMATCH[1]} %"
      fi
    done
  date -u +%FT%TZ > "$data/history.done"
  # The city's data now begins where the history does: its outlets are
  # judged from there (active_since), not from the live start.
  local from
  from=$(grep -o '"msg":"history",.*' "$data/logs/history.log" | grep -o '"from":"[^"]*"' | head -n 1 | cut -d'"' -f4)
  if [ -n "$from" ] && [ ! -s "$data/active-since" ]; then
    date -u -d "$from" +%Y-%m-%dT%H:%M:00Z > "$data/active-since"
  fi
  echo "  history: done (see $data/logs/history.log)"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_http waits up to 20 s for a URL to answer.
wait_http() {
  local _
  for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "no answer from $1 (see $data/logs/)" >&2
  return 1
}

main() {
  cd "$(dirname "$0")/../.."
  data="${GREENPOST_DATA:-$PWD/data}"
  outlets="${GREENPOST_OUTLETS:-50}"
  history_days="${GREENPOST_HISTORY_DAYS:-7}"
  command -v curl >/dev/null || { echo "curl is needed (apt-get install curl)" >&2; exit 1; }
  for p in "$influx_port" "$mqtt_port" "$api_port" "$collector_port" "$influx_rpc_port"; do
    port_free "$p" || { echo "port $p is in use: stop what uses it first" >&2; exit 1; }
  done
  mkdir -p "$data/influxdb" "$data/spool"
  rotate_logs "$data/logs"
  influxd=$(deploy/tools/ensure-influxd.sh)

  # Every program in a process group of its own, so that the terminal's
  # Ctrl-C reaches this script alone and stop_all keeps the order.
  set -m
  pids=() names=()
  trap 'stop_all; exit 0' INT TERM
  trap 'stop_all' EXIT

  cat > "$data/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$influx_rpc_port"
[meta]
  dir = "$data/influxdb/meta"
[data]
  dir = "$data/influxdb/data"
  wal-dir = "$data/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$influx_port"
  flux-enabled = true
  log-enabled = false
[logging]
  level = "warn"
CONF
  "$influxd" run -config "$data/influxdb.conf" >"$data/logs/influxd.log" 2>&1 &
  pids+=($!) names+=(influxd)
  wait_http "http://127.0.0.1:$influx_port/ping"
  curl -fs -XPOST "http://127.0.0.1:$influx_port/query" --data-urlencode "q=CREATE DATABASE gp" >/dev/null

  ensure_keys
  admin_key=$(cat "$data/admin-key")
  viewer_key=$(cat "$data/viewer-key")

  # Each simulated device gets its own password; the embedded broker lets in
  # only those, each on its own outlet, kind and id (a re-run keeps them).
  "$bin/gpctl" provision -out "$data/credentials" -sim-outlets "$outlets" >/dev/null
  start collector
  fill_history
  start api
  wait_http "http://127.0.0.1:$api_port/healthz"
  wait_http "http://127.0.0.1:$collector_port/healthz"

  # The outlets are judged from when their data began (active_since): the
  # first run's start, kept with the data.
  [ -s "$data/active-since" ] || date -u +%Y-%m-%dT%H:%M:00Z >"$data/active-since"
  start firmware-sim -outlets "$outlets" -interval 10s -speed 60 -credentials "$data/credentials/credentials.csv" \
    -registry "$data/registry.csv" -active-since "$(cat "$data/active-since")" -truth "$data/truth.json"
  for _ in $(seq 50); do [ -s "$data/registry.csv" ] && break; sleep 0.2; done
  if curl -fs -XPOST -H "Authorization: Bearer $admin_key" -H "Content-Type: text/csv" \
    --data-binary @"$data/registry.csv" "http://127.0.0.1:$api_port/v1/outlets/import" >/dev/null; then
    echo "registry: $outlets outlets imported"
  else
    echo "registry import failed (see $data/logs/api.log)" >&2
  fi

  cat <<MSG

GreenPost is running ($outlets simulated outlets, reports every 10 s, the city's day 60× faster):
  dashboard   http://127.0.0.1:$api_port/dashboard/   viewer key: $viewer_key
                                                 admin key:  $admin_key
  API         curl -H "Authorization: Bearer $viewer_key" http://127.0.0.1:$api_port/v1/rates?group_by=district
  keys        $data/api-keys (one a line: <viewer|admin> <name> <sha256 hex of the key>);
              more: deploy/tools/new-api-key.sh viewer NAME prints a key and its line; add the line, restart
  figures     the last $history_days days from the filled history at once (the roll-up takes a minute;
              until then a large window answers "being prepared"); live reports from the first minute
  collector   http://127.0.0.1:$collector_port/metrics   (embedded MQTT broker on 127.0.0.1:$mqtt_port)
  InfluxDB    http://127.0.0.1:$influx_port           (database gp)
  logs        $data/logs/ (this run), $data/logs/run-1 … run-5 (the runs before)
Ctrl-C or SIGTERM stops it in order and exits 0; data stays in $data.
MSG
  local code=0
  wait -n "${pids[@]}" || code=$?
  echo "a program exited (code $code): see $data/logs/" >&2
  exit 1
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
