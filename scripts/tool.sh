#!/usr/bin/env bash
# Builds a tool from crates.io into $BV_DATA_DIR/tools once, at the exact version
# pinned in scripts/pins.lock, and checks the .crate cargo downloaded against
# the SHA-256 pinned there (cargo has already checked it against crates.io's
# index, and the tool's own Cargo.lock pins its dependencies with --locked).
#   scripts/tool.sh NAME [cargo install options...]
set -euo pipefail
NAME=${1:?usage: scripts/tool.sh NAME [cargo install options]}
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${BV_DATA_DIR:-$HOME/.local/share/bettervideo}
LOCK=$ROOT/scripts/pins.lock
read -r VERSION FILE SHA < <(awk -v n="$NAME" '$5 == "tool" && $1 == n {print $2, $3, $4}' "$LOCK") \
  || { echo "[setup] error: $NAME is not pinned in scripts/pins.lock" >&2; exit 1; }
STAMP=$DATA/tools/.pinned-$NAME
[ -x "$DATA/tools/bin/$NAME" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION $SHA" ] && exit 0
echo "[setup] building $NAME $VERSION from crates.io (once, a few minutes)" >&2
cargo install --quiet --locked --force "$NAME@$VERSION" "$@" --root "$DATA/tools"
crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$FILE" 2>/dev/null | head -1)
if [ -z "$crate" ] || [ "$(sha256sum "$crate" | cut -d' ' -f1)" != "$SHA" ]; then
  rm -f "$DATA/tools/bin/$NAME" "$STAMP"
  echo "[setup] error: $FILE does not match its pinned SHA-256: refusing it" >&2
  exit 1
fi
echo "$VERSION $SHA" > "$STAMP"
