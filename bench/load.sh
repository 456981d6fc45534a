#!/usr/bin/env bash
# Load-generator figures against the targets of issue 6: `lookout load quick` and `wrk -t2 -c50`
# alternate against a local nginx (one worker, 1 KiB static file), 50 connections, 10 s each,
# 5 rounds; prints req/s, generator CPU µs per request, p99 and the ratios, then the peak RSS of a
# long run at that rate (default 600 s: the issue's 10-minute run) and whether it stayed flat.
# Usage: bench/load.sh [rounds] [seconds] [soak_seconds]   (needs nginx and wrk: apt-get install nginx-light wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p lookout --bin lookout
exec python3 bench/load.py "$target/release/lookout" "${1:-5}" "${2:-10}" "${3:-600}"
