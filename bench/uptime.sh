#!/usr/bin/env bash
# Uptime figures against the targets of issue 4: 10,000 HTTP monitors at a 60 s interval against
# a local server; prints CPU share, RSS and scheduling lag next to their targets, then the
# failure-detection time. Usage: bench/uptime.sh [monitors] [measure_seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p lookout --bin lookout -p lookout-testkit --example http_target
exec python3 bench/uptime.py "$target/release/lookout" "$target/release/examples/http_target" "${1:-10000}" "${2:-180}"
