#!/usr/bin/env bash
# The PromQL evaluator's speed against issue 29's target: `sum by (x) (rate(m[5m]))` over
# 10,000 series, 24 h at 60 s steps, <= 200 ms. Synthesised in-memory data (the evaluator
# alone, no store; bench/metrics.sh times ingest and storage, not queries). Prints the median
# and best of 7 runs and the CPU time per run: on a shared machine the median depends on the
# neighbours' load.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p lookout-promql --example bench_promql
