#!/usr/bin/env bash
# Seal and open throughput of the sealed-object format (single core, 1 GiB,
# in memory, 64 KiB segments) next to `openssl speed -evp aes-256-gcm` on the
# same block size, interleaved three times; prints the ratio of the medians.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/bettervideo/target}
(cd "$ROOT" && cargo build --release --locked -q -p bv-crypto --example seal_bench)
BENCH=$CARGO_TARGET_DIR/release/examples/seal_bench
seal=() open=() ssl=()
for round in 1 2 3; do
  read -r _ _ _ _ s _ _ o _ < <(taskset -c 0 "$BENCH" 1024 16)
  kb=$(taskset -c 0 openssl speed -evp aes-256-gcm -seconds 3 -bytes 65536 2>/dev/null | awk '/^AES-256-GCM/ {print $2}' | tr -d k)
  g=$(awk -v k="$kb" 'BEGIN {printf "%.2f", k * 1000 / 1e9}')
  echo "round $round: seal $s GB/s, open $o GB/s, openssl $g GB/s"
  seal+=("$s") open+=("$o") ssl+=("$g")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
ms=$(median "${seal[@]}") mo=$(median "${open[@]}") mssl=$(median "${ssl[@]}")
awk -v s="$ms" -v o="$mo" -v x="$mssl" 'BEGIN {
  printf "median: seal %.2f GB/s, open %.2f GB/s, openssl aes-256-gcm %.2f GB/s\n", s, o, x
  printf "ratio to openssl: seal %.2f, open %.2f (target >= 0.8)\n", s / x, o / x }'
