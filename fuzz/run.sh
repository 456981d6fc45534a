#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/fuzz_targets and runs each for a fixed time, one after
# the other, then prints one line per target: its name, how many inputs it ran, and the result
# (ok, crash, timeout, oom, leak, or error when libFuzzer did not start). Exits non-zero when any
# target did not end ok, after running them all, so one crash does not hide the next.
#
#   fuzz/run.sh                       every target, 60 s each
#   FUZZ_SECONDS=300 fuzz/run.sh promql nrql_parser
#
# It works on a stable toolchain: cargo-fuzz needs -Z flags for the sanitizer and coverage
# instrumentation, and RUSTC_BOOTSTRAP=1 lets a stable rustc accept them, so no nightly is
# needed (install cargo-fuzz once with `cargo install cargo-fuzz --locked`). The time is read
# from FUZZ_SECONDS, not SECONDS, because bash's own SECONDS counts the shell's age and would
# always be set. FUZZ_SANITIZER (default address) is passed as `-s`; `none` builds faster and
# runs more inputs a second but only catches panics, aborts, timeouts and memory growth.
#
# The corpus grows in fuzz/corpus/TARGET, crashing inputs land in fuzz/artifacts/TARGET and the
# full libFuzzer output in fuzz/target/run-logs/TARGET.log (all git-ignored). Reproduce a crash
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...` and shrink it
# with `cargo fuzz tmin`. Not part of scripts/test or CI: it is slow and its results vary.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
case "$seconds" in
  '' | *[!0-9]*) echo "FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

all=$(cargo fuzz list)
if [ "$#" -gt 0 ]; then
  targets=("$@")
  for t in "${targets[@]}"; do
    grep -qx -- "$t" <<< "$all" || { echo "no fuzz target named '$t'; there are: $(echo $all)" >&2; exit 2; }
  done
else
  mapfile -t targets <<< "$all"
fi

# One build for all targets first, so the timed runs below measure fuzzing, not compiling.
if [ "$#" -gt 0 ]; then
  for t in "${targets[@]}"; do cargo fuzz build -s "$sanitizer" "$t"; done
else
  cargo fuzz build -s "$sanitizer"
fi

logs=target/run-logs
mkdir -p "$logs"
failed=0
summary=()
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  echo "fuzzing $t for ${seconds}s (log: fuzz/$log)" >&2
  # -print_final_stats gives the counts below even when the run ends on a crash.
  if cargo fuzz run -s "$sanitizer" "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
      -timeout=10 -max_len=65536 -print_final_stats=1 > "$log" 2>&1; then
    result=ok
  else
    failed=1
    if grep -q 'ERROR: libFuzzer: timeout' "$log"; then result=timeout
    elif grep -qE 'ERROR: libFuzzer: (out-of-memory|malloc limit)' "$log"; then result=oom
    elif grep -q 'ERROR: LeakSanitizer' "$log"; then result=leak
    elif grep -qE 'deadly signal|ERROR: AddressSanitizer|panicked at' "$log"; then result=crash
    else result=error
    fi
    artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | cut -d' ' -f5- || true)
    [ -n "$artifact" ] && result="$result ($artifact)"
  fi
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n 1 | awk '{print $2}' || true)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -n 1 | awk '{print $2}' || true)
  summary+=("$(printf '%-28s %12s execs %8s/s  %s' "$t" "${execs:-?}" "${rate:-?}" "$result")")
  echo "${summary[-1]}" >&2
done

echo
printf '%s\n' "${summary[@]}"
exit "$failed"
