#!/usr/bin/env bash
# NRQL parse + plan time against issue 8's target (< 1 ms per query), release build.
# Usage: bench/nrql.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p lookout-nrql --example parse_bench
