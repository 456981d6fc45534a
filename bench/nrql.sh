#!/usr/bin/env bash
# NRQL against issue 8's targets, release build: parse + plan time (< 1 ms per query), then the
# latency of typical dashboard queries on 10 million spans (<= 50 ms when the rollups apply).
# Usage: bench/nrql.sh   (needs the opentelemetry-proto PyPI package, as bench/apm.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo run --release -q -p lookout-nrql --example parse_bench
python3 -c "import opentelemetry.proto" 2>/dev/null || python3 -m pip install -q "opentelemetry-proto==1.45.1"
cargo build --release -q -p lookout --bin lookout
exec python3 bench/nrql_dashboards.py "$target/release/lookout"
