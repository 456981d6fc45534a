#!/usr/bin/env bash
# One `lookout probe` agent against the targets of issue 28: 10,000 HTTP monitors at a 60 s
# interval against a local server, all assigned to the agent's location (not checked locally);
# prints the agent's CPU share and peak RSS next to the targets (<= 10 % of one core,
# <= 100 MB). Usage: bench/probes.sh [monitors] [measure_seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p lookout --bin lookout -p lookout-testkit --example http_target
exec python3 bench/probes.py "$target/release/lookout" "$target/release/examples/http_target" "${1:-10000}" "${2:-180}"
