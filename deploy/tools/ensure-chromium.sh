#!/usr/bin/env bash
# Makes sure Debian's chromium is installed (the API's dashboard test drives
# it headless through the DevTools protocol), with a Chinese font (the page
# is Chinese first; without one its screenshots show empty boxes), and
# prints its path. Installing needs root; as another user it says what to
# run and fails, so the browser test fails instead of quietly not running.
set -euo pipefail
find_it() {
  for c in chromium chromium-browser; do
    if p=$(command -v "$c" 2>/dev/null); then echo "$p"; return 0; fi
  done
  [ -x /usr/bin/chromium ] && { echo /usr/bin/chromium; return 0; }
  return 1
}
has_cjk_font() { fc-list :lang=zh 2>/dev/null | grep -q .; }
if path=$(find_it) && has_cjk_font; then echo "$path"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium or a Chinese font is missing: install Debian's packages as root: apt-get install chromium fonts-wqy-microhei" >&2
  exit 1
fi
echo "installing Debian's chromium and a Chinese font (fonts-wqy-microhei)" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-wqy-microhei >&2
find_it
