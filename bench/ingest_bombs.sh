#!/usr/bin/env bash
# Peak RSS and /healthz latency under unauthenticated gzip bombs and huge bodies, /metrics after
# made-up methods, /healthz with 2,000 idle connections under a 1,024 soft open-file limit
# (issue #23, items 2, 8, 9); each peak next to its 150 MB budget. Exit 1 when one is over.
# Debug build by default (what the e2e tests run); LOOKOUT_BIN=path to measure another binary.
# Usage: bench/ingest_bombs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if [ -z "${LOOKOUT_BIN:-}" ]; then
  cargo build -q -p lookout --bin lookout
fi
python3 bench/ingest_bombs.py "${LOOKOUT_BIN:-$target/debug/lookout}"
