#!/usr/bin/env bash
# Load test of a two-server cluster (PostgreSQL + s3s-fs + 2 × bv serve).
#   bench/load.sh <bv binary>        (make bench-load)
# For DURATION seconds (default 60), against both servers at once: mixed API
# traffic (status polls, link minting, 64 KiB downloads) from MIXED connections
# per server, and 20 concurrent uploads (10 per server) of 16 KiB each. wrk is
# the client. Prints throughput, p50/p99 latency and errors per stream and in
# all; the baseline, run first in the same invocation, is GET /healthz (no
# catalog, no crypto) with the same connections, and the ratio says how much
# of that plain request rate the real API keeps. Zero errors are expected.
# Rate limits stay on (every request pays for its buckets) but high enough
# that one client's load test is never refused.
set -euo pipefail
BV=${1:?usage: bench/load.sh <bv binary>}
DURATION=${DURATION:-60}
MIXED=${MIXED:-8}
PG=${BETTERVIDEO_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=${BV_DATA_DIR:-$HOME/.local/share/bettervideo}
command -v wrk >/dev/null || { echo "[load] wrk missing: run make setup" >&2; exit 1; }

work=$(mktemp -d /var/tmp/bv-bench-load.XXXXXX)
db="bv_load_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

psql -q "$PG/postgres" -c "CREATE DATABASE $db" >/dev/null
s3port=$(free_port)
s3key="AK$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
s3secret=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$work/s3/load"
"$DATA/tools/bin/s3s-fs" --host 127.0.0.1 --port "$s3port" --access-key "$s3key" --secret-key "$s3secret" \
  "$work/s3" >/dev/null 2>&1 &
pids+=("$!")
export BV_CATALOG_URL="$PG/$db" BV_VAULT_BACKEND=s3 BV_VAULT_S3_BUCKET=load \
  BV_VAULT_S3_ENDPOINT="http://127.0.0.1:$s3port" BV_VAULT_S3_ACCESS_KEY_ID="$s3key" \
  BV_VAULT_S3_SECRET_ACCESS_KEY="$s3secret" BV_VAULT_S3_ALLOW_HTTP=true \
  BV_VAULT_ROOT_KEY="v1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  BV_VAULT_GENERATE_ROOT_KEY=false BV_WORKER_IN_PROCESS=0 \
  BV_SERVE_LIMITS_KEY_REQUESTS_PER_MINUTE=6000000 BV_SERVE_LIMITS_TENANT_REQUESTS_PER_MINUTE=6000000 \
  BV_SERVE_LIMITS_LINKS_PER_MINUTE_PER_ADDRESS=6000000
unset BV_CONFIG BV_DATA_DIR

start_server() { # index port [extra env...]
  local i=$1 port=$2; shift 2
  mkdir -p "$work/s$i"
  env BV_DATA_DIR="$work/s$i" "$@" "$BV" serve --listen "127.0.0.1:$port" \
    >"$work/s$i/out" 2>"$work/s$i/log" &
  pids+=("$!")
  for _ in $(seq 300); do grep -q "running at" "$work/s$i/out" 2>/dev/null && return 0; sleep 0.1; done
  echo "[load] server $i did not start:" >&2; cat "$work/s$i/log" >&2; exit 1
}
p1=$(free_port); p2=$(free_port)
start_server 1 "$p1"
for _ in $(seq 50); do grep -q "First API key" "$work/s1/out" && break; sleep 0.1; done
key=$(grep -o 'bv_[0-9A-Za-z_]*' "$work/s1/out" | head -1)
tls="$work/s1/tls"
start_server 2 "$p2" BV_SERVE_TLS_CERT="$tls/cert.pem" BV_SERVE_TLS_KEY="$tls/key.pem"
c() { curl -sS --fail --cacert "$tls/ca.pem" -H "Authorization: Bearer $key" "$@"; }

# One 64 KiB video to poll, link and download.
head -c 65536 /dev/urandom > "$work/small.bin"
video=$(c -X POST --data-binary @"$work/small.bin" "https://localhost:$p1/v1/videos?name=small.bin" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

export LOAD_KEY="$key" LOAD_VIDEO="$video" LOAD_REPORT="$HERE/load/report.lua"
run() { # name seconds connections script url
  wrk -t1 -c"$3" -d"$2s" --timeout 10s -s "$HERE/load/$4" "$5" 2>&1 | tail -1 > "$work/$1.json"
}
cat > "$work/health.lua" <<LUA
dofile("$HERE/load/report.lua")
LUA

echo "[load] baseline: GET /healthz, $((MIXED * 2)) connections per server, 10 s"
wrk -t1 -c"$((MIXED * 2))" -d10s --timeout 10s -s "$work/health.lua" "https://localhost:$p1/healthz" 2>&1 | tail -1 > "$work/h1.json" &
h1=$!
wrk -t1 -c"$((MIXED * 2))" -d10s --timeout 10s -s "$work/health.lua" "https://localhost:$p2/healthz" 2>&1 | tail -1 > "$work/h2.json" &
h2=$!
wait "$h1" "$h2"

echo "[load] ${DURATION} s: mixed traffic ($MIXED connections per server) + 20 concurrent uploads, both servers"
run mixed1 "$DURATION" "$MIXED" mixed.lua "https://localhost:$p1" &
w1=$!
run mixed2 "$DURATION" "$MIXED" mixed.lua "https://localhost:$p2" &
w2=$!
run up1 "$DURATION" 10 upload.lua "https://localhost:$p1" &
w3=$!
run up2 "$DURATION" 10 upload.lua "https://localhost:$p2" &
w4=$!
wait "$w1" "$w2" "$w3" "$w4"

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
def load(n):
    try:
        return json.load(open(f"{w}/{n}.json"))
    except Exception as e:
        sys.exit(f"[load] wrk run {n} gave no report: {open(f'{w}/{n}.json').read()!r}")
streams = {"mixed (server 1)": "mixed1", "mixed (server 2)": "mixed2",
           "uploads (server 1)": "up1", "uploads (server 2)": "up2"}
base = [load("h1"), load("h2")]
base_rps = sum(b["requests"] / b["seconds"] for b in base)
print(f"{'stream':22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
tot_req = tot_err = 0; rps = 0.0; p99 = 0.0
for name, f in streams.items():
    r = load(f)
    print(f"{name:22} {r['requests']/r['seconds']:9.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.1f} {r['errors']:7d}")
    tot_req += r["requests"]; tot_err += r["errors"]; rps += r["requests"] / r["seconds"]; p99 = max(p99, r["p99_ms"])
print(f"{'all':22} {rps:9.1f} {'':8} {p99:8.2f} {'':8} {tot_err:7d}   ({tot_req} requests; p99 = worst stream)")
print(f"baseline GET /healthz {base_rps:9.1f} req/s on both servers, p99 {max(b['p99_ms'] for b in base):.2f} ms, {sum(b['errors'] for b in base)} errors")
print(f"ratio API/healthz: {rps / base_rps:.3f}")
if tot_err:
    sys.exit(f"[load] {tot_err} errors (expected none)")
PY
