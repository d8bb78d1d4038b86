#!/usr/bin/env bash
# Installs Debian's chromium for tests/test_browser.py. Playwright drives this
# system browser; it never downloads one of its own.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: chromium is missing and this is not a root Debian/Ubuntu shell;" \
       "the browser test will be skipped (install the 'chromium' package to run it)." >&2
  exit 0
fi
echo "installing Debian's chromium for the browser test ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
chromium --version
