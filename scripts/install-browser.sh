#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright drives it; no browser is ever downloaded by a tool).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: chromium is not installed and this is not a root Debian shell; browser tests will be skipped." >&2
  echo "      install it with: sudo apt-get install -y chromium" >&2
  exit 0
fi
echo "installing Debian's chromium for the browser tests..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
