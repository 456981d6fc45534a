#!/usr/bin/env bash
# APM ingest and query speed against the targets of issue 7, on the embedded SQLite store:
# realistic OTLP/HTTP protobuf batches (512 spans: server, database and external spans of 5
# services and 200 routes, with the attributes an OpenTelemetry SDK sends) posted by wrk over 8
# connections for a sustained period; prints spans/s acknowledged and rolled up, and peak RSS. Then seeds 7 days of
# minute, hour and day rollups for 200 routes and times the 7-day p95-by-route query
# (GET /api/v1/apm/services/{name}/transactions), and the render of a 10,000-span trace.
# Exits 1 when a target is missed.
# Usage: bench/apm.sh [seconds of ingest]   (needs wrk, and the opentelemetry-proto PyPI package)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
target="${CARGO_TARGET_DIR:-target}"
python3 -c "import opentelemetry.proto" 2>/dev/null || python3 -m pip install -q "opentelemetry-proto==1.45.1"
cargo build --release -q -p lookout --bin lookout
exec python3 bench/apm.py "$target/release/lookout" "${1:-30}"
