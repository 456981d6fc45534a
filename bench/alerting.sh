#!/usr/bin/env bash
# Alerting figures against the targets of issue 5: latency from an inbound PagerDuty event to the
# webhook delivered (target p99 <= 1 s), and incidents opened per second by the engine.
# Usage: bench/alerting.sh [sqlite|postgres] [latency_events] [throughput_seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p lookout --bin lookout
exec python3 bench/alerting.py "$target/release/lookout" "${1:-sqlite}" "${2:-300}" "${3:-10}"
