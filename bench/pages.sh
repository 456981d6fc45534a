#!/usr/bin/env bash
# The pages a team works in (issue 25) next to the target: every page under 320 ms (median and
# slowest of 20 signed-in GETs, with incidents, monitors and a schedule behind them).
# Release build. Usage: bench/pages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p lookout --bin lookout
LOOKOUT_BIN="$target/release/lookout" python3 bench/pages.py
