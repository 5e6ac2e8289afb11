#!/usr/bin/env bash
# Makes a key for the API and prints two lines: the key itself (give it to
# the person or program that will use it; it is stored nowhere), then its
# line for the keys file (GP_API_KEYS_FILE):
# `<role> <name> <sha256 hex> [districts=...] [operators=...]`.
#
#   $ deploy/tools/new-api-key.sh viewer district-office districts=jianghan
#   Xq3...            <- the key
#   viewer district-office 5e88... districts=jianghan   <- append this line to the keys file
#
# Scope fields (optional, each at most once) limit what the key sees:
# districts=<id>,<id> and/or operators=<name>,<name>, percent-encoded
# (operators=SF%20Express). Without them the key sees the whole city.
# With GREENPOST_KEY set, it prints the line for that key instead of a new one.
set -euo pipefail
usage() {
  echo "usage: $0 viewer|admin NAME [districts=<id>,...] [operators=<name>,...]   (NAME: one word, for the logs)" >&2
  exit 2
}
[ $# -ge 2 ] && [ $# -le 4 ] || usage
{ [ "$1" = viewer ] || [ "$1" = admin ]; } && [[ "$2" =~ ^[[:graph:]]+$ ]] && [[ "$2" != \#* ]] || usage
for f in "${@:3}"; do
  [[ "$f" =~ ^(districts|operators)=[[:graph:]]+$ ]] || usage
done
key="${GREENPOST_KEY:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')}"
[ "${#key}" -ge 8 ] || { echo "the key must have 8 or more characters" >&2; exit 2; }
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
printf '%s\n%s\n' "$key" "$(printf '%s ' "$1" "$2" "$hash" "${@:3}" | sed 's/ $//')"
