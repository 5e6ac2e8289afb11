#!/usr/bin/env bash
# Makes sure Debian's mosquitto broker is installed (tests start it by hand
# with a generated config, never as a system service) and prints its path.
set -euo pipefail
find_it() { command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; }; }
if path=$(find_it); then echo "$path"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "mosquitto is missing: install Debian's package as root: apt-get install mosquitto" >&2
  exit 1
fi
echo "installing Debian's mosquitto package" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >&2
# The package may start a system broker on 1883; the tests never use it.
find_it
