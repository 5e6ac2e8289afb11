#!/bin/bash
# The compose install's InfluxDB 2.x tokens, made once at first start by
# the influxdb-tokens service with the operator token (setup.sh made it and
# InfluxDB's own setup installed it). Each program gets a token with only
# the rights it needs, written into TOKENS_DIR, the influx-tokens volume
# that the collectors, the API and Grafana mount read-only:
#   collector  write gp                                (storage: write only)
#   api        read gp, read and write gp_api          (registry, roll-up)
#   grafana    read gp, read gp_api                    (the dashboard)
# It also makes the API's own bucket (no retention: the registry's history
# outlives the telemetry's) and DBRP mappings, so that the API may read with
# InfluxQL, which costs InfluxDB about half of what Flux costs.
# A second run finds the tokens and does nothing; to make new ones, delete
# the influx-tokens volume (old tokens stay valid until deleted in InfluxDB).
set -euo pipefail
: "${INFLUX_HOST:?}" "${INFLUX_ORG:?}" "${INFLUX_ADMIN_TOKEN_FILE:?}" "${TOKENS_DIR:?}"
bucket="${GREENPOST_BUCKET:-gp}"
api_bucket="${GREENPOST_API_BUCKET:-gp_api}"
org="$INFLUX_ORG"
INFLUX_TOKEN="$(cat "$INFLUX_ADMIN_TOKEN_FILE")"
export INFLUX_HOST INFLUX_TOKEN

if [ -s "$TOKENS_DIR/collector" ] && [ -s "$TOKENS_DIR/api" ] && [ -s "$TOKENS_DIR/grafana" ]; then
  echo "tokens.sh: the tokens exist in $TOKENS_DIR; nothing to do"
  exit 0
fi

# The first value of a string field in the influx CLI's --json output.
field() { sed -n 's/^[[:space:]]*"'"$1"'":[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1; }

bucket_id() { influx bucket list --org "$org" --name "$1" --json 2>/dev/null | field id || true; }

# InfluxDB may answer before its first-start setup has made the org and
# the bucket: wait for them (WAIT_SECONDS, 120 by default).
gp_id=""
for ((waited = 0; ; waited += 2)); do
  gp_id="$(bucket_id "$bucket")"
  [ -z "$gp_id" ] && [ "$waited" -lt "${WAIT_SECONDS:-120}" ] || break
  sleep 2
done
[ -n "$gp_id" ] || { echo "tokens.sh: no bucket $bucket in org $org: did InfluxDB's setup run?" >&2; exit 1; }
api_id="$(bucket_id "$api_bucket")"
if [ -z "$api_id" ]; then
  api_id="$(influx bucket create --org "$org" --name "$api_bucket" --retention 0 --json | field id)"
fi
[ -n "$api_id" ] || { echo "tokens.sh: could not make bucket $api_bucket" >&2; exit 1; }

for pair in "$bucket:$gp_id" "$api_bucket:$api_id"; do
  db="${pair%%:*}" id="${pair#*:}"
  if ! influx v1 dbrp list --org "$org" --db "$db" --json | grep -q '"bucketID"'; then
    influx v1 dbrp create --org "$org" --db "$db" --rp autogen --bucket-id "$id" --default >/dev/null
  fi
done

# make_token NAME PERMISSIONS...: a token for one program, written atomically.
make_token() {
  local name="$1"; shift
  local token
  token="$(influx auth create --org "$org" --description "greenpost-$name" "$@" --json | field token)"
  [ -n "$token" ] || { echo "tokens.sh: no token for $name" >&2; exit 1; }
  printf '%s\n' "$token" > "$TOKENS_DIR/.$name"
  # The programs run as other users (65532, Grafana 472); only they mount
  # this volume.
  chmod 0644 "$TOKENS_DIR/.$name"
  mv "$TOKENS_DIR/.$name" "$TOKENS_DIR/$name"
}
mkdir -p "$TOKENS_DIR"
make_token collector --write-bucket "$gp_id"
make_token api --read-bucket "$gp_id" --read-bucket "$api_id" --write-bucket "$api_id"
make_token grafana --read-bucket "$gp_id" --read-bucket "$api_id"
echo "tokens.sh: tokens for collector, api and grafana written to $TOKENS_DIR"
