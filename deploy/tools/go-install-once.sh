#!/usr/bin/env bash
# go-install-once.sh NAME VERSION MODULE_PATH [go install flags...]
# Builds a Go program once into the user cache (GREENPOST_CACHE_DIR, else
# ~/.cache/greenpost) as NAME-VERSION/NAME and prints the binary's path:
# the one way the ensure-*.sh scripts fetch the tools make needs.
set -euo pipefail
name=$1 version=$2 module=$3
shift 3
cache="${GREENPOST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/greenpost}"
dest="$cache/$name-$version"
if [ ! -x "$dest/$name" ]; then
  echo "building $name $version into $dest (a few minutes, once)" >&2
  mkdir -p "$dest"
  GOBIN="$dest" go install "$@" "$module@v$version"
fi
echo "$dest/$name"
