#!/usr/bin/env bash
# Vendors the dashboard's one third-party asset, Chart.js, from npm.
#
#   scripts/vendor-dashboard.sh          install chart.js@$CHARTJS_VERSION with npm into a
#                                        cache folder, copy its UMD build and licence into
#                                        gateway/dashboard/vendor/ and write SHA256SUMS
#   scripts/vendor-dashboard.sh --check  only verify that the committed files are what npm
#                                        ships (and that SHA256SUMS matches them)
#
# The dashboard has no build step: the files under gateway/dashboard/ are embedded into
# the binary as they are. This script is the only place that talks to a registry, and
# only when someone runs it; nothing at build or run time fetches anything.
set -euo pipefail

CHARTJS_VERSION=4.6.1
root=$(cd -P "$(dirname "$0")/.." && pwd)
vendor="$root/gateway/dashboard/vendor"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/llmops/npm-vendor"

log() { printf '\033[1m[vendor]\033[0m %s\n' "$*" >&2; }

check=""
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }

# A throw-away package in the cache folder pins the exact version; npm verifies the
# tarball's integrity against the registry's metadata.
mkdir -p "$cache"
cat > "$cache/package.json" <<EOF
{ "name": "llmops-dashboard-vendor", "private": true, "version": "0.0.0",
  "dependencies": { "chart.js": "$CHARTJS_VERSION" } }
EOF
installed=$(node -p "try { require('$cache/node_modules/chart.js/package.json').version } catch (e) { '' }" 2>/dev/null || true)
if [ "$installed" != "$CHARTJS_VERSION" ]; then
  log "npm install chart.js@$CHARTJS_VERSION into $cache"
  (cd "$cache" && npm install --no-audit --no-fund --ignore-scripts --save-exact >&2)
fi
pkg="$cache/node_modules/chart.js"
got=$(node -p "require('$pkg/package.json').version")
[ "$got" = "$CHARTJS_VERSION" ] || { echo "npm installed chart.js $got, not $CHARTJS_VERSION" >&2; exit 1; }

# The UMD build: 4.x ships dist/chart.umd.min.js (minified); older 4.x only chart.umd.js.
if [ -f "$pkg/dist/chart.umd.min.js" ]; then
  src="$pkg/dist/chart.umd.min.js"
elif [ -f "$pkg/dist/chart.umd.js" ]; then
  src="$pkg/dist/chart.umd.js"
else
  echo "no UMD build in $pkg/dist" >&2; exit 1
fi
lic="$pkg/LICENSE.md"
[ -f "$lic" ] || lic="$pkg/LICENSE"
[ -f "$lic" ] || { echo "no licence file in $pkg" >&2; exit 1; }

if [ -n "$check" ]; then
  status=0
  for pair in "$src:chart.umd.min.js" "$lic:chart.js.LICENSE.md"; do
    from=${pair%%:*}; to=${pair##*:}
    if ! cmp -s "$from" "$vendor/$to"; then
      echo "FAIL gateway/dashboard/vendor/$to differs from chart.js@$CHARTJS_VERSION's $(basename "$from")" >&2
      status=1
    fi
  done
  if ! (cd "$vendor" && sha256sum --quiet -c SHA256SUMS); then
    echo "FAIL gateway/dashboard/vendor/SHA256SUMS does not match the files" >&2
    status=1
  fi
  [ "$status" = 0 ] && log "ok: vendor/ is chart.js@$CHARTJS_VERSION as npm ships it"
  exit "$status"
fi

mkdir -p "$vendor"
cp "$src" "$vendor/chart.umd.min.js"
cp "$lic" "$vendor/chart.js.LICENSE.md"
chmod 644 "$vendor/chart.umd.min.js" "$vendor/chart.js.LICENSE.md"
(cd "$vendor" && sha256sum chart.umd.min.js chart.js.LICENSE.md > SHA256SUMS)
log "vendored chart.js@$CHARTJS_VERSION ($(basename "$src")) into gateway/dashboard/vendor/"
cat "$vendor/SHA256SUMS" >&2
