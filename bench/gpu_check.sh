#!/usr/bin/env bash
# GPU proof for the CUDA backend, run on a lent GPU machine (see the device
# tool): the same frames through `bv infer-pipe` on the CPU and on CUDA,
# fidelity (PSNR of GPU vs CPU output) and speed (s/frame) at 320x180 and
# 1280x720, x4. Inputs are prepared beside the repository in .device/:
#   .device/bv              a release build of bv (with the default `cuda` feature)
#   .device/data/models/    the model files
#   .device/f180.rgb        3 Big Buck Bunny frames at 320x180, rgb24
#   .device/f720.rgb        8 frames at 1280x720, rgb24
# Results go to $OUT (or ./gpu-check) as gpu_check.json.
set -uo pipefail
OUT=${OUT:-gpu-check}; mkdir -p "$OUT"
D=.device
export BV_DATA_DIR=$D/data
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# The CUDA libraries come from the Python wheels of the image (nvidia-*).
# The driver's own folder goes first: CUDA toolkits ship a stub libcuda.so that must not win.
libs=$(find / -xdev \( -name 'libcublas.so*' -o -name 'libnvrtc.so*' -o -name 'libcublasLt.so*' \) -not -path '*/stubs/*' 2>/dev/null | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu:${libs}${LD_LIBRARY_PATH:-}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
"$D/bv" models verify | tail -1
run() { # device size frames-file count threads
  local dev=$1 size=$2 file=$3 n=$4 w=${2%x*} h=${2#*x}
  head -c $((w * h * 3 * n)) "$file" | "$D/bv" infer-pipe --device "$dev" --width "$w" --height "$h" --threads "${5:-0}" \
    > "$OUT/$dev-$size.rgb" 2> "$OUT/$dev-$size.log"
  echo "$dev $size exit=$? $(head -1 "$OUT/$dev-$size.log")"
}
run cuda 320x180 $D/f180.rgb 3
run cpu 320x180 $D/f180.rgb 3
run cuda 1280x720 $D/f720.rgb 8
run cpu 1280x720 $D/f720.rgb 3
python3 - "$OUT" <<'PY'
import json, os, sys
import numpy as np
out = sys.argv[1]
res = {}
for size, n in (("320x180", 3), ("1280x720", 3)):
    w, h = map(int, size.split("x"))
    fb = w * h * 3 * 16
    def load(dev):
        b = np.fromfile(os.path.join(out, f"{dev}-{size}.rgb"), np.uint8)
        return b[: fb * n].astype(np.float64)
    def times(dev):
        return [float(l.split()[1]) for l in open(os.path.join(out, f"{dev}-{size}.log")) if l.startswith("infer ")]
    g, c = load("cuda"), load("cpu")
    mse = float(np.mean((g - c) ** 2)) if g.size == c.size and g.size else float("nan")
    psnr = float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)
    tg, tc = times("cuda"), times("cpu")
    res[size] = dict(psnr_gpu_vs_cpu=psnr, max_abs=float(np.abs(g - c).max()) if g.size == c.size and g.size else None,
                     gpu_s_per_frame=tg, cpu_s_per_frame=tc,
                     gpu_fps_steady=(len(tg) - 1) / sum(tg[1:]) if len(tg) > 1 else None)
    print(size, json.dumps(res[size]))
json.dump(res, open(os.path.join(out, "gpu_check.json"), "w"), indent=1)
PY
