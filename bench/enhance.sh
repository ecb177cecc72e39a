#!/usr/bin/env bash
# Engine speed and fidelity against ncnn, ONNX Runtime and OpenVINO on the same
# frames (interleaved), and end-to-end overhead. Opt-in: takes minutes.
#   PEERS_DIR   the peer harness (default ../shared/peers beside the repository)
#   extra args  go to bench/enhance.py (--sizes, --frames, --threads, --e2e-frames;
#               --e2e-only: bv enhance against inference alone, no peers, a few minutes)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BV=${BV:-${CARGO_TARGET_DIR:-/var/cache/bettervideo/target}/release/bv}
[ -x "$BV" ] || (cd "$ROOT" && make build)
echo "[bench] uptime before: $(uptime)"
if [[ " $* " == *" --e2e-only "* ]]; then
  # Pipelining alone: bv enhance against inference alone (no peers needed).
  python3 "$ROOT/bench/enhance.py" "$@"
  echo "[bench] uptime after:  $(uptime)"
  exit 0
fi
export PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
[ -f "$PEERS_DIR/setup.sh" ] || { echo "peer harness not found at $PEERS_DIR" >&2; exit 1; }
bash "$PEERS_DIR/setup.sh" >&2
PB=${PEERBENCH_DIR:-/tmp/peerbench}
"$PB/venv/bin/python" "$ROOT/bench/enhance.py" "$@"
echo "[bench] uptime after:  $(uptime)"
