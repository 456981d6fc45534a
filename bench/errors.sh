#!/usr/bin/env bash
# Error-tracking ingest figures against the targets of issue 3, on SQLite:
#   accepted events/s (durably acknowledged), processed events/s end to end (grouped and
#   queryable; target >= 5,000/s) and the server's peak RSS under that load (target <= 100 MB).
# A real sentry-python envelope (gzip) is replayed with fresh event ids by
# crates/lookout-testkit/examples/sentry_replay.rs. Usage: bench/errors.sh [events] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
events="${1:-30000}"
conc="${2:-64}"
cargo build --release -q -p lookout --bin lookout -p lookout-testkit --example sentry_replay
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$target/release/lookout" serve --data-dir "$dir" --listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 > "$dir/out.log" 2>/dev/null &
pid=$!
for _ in $(seq 1 100); do grep -q "DSN:" "$dir/out.log" 2>/dev/null && break; sleep 0.05; done
dsn=$(grep "DSN:" "$dir/out.log" | awk '{print $NF}')
url=$(grep "UI and API:" "$dir/out.log" | awk '{print $NF}')
key=$(echo "$dsn" | sed 's|.*//\([0-9a-f]*\)@.*|\1|')
count="python3 -c \"import sqlite3; print(sqlite3.connect('file:$dir/lookout.db?mode=ro', uri=True).execute('select count(*) from error_events').fetchone()[0])\""
echo "== lookout (SQLite, release): $events events, $conc concurrent clients"
"$target/release/examples/sentry_replay" --url "$url/api/1/envelope/" --key "$key" --events "$events" \
  --concurrency "$conc" --pid "$pid" --count-cmd "$count"
echo "targets: processed >= 5000 events/s, peak RSS <= 100 MB"
