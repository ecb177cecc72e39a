#!/usr/bin/env bash
# Scans a running `bv serve` with testssl.sh (Debian's package) and fails
# unless: only TLS 1.2 and 1.3 are offered, every offered suite is AEAD with
# forward secrecy, no known vulnerability is flagged, and HSTS is present.
#   scripts/test-tls.sh <path to bv>
set -euo pipefail
BV=${1:?usage: test-tls.sh <bv binary>}
command -v testssl >/dev/null || { echo "testssl.sh is not installed (make setup)" >&2; exit 1; }
work=$(mktemp -d)
# bv serve signs a last audit checkpoint when stopped: wait for it before removing its data.
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# A clean BV_* environment: only the scratch data directory.
env -u BV_CONFIG BV_DATA_DIR="$work/data" "$BV" serve --listen "127.0.0.1:$port" >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do grep -q "is running at" "$work/out" 2>/dev/null && break; sleep 0.1; done
grep -q "is running at" "$work/out" || { cat "$work/log" >&2; echo "bv serve did not start" >&2; exit 1; }
echo "[test-tls] testssl.sh against bv serve on 127.0.0.1:$port (about 30 s)"
testssl --quiet --color 0 --warnings off --ip one --jsonfile "$work/tls.json" \
  -p -s -f -U -h "localhost:$port" >"$work/report.txt" 2>&1 || true
python3 - "$work/tls.json" <<'PY'
import json, sys
findings = {f["id"]: f for f in json.load(open(sys.argv[1]))}
problems = []
def want(id_, text):
    f = findings.get(id_)
    if f is None or not f["finding"].startswith(text):
        problems.append(f"{id_}: expected '{text}', got {f and f['finding']!r}")
for p in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"]:
    want(p, "not offered")
want("TLS1_2", "offered")
want("TLS1_3", "offered")
for c in ["cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
          "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"]:
    want(c, "not offered")
want("cipherlist_STRONG", "offered")
want("PFS", "offered")
want("HSTS_time", "730 days")
# Anything rated LOW or worse is a failure (the local openssl's missing GOST engine is not about us).
for f in findings.values():
    if f["severity"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL") and f["id"] != "engine_problem":
        problems.append(f"{f['id']} ({f['severity']}): {f['finding']}")
if problems:
    print("[test-tls] FAILED:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"[test-tls] ok: TLS 1.2 and 1.3 only, AEAD + forward secrecy only, HSTS, "
      f"{sum(1 for f in findings.values() if f['severity'] == 'OK')} checks OK, none flagged")
PY
