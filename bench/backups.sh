#!/usr/bin/env bash
# What continuous backups cost and how fast they restore, on SQLite (issue 11 names no speed
# target; these are the figures its closing note reports):
#   1. Sentry ingest (events/s acknowledged and processed) without and with --backup-dir, the same
#      replay against each (crates/lookout-testkit/examples/sentry_replay.rs);
#   2. the backup directory's size against the database's;
#   3. `lookout restore` of the newest state (snapshot + every shipped commit) and
#      `lookout backup verify`, timed.
# Usage: bench/backups.sh [events] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
events="${1:-30000}"
conc="${2:-64}"
cargo build --release -q -p lookout --bin lookout -p lookout-testkit --example sentry_replay
work=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # $1: label, rest: extra serve flags
  local label=$1; shift
  local dir="$work/$label"
  mkdir -p "$dir"
  "$target/release/lookout" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 "$@" > "$dir/out.log" 2>/dev/null &
  pid=$!
  for _ in $(seq 1 200); do grep -q "DSN:" "$dir/out.log" 2>/dev/null && break; sleep 0.05; done
  local dsn url key count
  dsn=$(grep "DSN:" "$dir/out.log" | awk '{print $NF}')
  url=$(grep "UI and API:" "$dir/out.log" | awk '{print $NF}')
  key=$(echo "$dsn" | sed 's|.*//\([0-9a-f]*\)@.*|\1|')
  count="python3 -c \"import sqlite3; print(sqlite3.connect('file:$dir/data/lookout.db?mode=ro', uri=True).execute('select count(*) from error_events').fetchone()[0])\""
  echo "== $label: $events events, $conc concurrent clients"
  "$target/release/examples/sentry_replay" --url "$url/api/1/envelope/" --key "$key" --events "$events" \
    --concurrency "$conc" --pid "$pid" --count-cmd "$count"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

run plain
run backed-up --backup-dir "$work/backups"
db=$(du -sb "$work/backed-up/data/lookout.db" | cut -f1)
bk=$(du -sb "$work/backups" | cut -f1)
echo "== backup directory: $((bk / 1024)) KiB for a $((db / 1024)) KiB database"
start=$(date +%s.%N)
"$target/release/lookout" --data-dir "$work/restored" restore --backup-dir "$work/backups"
end=$(date +%s.%N)
echo "restore of the newest state: $(python3 -c "print(f'{$end - $start:.2f}')") s"
start=$(date +%s.%N)
"$target/release/lookout" backup verify --backup-dir "$work/backups" | tail -1
end=$(date +%s.%N)
echo "backup verify: $(python3 -c "print(f'{$end - $start:.2f}')") s"
