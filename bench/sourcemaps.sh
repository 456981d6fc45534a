#!/usr/bin/env bash
# Symbolication speed against issue 30's target: a 30-frame stack resolved through a cached 5 MB
# source map in <= 1 ms per event. esbuild (tests/sdk/clients/sourcemaps, `npm ci` there) bundles
# a generated app of a few thousand functions into a minified file with a ~5 MB map.
# Usage: bench/sourcemaps.sh [functions] [events]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
fns="${1:-8500}"
events="${2:-2000}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
node bench/sourcemap_app.js "$fns" "$dir"
tests/sdk/clients/sourcemaps/node_modules/.bin/esbuild "$dir/app.js" --bundle --format=iife --global-name=app \
  --minify --sourcemap --outfile="$dir/app.min.js" --log-level=warning
cargo build --release -q -p lookout-protocol --example sourcemap_speed
"$target/release/examples/sourcemap_speed" "$dir/app.min.js.map" "$dir/app.min.js" "$events"
