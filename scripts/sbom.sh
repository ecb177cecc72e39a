#!/usr/bin/env bash
# A CycloneDX SBOM (JSON) of the bv binary: every crate compiled into it for
# Linux x86-64, with its version, license and the SHA-256 crates.io publishes
# for it, written to OUT/bv.cdx.json.
#   scripts/sbom.sh <dir with cargo-cyclonedx> <OUT>     (make sbom)
set -euo pipefail
BIN=${1:?usage: scripts/sbom.sh <tools bin dir> <output dir>}
OUT=${2:?usage: scripts/sbom.sh <tools bin dir> <output dir>}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT"
cd "$ROOT"
PATH="$BIN:$PATH" cargo cyclonedx --manifest-path crates/bv/Cargo.toml --format json \
  --spec-version 1.5 --target x86_64-unknown-linux-gnu --override-filename bv.cdx >&2
mv crates/bv/bv.cdx.json "$OUT/bv.cdx.json"
# It writes one for every workspace member; the binary's is the one kept.
rm -f crates/*/bv.cdx.json
python3 - "$OUT/bv.cdx.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
comps = b.get("components", [])
hashed = sum(1 for c in comps if c.get("hashes"))
print(f"{sys.argv[1]}: CycloneDX {b['specVersion']}, {b['metadata']['timestamp']}, "
      f"{len(comps)} components ({hashed} with SHA-256)")
PY
