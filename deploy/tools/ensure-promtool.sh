#!/usr/bin/env bash
# Makes sure promtool (Debian's prometheus package) is installed and prints
# its path: make test checks the alert rules and Prometheus' config of
# deploy/ with it, and runs the rules' unit tests.
set -euo pipefail
if path=$(command -v promtool 2>/dev/null); then echo "$path"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "promtool is missing: install Debian's package as root: apt-get install prometheus" >&2
  exit 1
fi
echo "installing Debian's prometheus package (for promtool)" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
# The package may start a Prometheus server on 9090; the tests never use it.
command -v promtool
