#!/usr/bin/env bash
# Screenshot a deepcast HTML report with headless Chromium, to check that it renders
# (offline: the report loads nothing from the network, and Chromium is told not to try).
#
#   scripts/screenshot_report.sh report.html [out.png] [WIDTHxHEIGHT]
#
# Needs Chromium (not a Python dependency, and the test suite never uses it):
#   Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y chromium
#   macOS:          brew install --cask chromium   (or set CHROMIUM=/path/to/chrome)
set -euo pipefail

report=${1:?usage: $0 report.html [out.png] [WIDTHxHEIGHT]}
out=${2:-${report%.*}.png}
size=${3:-1280x2400}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [[ -z "$browser" ]]; then
  echo "error: Chromium not found; install it (sudo apt-get install -y chromium) or set CHROMIUM" >&2
  exit 2
fi
[[ -f "$report" ]] || { echo "error: report not found: $report" >&2; exit 2; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --no-sandbox: Chromium refuses to run as root with its sandbox (containers, CI)
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --screenshot="$(realpath -m "$out")" \
  --window-size="${size/x/,}" "file://$(realpath "$report")" 2>/dev/null
echo "wrote $out"
