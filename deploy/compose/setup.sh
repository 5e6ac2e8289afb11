#!/usr/bin/env bash
# Prepares ./secrets for compose.yaml, from the outlet registry and the
# device list (README.md, "Installing a city"). Run it again after changing
# the device list: new devices are added, removed ones revoked, every
# existing password, key and certificate kept. Then `docker compose up -d`
# (a running Mosquitto reloads its users with `docker compose kill -s HUP
# mosquitto`).
#
#   setup.sh -registry registry.csv -devices devices.csv [-broker-host mqtt.city.example]
#   setup.sh -sim-outlets 50          (the simulator's city, for the sim profile)
#
# Needs bin/gpctl (make build) or GPCTL, and openssl.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
gpctl="${GPCTL:-$root/bin/gpctl}"
secrets="${GREENPOST_SECRETS:-$here/secrets}"
collectors=collector-1,collector-2   # compose.yaml's two collectors

usage() { sed -n '9,11p' "$0" >&2; exit 2; }
provision_args=() broker_host=""
while [ $# -gt 0 ]; do
  case "$1" in
    -registry|-devices|-sim-outlets) [ $# -ge 2 ] || usage; provision_args+=("$1" "$2"); shift 2 ;;
    -broker-host) [ $# -ge 2 ] || usage; broker_host="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[ ${#provision_args[@]} -gt 0 ] || usage
[ -x "$gpctl" ] || { echo "setup.sh: $gpctl not found: run make build (or set GPCTL)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "setup.sh: openssl is needed" >&2; exit 1; }

umask 077
mkdir -p "$secrets" "$secrets/certs"
chmod 0700 "$secrets"

# Devices and collectors: passwords, Mosquitto's users and ACL.
"$gpctl" provision -out "$secrets/provision" "${provision_args[@]}" -collectors "$collectors"

# A secret of 24 random characters, made once.
random_secret() {
  [ -s "$1" ] || { openssl rand -base64 24 | tr -d '/+=\n' | head -c 24; echo; } > "$1"
}
random_secret "$secrets/influx-admin-password"
random_secret "$secrets/influx-admin-token"
random_secret "$secrets/grafana-admin-password"

# The API's keys: an admin and a viewer key, made once. The API keeps only
# their SHA-256 (api-keys); the keys themselves are for the bureau.
if [ ! -s "$secrets/api-keys" ]; then
  admin=$(openssl rand -hex 20) viewer=$(openssl rand -hex 20)
  printf 'admin %s\nviewer %s\n' "$admin" "$viewer" > "$secrets/api-keys.txt"
  {
    echo "# <role> <name> <sha256 hex of the key> [districts=<id>,...] [operators=<name>,...]; the keys are in api-keys.txt"
    echo "# a district office's key: deploy/tools/new-api-key.sh viewer jianghan-office districts=jianghan"
    echo "admin city-admin $(printf %s "$admin" | openssl dgst -sha256 -r | cut -d' ' -f1)"
    echo "viewer bureau $(printf %s "$viewer" | openssl dgst -sha256 -r | cut -d' ' -f1)"
  } > "$secrets/api-keys"
  echo "API keys written to $secrets/api-keys.txt (admin, viewer)"
fi

# The broker's TLS: a private CA (devices and collectors trust ca.pem) and
# a server certificate for the names it is reached by.
certs="$secrets/certs"
if [ ! -s "$certs/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=GreenPost MQTT CA" -keyout "$certs/ca.key" -out "$certs/ca.pem" 2>/dev/null
fi
if [ ! -s "$certs/server.pem" ] || [ -n "$broker_host" ]; then
  san="DNS:mosquitto,DNS:localhost,IP:127.0.0.1${broker_host:+,DNS:$broker_host}"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=${broker_host:-mosquitto}" \
    -keyout "$certs/server.key" -out "$certs/server.csr" 2>/dev/null
  openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca.key" -CAcreateserial \
    -days 825 -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") \
    -out "$certs/server.pem" 2>/dev/null
  rm -f "$certs/server.csr"
fi

# What the containers read. They run as other users than you (Mosquitto
# 1883, the GreenPost images 65532, Grafana 472) and compose mounts these
# files as they are, so they are made readable; the 0700 directory keeps
# other users of this machine out. ca.key and the clear-text files
# (credentials.csv, api-keys.txt) stay 0600: no container reads them but
# the simulator's credentials.csv (sim profile only).
for f in provision/mosquitto/passwd provision/mosquitto/acl provision/collectors/* \
         certs/ca.pem certs/server.pem certs/server.key api-keys \
         influx-admin-password influx-admin-token grafana-admin-password; do
  chmod 0644 "$secrets"/$f
done
[ "${provision_args[0]}" != -sim-outlets ] || chmod 0644 "$secrets/provision/credentials.csv"
echo "secrets ready in $secrets: docker compose -f $here/compose.yaml up -d"
