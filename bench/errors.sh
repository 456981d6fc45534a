#!/usr/bin/env bash
# Error-tracking ingest figures against the targets of issues 3 and 30, on SQLite:
#   accepted events/s (durably acknowledged), processed events/s end to end (grouped and
#   queryable; target >= 6,000/s, issue 31) and the server's peak RSS under that load (target <= 100 MB);
#   then the source-mapped variant (issue 30): JavaScript events of 30 minified frames, once with
#   no maps and once with a ~5 MB map uploaded beforehand with sentry-cli, and the ratio of the
#   two processed rates (target >= 80 %).
# A real sentry-python envelope (gzip) is replayed with fresh event ids by
# crates/lookout-testkit/examples/sentry_replay.rs; the JavaScript event and the app behind the
# map come from bench/sourcemap_app.js (esbuild and sentry-cli: `npm ci` in
# tests/sdk/clients/sourcemaps).
# Usage: bench/errors.sh [events] [concurrency] [source-mapped events]
#   PROFILE=debug bench/errors.sh …   uses a debug build (say so next to the figures).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
events="${1:-30000}"
conc="${2:-64}"
js_events="${3:-10000}"
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release -q -p lookout --bin lookout -p lookout-testkit --example sentry_replay
else
  cargo build -q -p lookout --bin lookout -p lookout-testkit --example sentry_replay
fi
bin="$target/$profile"
token="lk_bench_admin_token_0123456789abcdef"
dirs=()
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "${dirs[@]}"' EXIT

# Starts a server on a fresh data dir; sets dir, pid, url, key.
start() {
  dir=$(mktemp -d)
  dirs+=("$dir")
  LOOKOUT_BOOTSTRAP_TOKEN="$token" "$bin/lookout" serve --data-dir "$dir" --listen 127.0.0.1:0 \
    --otlp-listen 127.0.0.1:0 > "$dir/out.log" 2>/dev/null &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 200); do grep -q "DSN:" "$dir/out.log" 2>/dev/null && break; sleep 0.05; done
  local dsn
  dsn=$(grep "DSN:" "$dir/out.log" | awk '{print $NF}')
  url=$(grep "UI and API:" "$dir/out.log" | awk '{print $NF}')
  key=$(echo "$dsn" | sed 's|.*//\([0-9a-f]*\)@.*|\1|')
}

# Replays N events (optionally another envelope) at the server; prints the replayer's lines.
replay() {
  local n="$1"; shift
  local count="python3 -c \"import sqlite3; print(sqlite3.connect('file:$dir/lookout.db?mode=ro', uri=True).execute('select count(*) from error_events').fetchone()[0])\""
  "$bin/examples/sentry_replay" --url "$url/api/1/envelope/" --key "$key" --events "$n" \
    --concurrency "$conc" --pid "$pid" --count-cmd "$count" "$@"
}

start
echo "== lookout (SQLite, $profile): $events events, $conc concurrent clients"
replay "$events"
echo "targets: processed >= 6000 events/s (issue 31), peak RSS <= 100 MB"

# The source-mapped variant: the same JavaScript event against a server without maps, then
# against one with the map uploaded (by release and ~/ URL, as CI pipelines do).
app=$(mktemp -d)
dirs+=("$app")
node bench/sourcemap_app.js 8500 "$app"
tests/sdk/clients/sourcemaps/node_modules/.bin/esbuild "$app/app.js" --bundle --format=iife --global-name=app \
  --minify --sourcemap --outfile="$app/static/app.min.js" --log-level=warning
node bench/sourcemap_app.js 8500 "$app/static" bench@1
mv "$app/static/event.envelope" "$app/event.envelope"
map_mb=$(python3 -c "import os; print(f'{os.path.getsize(\"$app/static/app.min.js.map\") / 1e6:.1f}')")

start
echo "== JavaScript events of 30 minified frames, no source maps: $js_events events"
out=$(replay "$js_events" --envelope "$app/event.envelope")
echo "$out"
plain=$(echo "$out" | sed -n 's/^processed end to end.*: \([0-9]*\) events\/s/\1/p')
kill "$pid"

start
SENTRY_LOG_LEVEL=error tests/sdk/clients/sourcemaps/node_modules/@sentry/cli/bin/sentry-cli --url "$url" --auth-token "$token" \
  sourcemaps upload --org default --project default --release bench@1 --url-prefix '~/static' "$app/static" > /dev/null
echo "== the same events symbolicated through a $map_mb MB map uploaded beforehand: $js_events events"
out=$(replay "$js_events" --envelope "$app/event.envelope")
echo "$out"
mapped=$(echo "$out" | sed -n 's/^processed end to end.*: \([0-9]*\) events\/s/\1/p')
resolved=$(python3 -c "import sqlite3; print(sqlite3.connect('file:$dir/lookout.db?mode=ro', uri=True).execute(\"select count(*) from error_events where body like '%resolved_with%'\").fetchone()[0])" 2>/dev/null || echo "?")
echo "events stored symbolicated: $resolved of $js_events"
status=0
if [ "$resolved" != "$js_events" ]; then
  # A figure over events that were not all symbolicated measures something else.
  echo "MISMATCH: $resolved events symbolicated, $js_events JavaScript events sent"
  status=1
fi
python3 -c "
plain, mapped = float('${plain:-0}'), float('${mapped:-0}')
ratio = mapped / plain * 100 if plain else 0
print(f'processed with symbolication: {mapped:.0f} events/s; without: {plain:.0f} events/s; ratio {ratio:.0f} % (target >= 80 %)')
"
exit "$status"
