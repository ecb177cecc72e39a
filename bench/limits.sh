#!/usr/bin/env bash
# What the shared rate limits cost a request.
#   bench/limits.sh <bv binary>      (make bench-limits)
# One bv serve on the embedded default (SQLite), GET /v1/videos/{id} with one
# API key from CONNS connections for SECONDS seconds (wrk), twice in the same
# run: first with request rates off (the baseline), then on (each request
# spends from its key's and its tenant's bucket in the catalog, limits high
# enough never to refuse). Prints both rates, p99 latency and the ratio.
set -euo pipefail
BV=${1:?usage: bench/limits.sh <bv binary>}
SECONDS_RUN=${SECONDS_RUN:-10}
CONNS=${CONNS:-8}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /var/tmp/bv-bench-limits.XXXXXX)
pid=""
cleanup() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

serve() { # per-minute rate for keys and tenants (0: off)
  env -u BV_CONFIG BV_DATA_DIR="$work/data" BV_WORKER_IN_PROCESS=0 \
    BV_SERVE_LIMITS_KEY_REQUESTS_PER_MINUTE="$1" BV_SERVE_LIMITS_TENANT_REQUESTS_PER_MINUTE="$1" \
    "$BV" serve --listen "127.0.0.1:$port" >>"$work/out" 2>>"$work/log" &
  pid=$!
  for _ in $(seq 300); do
    curl -s --cacert "$work/data/tls/ca.pem" "https://localhost:$port/healthz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "[limits] bv serve did not start" >&2; cat "$work/log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

serve 0
key=$(grep -o 'bv_[0-9A-Za-z_]*' "$work/out" | head -1)
head -c 65536 /dev/urandom > "$work/small.bin"
video=$(curl -sS --fail --cacert "$work/data/tls/ca.pem" -H "Authorization: Bearer $key" \
  -X POST --data-binary @"$work/small.bin" "https://localhost:$port/v1/videos?name=small.bin" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "dofile(\"$HERE/load/report.lua\")" > "$work/report.lua"
run() { # name
  wrk -t1 -c"$CONNS" -d"${SECONDS_RUN}s" --timeout 10s -s "$work/report.lua" \
    -H "Authorization: Bearer $key" "https://localhost:$port/v1/videos/$video" 2>&1 | tail -1 > "$work/$1.json"
}
echo "[limits] baseline: rates off, $CONNS connections, ${SECONDS_RUN} s"
run off
stop
serve 6000000
echo "[limits] rates on (never refusing), $CONNS connections, ${SECONDS_RUN} s"
run on
stop
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
r = {n: json.load(open(f"{w}/{n}.json")) for n in ("off", "on")}
for n, label in (("off", "rates off (baseline)"), ("on", "rates on")):
    x = r[n]
    print(f"{label:22} {x['requests']/x['seconds']:9.1f} req/s  p99 {x['p99_ms']:7.2f} ms  errors {x['errors']}")
ratio = (r["on"]["requests"] / r["on"]["seconds"]) / (r["off"]["requests"] / r["off"]["seconds"])
print(f"ratio on/off: {ratio:.3f}")
if r["on"]["errors"] or r["off"]["errors"]:
    sys.exit("[limits] errors (expected none)")
PY
