#!/usr/bin/env bash
# Regression-detection quality and speed against the targets of issue 9: Lookout's detector
# (`lookout regress analyze`) beside Apache Otava (p = 0.001, window 50) on the same labelled
# synthetic series (steps of k·σ, k = 0…5, Gaussian noise with and without 5 % outliers, 150 series
# per cell); prints false alarms per 100 points, recall, precision and F1 per cell, then the time
# to analyse a 10,000-point series. Exits 1 when a target is missed.
# Usage: bench/regress.sh [series per cell]   (installs apache-otava and numpy from PyPI if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
python3 -c "import otava, numpy" 2>/dev/null || python3 -m pip install -q "apache-otava==0.8.0" numpy
cargo build --release -q -p lookout --bin lookout
exec python3 bench/regress.py --lookout "$target/release/lookout" --per-cell "${1:-150}"
