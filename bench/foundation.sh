#!/usr/bin/env bash
# The foundation's figures next to their targets (issue 2):
#   durable writes/s through the group commit, SQLite (target >= 50,000/s) and PostgreSQL;
#   start-up time on an empty data dir (target <= 300 ms); RSS at idle (target <= 30 MB).
# Release build; PostgreSQL from LOOKOUT_TEST_PG_URL (default: the local server).
# Usage: bench/foundation.sh [seconds-per-write-run]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p lookout --bin lookout -p lookout-store --example group_commit_bench
echo "== durable writes (group commit)"
"$target/release/examples/group_commit_bench" "${1:-5}"
echo "== start-up and idle memory"
python3 bench/startup_rss.py "$target/release/lookout"
