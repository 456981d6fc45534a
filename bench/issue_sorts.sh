#!/usr/bin/env bash
# The issue list sorted each way at 100,000 issues, with the sort indexes and without them
# (issue 31, target 4); see bench/issue_sorts.py.
# Usage: bench/issue_sorts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p lookout --bin lookout
exec python3 bench/issue_sorts.py "$target/release/lookout"
