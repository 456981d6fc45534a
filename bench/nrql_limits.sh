#!/usr/bin/env bash
# Heavy raw-event NRQL against issue 23's target, release build: peak RSS (VmHWM) of one, then six
# `SELECT count(*) FROM Span SINCE 30 days ago` run at once over 560,000 spans sent with OTLP
# (<= 300 MB), and each query's time.
# Usage: bench/nrql_limits.sh   (needs the opentelemetry-proto PyPI package, as bench/apm.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
python3 -c "import opentelemetry.proto" 2>/dev/null || python3 -m pip install -q "opentelemetry-proto==1.45.1"
cargo build --release -q -p lookout --bin lookout
exec python3 bench/nrql_limits.py "$target/release/lookout"
