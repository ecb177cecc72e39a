#!/usr/bin/env bash
# Schemathesis against a live bv serve: every operation of /v1/openapi.json,
# positive and negative data, every check (no 5xx, responses match the
# document, valid requests accepted, invalid ones refused), with an API key
# holding every scope and credits to spend. Part of make test.
#   scripts/api-fuzz.sh <bv binary>        (EXAMPLES per operation, default 10;
#   25 takes about 4 minutes; SEED, default fixed, or SEED=random)
set -euo pipefail
BV=${1:?usage: scripts/api-fuzz.sh <bv binary>}
EXAMPLES=${EXAMPLES:-10}
# A fixed seed makes make test repeatable; SEED=random explores (the seed is printed).
SEED=${SEED:-20261126}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${BV_DATA_DIR:-$HOME/.local/share/bettervideo}
ST=$DATA/schemathesis/bin/st
[ -x "$ST" ] || { echo "[api-fuzz] schemathesis missing: run make setup" >&2; exit 1; }

work=$(mktemp -d /var/tmp/bv-api-fuzz.XXXXXX)
pid=""
cleanup() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Request rates off: the fuzzer sends far more than any client would (429s
# are tested in crates/bv/tests/service/limits.rs).
env -u BV_CONFIG BV_DATA_DIR="$work/data" BV_WORKER_IN_PROCESS=0 \
  BV_SERVE_LIMITS_KEY_REQUESTS_PER_MINUTE=0 BV_SERVE_LIMITS_TENANT_REQUESTS_PER_MINUTE=0 \
  "$BV" serve --listen "127.0.0.1:$port" >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 300); do grep -q "First API key" "$work/out" 2>/dev/null && break; sleep 0.1; done
key=$(grep -o 'bv_[0-9A-Za-z_]*' "$work/out" | head -1)
[ -n "$key" ] || { echo "[api-fuzz] bv serve did not start" >&2; cat "$work/log" >&2; exit 1; }
env -u BV_CONFIG BV_DATA_DIR="$work/data" "$BV" admin credits grant --tenant default 1000000 >/dev/null

cd "$ROOT/tests/api-fuzz"
status=0
# One worker: with two, CPython 3.11's ast module (which hypothesis calls to
# describe strategies) failed once with "AST constructor recursion depth mismatch".
PYTHONPATH=. SCHEMATHESIS_HOOKS=hooks "$ST" --config-file schemathesis.toml run \
  "https://localhost:$port/v1/openapi.json" \
  -H "Authorization: Bearer $key" --tls-verify "$work/data/tls/ca.pem" \
  --checks all --max-examples "$EXAMPLES" --workers 1 --no-shrink \
  $([ "$SEED" = random ] || echo --seed "$SEED") \
  --report junit --report-junit-path "$work/junit.xml" >"$work/st.log" 2>&1 || status=$?
# The whole report on failure (each case with a curl line to reproduce), else the summary.
if [ "$status" -ne 0 ]; then cat "$work/st.log"; else sed -n '/= SUMMARY =/,$p' "$work/st.log"; fi
if grep -q '"level":"ERROR"' "$work/log" && grep -q 'panicked' "$work/log"; then
  echo "[api-fuzz] the server panicked:" >&2; grep panicked "$work/log" | head -5 >&2; status=1
fi
kill -0 "$pid" 2>/dev/null || { echo "[api-fuzz] the server died" >&2; status=1; }
exit $status
