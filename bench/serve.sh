#!/usr/bin/env bash
# bv serve throughput and memory, against nginx in the same run.
#   bench/serve.sh <bv binary>     (make bench-serve)
# Prints: download of a 1 GiB object through a signed URL (bv decrypts and
# verifies every segment) next to nginx serving the same plaintext file over
# TLS on loopback, the ratio (target >= 0.7); upload throughput (tus PATCH,
# sealed as it arrives); and the server's peak RSS during a 4 GiB upload
# (target < 100 MiB). curl is the client for both servers.
set -euo pipefail
BV=${1:?usage: bench/serve.sh <bv binary>}
SIZE_MIB=${SIZE_MIB:-1024}
BIG_MIB=${BIG_MIB:-4096}
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d /var/tmp/bv-bench-serve.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "[bench] preparing a ${SIZE_MIB} MiB file"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$work/obj.bin"

port=$(free_port)
env -u BV_CONFIG BV_DATA_DIR="$work/data" "$BV" serve --listen "127.0.0.1:$port" >"$work/serve.out" 2>"$work/serve.log" &
bvpid=$!; pids+=("$bvpid")
for _ in $(seq 100); do grep -q "bv_" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
key=$(grep -o 'bv_[0-9a-f_]*' "$work/serve.out" | head -1)
url="https://localhost:$port"
ca="$work/data/tls/ca.pem"
c() { curl -sS --cacert "$ca" -H "Authorization: Bearer $key" "$@"; }

# nginx: the same certificate, TLS 1.2/1.3, serving the plaintext file.
nport=$(free_port)
mkdir -p "$work/nginx/www"
ln "$work/obj.bin" "$work/nginx/www/obj.bin"
# nginx's workers run as nobody: let them read the (random, non-secret) test file.
chmod 755 "$work" "$work/nginx" "$work/nginx/www"; chmod 644 "$work/obj.bin"
cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp;
  scgi_temp_path $work/nginx/tmp;
  server {
    listen 127.0.0.1:$nport ssl http2;
    ssl_certificate $work/data/tls/cert.pem;
    ssl_certificate_key $work/data/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $work/nginx/www;
  }
}
CONF
mkdir -p "$work/nginx/tmp"
nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
pids+=("$!")
sleep 0.5

# Upload (tus): create, then one streaming PATCH of the whole file.
upload() { # file size -> seconds, prints video id on fd 3
  local f=$1 n=$2 loc t0 t1
  loc=$(c -D - -o /dev/null -X POST "$url/v1/uploads" -H "Tus-Resumable: 1.0.0" -H "Upload-Length: $n" \
        | tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
  t0=$(date +%s.%N)
  c -o /dev/null -X PATCH "$loc" -H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" \
    -H "Content-Type: application/offset+octet-stream" -T "$f"
  t1=$(date +%s.%N)
  c -I "$loc" -H "Tus-Resumable: 1.0.0" -o /dev/null -w '' || true
  echo "$t0 $t1"
}
read -r u0 u1 < <(upload "$work/obj.bin" $((SIZE_MIB << 20)))
video=$(c "$url/v1/videos?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["videos"][0]["id"])')
link=$(c -X POST "$url/v1/videos/$video/links" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')

speed() { curl -fsS --cacert "$ca" -o /dev/null -w '%{speed_download}' "$1"; }
best_bv=0; best_ng=0
for r in $(seq "$ROUNDS"); do
  ng=$(speed "https://localhost:$nport/obj.bin")
  bv=$(speed "$link")
  echo "[bench] round $r: nginx $(python3 -c "print(f'{$ng/2**20:.0f}')") MiB/s, bv signed link $(python3 -c "print(f'{$bv/2**20:.0f}')") MiB/s"
  best_ng=$(python3 -c "print(max($best_ng, $ng))"); best_bv=$(python3 -c "print(max($best_bv, $bv))")
done
# Integrity of what was measured.
got=$(curl -sS --cacert "$ca" "$link" | sha256sum | cut -d' ' -f1)
[ "$got" = "$(sha256sum < "$work/obj.bin" | cut -d' ' -f1)" ] || { echo "[bench] download does not match!"; exit 1; }

rm -f "$work/nginx/www/obj.bin" "$work/obj.bin"
echo "[bench] uploading ${BIG_MIB} MiB (zeros, streamed) to measure the server's peak RSS"
truncate -s $((BIG_MIB << 20)) "$work/big.bin"
rss0=$(awk '/VmRSS/ {print $2}' /proc/$bvpid/status)
read -r b0 b1 < <(upload "$work/big.bin" $((BIG_MIB << 20)))
hwm=$(awk '/VmHWM/ {print $2}' /proc/$bvpid/status)

python3 - <<PY
ng, bv = $best_ng / 2**20, $best_bv / 2**20
up = $SIZE_MIB / ($u1 - $u0)
big = $BIG_MIB / ($b1 - $b0)
print(f"download 1 GiB: bv (signed URL, decrypt+verify) {bv:.0f} MiB/s, nginx (plaintext over TLS) {ng:.0f} MiB/s, ratio {bv/ng:.2f} (target >= 0.7)")
print(f"upload (tus PATCH, sealed as it arrives): {up:.0f} MiB/s for {$SIZE_MIB} MiB, {big:.0f} MiB/s for {$BIG_MIB} MiB")
print(f"bv serve peak RSS: {$hwm/1024:.1f} MiB over the whole run incl. the {$BIG_MIB} MiB upload (idle before it: {$rss0/1024:.1f} MiB; target < 100 MiB)")
PY
