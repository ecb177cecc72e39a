#!/usr/bin/env bash
# Runs cargo-fuzz targets, each for SECONDS, PARALLEL at a time, and reports
# the executions each made. Any crash fails the run (the reproducer is kept
# under fuzz/artifacts/<target>/).
#   scripts/fuzz.sh SECONDS TARGET...          (make fuzz)
set -euo pipefail
SECONDS_EACH=${1:?usage: scripts/fuzz.sh SECONDS TARGET...}; shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${BV_DATA_DIR:-$HOME/.local/share/bettervideo}
FUZZ=${CARGO_FUZZ:-$DATA/tools/bin/cargo-fuzz}
PARALLEL=${PARALLEL:-$(nproc)}
export RUSTC_BOOTSTRAP=1   # cargo-fuzz needs nightly flags; the stable toolchain allows them so
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/cache/bettervideo/fuzz-target}
cd "$ROOT/fuzz"

# Seeds: a real model (its .param, a NUL, the start of its .bin) for the model reader.
mkdir -p corpus/ncnn_model
for p in "$DATA"/models/realesr-animevideov3-x2.param; do
  [ -f "$p" ] || continue
  { cat "$p"; printf '\0'; head -c 65536 "${p%.param}.bin"; } > corpus/ncnn_model/seed-x2
done

echo "[fuzz] building: $*"
"$FUZZ" build -O --fuzz-dir . >/dev/null   # every target
logs=$(mktemp -d)
status=0
run() {
  local t=$1
  mkdir -p "corpus/$t"
  if "$FUZZ" run -O --fuzz-dir . "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" \
      -rss_limit_mb=2048 -print_final_stats=1 >"$logs/$t.log" 2>&1; then
    echo "[fuzz] $t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$') executions in ${SECONDS_EACH} s, no crash"
  else
    echo "[fuzz] $t: FAILED"; tail -30 "$logs/$t.log"; return 1
  fi
}
pids=()
for t in "$@"; do
  run "$t" & pids+=("$!")
  if [ ${#pids[@]} -ge "$PARALLEL" ]; then
    wait "${pids[0]}" || status=1; pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
rm -rf "$logs"
exit $status
