#!/usr/bin/env bash
# Job throughput: the same N enhancement jobs run by 1, then by 2 `bv worker`
# processes against one service (same run, same machine). Reported, not asserted.
#   bench/jobs.sh <bv binary>      (make bench-jobs; N=12 by default)
# Each worker runs its engine with BV_ENGINE_THREADS=THREADS (default 1), so
# two workers on a 2-core machine can use both cores.
set -euo pipefail
BV=${1:?usage: bench/jobs.sh <bv binary>}
N=${N:-12}
THREADS=${THREADS:-1}
DATA_SHARED=${BV_DATA_DIR:-$HOME/.local/share/bettervideo}
work=$(mktemp -d)
trap 'kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export BV_DATA_DIR=$work/data BV_WORKER_IN_PROCESS=0 BV_MODEL_DIR=$DATA_SHARED/models BV_ENGINE_THREADS=$THREADS \
  BV_RETENTION_KEEP_ORIGINALS=true  # every run enhances the same upload
"$BV" serve --listen "127.0.0.1:$port" >"$work/out" 2>"$work/log" &
spid=$!
for _ in $(seq 100); do grep -q "bv_" "$work/out" 2>/dev/null && break; sleep 0.1; done
key=$(grep -o 'bv_[0-9a-f_]*' "$work/out" | head -1)
url="https://localhost:$port"
c() { curl -sS --cacert "$work/data/tls/ca.pem" -H "Authorization: Bearer $key" "$@"; }
video=$(c --data-binary @"$DATA_SHARED/samples/carphone_pristine.mp4" "$url/v1/videos?name=carphone.mp4" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$BV" worker --once >/dev/null 2>&1   # the probe
"$BV" admin credits grant --tenant default 100000000 >/dev/null
submit() { for _ in $(seq "$N"); do c -o /dev/null -X POST "$url/v1/jobs" -d "{\"video_id\":\"$video\",\"scale\":2}"; done; }
run() { # $1 workers -> seconds
  local t0 t1 pids=()
  submit
  t0=$(date +%s.%N)
  for _ in $(seq "$1"); do "$BV" worker --once >/dev/null 2>&1 & pids+=($!); done
  wait "${pids[@]}"
  t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
one=$(run 1)
two=$(run 2)
ok=$(c "$url/v1/jobs?state=succeeded&limit=1000" | python3 -c 'import json,sys; print(sum(1 for j in json.load(sys.stdin)["jobs"] if j["kind"]=="enhance"))')
python3 - <<PY
n, one, two = $N, $one, $two
print(f"{n} jobs (carphone 176x144 x2, {$THREADS} engine thread(s) per worker), $(nproc) CPUs:")
print(f"  1 worker : {one:6.1f} s  {n*60/one:6.1f} jobs/min")
print(f"  2 workers: {two:6.1f} s  {n*60/two:6.1f} jobs/min   ratio {one/two:.2f}")
print(f"  succeeded: {$ok} of {2*n}")
PY
