#!/usr/bin/env bash
# Make sure headless Chromium is installed (Debian's `chromium` package) for the report's
# browser test. Does nothing when it is already there; otherwise installs it with apt-get,
# as root or through sudo. Exits non-zero with a message saying what to do when it cannot.
set -euo pipefail

CHROMIUM="${ALIGNLAB_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "ensure_chromium: $CHROMIUM is missing and installing it needs root;" \
         "run: sudo apt-get update && sudo apt-get install -y chromium" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: $CHROMIUM is missing and there is no apt-get here;" \
         "install Chromium and set ALIGNLAB_CHROMIUM to its path" >&2
    exit 1
fi

echo "ensure_chromium: installing Debian's chromium package (once per machine)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2
$SUDO apt-get install -y -q --no-install-recommends chromium >&2
if [ ! -x "$CHROMIUM" ]; then
    echo "ensure_chromium: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
