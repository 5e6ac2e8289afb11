#!/usr/bin/env bash
# Makes a key for the API and prints two lines: the key itself (give it to
# the person or program that will use it; it is stored nowhere), then its
# line for the keys file (GP_API_KEYS_FILE): `<role> <name> <sha256 hex>`.
#
#   $ deploy/tools/new-api-key.sh viewer district-office
#   Xq3...            <- the key
#   viewer district-office 5e88...   <- append this line to the keys file
#
# With GREENPOST_KEY set, it prints the line for that key instead of a new one.
set -euo pipefail
if [ $# -ne 2 ] || { [ "$1" != viewer ] && [ "$1" != admin ]; } || ! [[ "$2" =~ ^[[:graph:]]+$ ]] || [[ "$2" == \#* ]]; then
  echo "usage: $0 viewer|admin NAME   (NAME: one word, for the logs)" >&2
  exit 2
fi
key="${GREENPOST_KEY:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')}"
[ "${#key}" -ge 8 ] || { echo "the key must have 8 or more characters" >&2; exit 2; }
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
printf '%s\n%s %s %s\n' "$key" "$1" "$2" "$hash"
