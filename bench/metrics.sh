#!/usr/bin/env bash
# Prometheus remote-write ingest (samples/s, durable, SQLite; target >= 500,000/s) and storage
# (bytes/sample after compaction; target <= 2) against the targets of issue 29.
# Exits 1 when a target is missed.
# Usage: bench/metrics.sh [requests of 2,000 samples]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p lookout --bin lookout
out="$(python3 bench/metrics.py "$target/release/lookout" "${1:-1500}" | tee /dev/stderr)"
rate="$(sed -n 's/^remote-write ingest.*: \([0-9,]*\) samples\/s.*/\1/p' <<<"$out" | tr -d ,)"
bps="$(sed -n 's/^storage after compaction: \([0-9.]*\) bytes\/sample.*/\1/p' <<<"$out")"
fail=0
[ "${rate:-0}" -ge 500000 ] || { echo "MISSED: ingest ${rate:-?} samples/s < 500,000" >&2; fail=1; }
awk -v b="${bps:-99}" 'BEGIN { exit !(b <= 2) }' || { echo "MISSED: ${bps:-?} bytes/sample > 2" >&2; fail=1; }
exit "$fail"
