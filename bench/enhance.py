#!/usr/bin/env python3
"""BetterVideo engine against the peer runtimes, interleaved, plus end-to-end overhead.

Part 1 (speed and fidelity): the same Big Buck Bunny frames, decoded once, go
through ncnn fp32 (the baseline), ONNX Runtime, OpenVINO (default precision and
f32) and our engine (`bv infer-pipe`, a long-lived process), one frame per
runtime in turn with the order rotated every frame, so background load hits
all alike. Times are the inference call only (ours: as reported by bv for the
model and tiling, excluding the pipe transfer). Fidelity: uint8 PSNR of every
runtime against ncnn fp32.

Part 2 (end to end): `bv enhance` with default settings on a 640x360 clip,
against the inference alone on the same frames (infer-pipe), alternated twice.
Overhead = 1 - inference time / end-to-end time.

Run through bench/enhance.sh, which prepares the peers' environment
(`--e2e-only`: part 2 alone, without the peers).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

E2E_ONLY = "--e2e-only" in sys.argv
if not E2E_ONLY:
    import numpy as np

    PEERS = os.environ.get("PEERS_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "peers"))
    sys.path.insert(0, os.path.abspath(PEERS))
    import common as C  # noqa: E402
    from ncnn2onnx import OrtSR  # noqa: E402
    from ncnn_sr import NcnnSR  # noqa: E402

BV = os.environ["BV"]
SAMPLES = os.path.join(os.environ.get("BV_DATA_DIR", os.path.expanduser("~/.local/share/bettervideo")), "samples")


class BvSR:
    """Our engine behind `bv infer-pipe`; frames go over pipes, time comes from bv."""

    def __init__(self, w, h, threads):
        self.w, self.h = w, h
        self.p = subprocess.Popen([BV, "infer-pipe", "--width", str(w), "--height", str(h), "--threads", str(threads)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.backend = self.p.stderr.readline().decode().strip()

    def upscale_u8(self, img):
        self.p.stdin.write(np.ascontiguousarray(img).tobytes())
        self.p.stdin.flush()
        n = self.w * self.h * 3 * 16
        buf = self.p.stdout.read(n)
        line = self.p.stderr.readline().decode().split()
        assert len(buf) == n and line[0] == "infer", line
        self.last = float(line[1])
        return np.frombuffer(buf, np.uint8).reshape(self.h * 4, self.w * 4, 3)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def speed(a):
    rows = []
    for size in a.sizes.split(","):
        w, h = C.parse_size(size)
        frames = C.decode_frames(a.video, a.warmup + a.frames, (w, h), a.start)
        runners = {"ncnn-fp32": NcnnSR("fp32", a.threads), "onnxruntime": OrtSR(a.threads)}
        try:
            from ov_sr import OvSR
            for v in ("default", "f32"):
                runners[f"openvino-{v}"] = OvSR(v, a.threads)
                runners[f"openvino-{v}"].prepare((3, h, w))
        except ImportError:
            print("openvino not installed: skipped", flush=True)
        ours = BvSR(w, h, a.threads)
        names = list(runners) + ["bettervideo"]
        times = {n: [] for n in names}
        outs = {n: [] for n in names}
        for i, f in enumerate(frames):
            order = names[i % len(names):] + names[:i % len(names)]
            line = []
            for n in order:
                if n == "bettervideo":
                    y = ours.upscale_u8(f)
                    dt = ours.last
                else:
                    x = C.to_chw_float(f)
                    t0 = time.perf_counter()
                    yf = runners[n].infer(x)
                    dt = time.perf_counter() - t0
                    y = C.from_chw_float(yf)
                if i >= a.warmup:
                    times[n].append(dt)
                    outs[n].append(y)
                line.append(f"{n}={dt:.3f}s")
            print(f"  {w}x{h} frame {i}{' (warm-up)' if i < a.warmup else ''}: " + "  ".join(line), flush=True)
        ours.close()
        base = np.median(times["ncnn-fp32"])
        ref = np.stack(outs["ncnn-fp32"])
        for n in names:
            med = float(np.median(times[n]))
            rows.append(dict(runtime=n, size=f"{w}x{h}", threads=a.threads, s_median=med, s_min=float(np.min(times[n])),
                             ratio_to_ncnn=med / base, speedup_vs_ncnn=base / med,
                             psnr_vs_ncnn=float(C.psnr_u8(np.stack(outs[n]), ref)),
                             backend=ours.backend if n == "bettervideo" else ""))
    return rows


def end_to_end(a):
    tmp = tempfile.mkdtemp(prefix="bv-bench-")
    clip = os.path.join(tmp, "clip640.mp4")
    videos = SAMPLES if E2E_ONLY else C.VIDEOS
    src = os.path.join(videos, a.video) if not os.path.isabs(a.video) else a.video
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-vf", "scale=640:360:flags=bicubic", "-frames:v",
                    str(a.e2e_frames), "-c:v", "libx264", "-crf", "16", "-c:a", "copy", "-shortest", clip], check=True)
    n = a.e2e_frames
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", clip, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, stdout=subprocess.PIPE).stdout
    res = dict(enhance_s=[], enhance_infer_s=[], infer_alone_s=[])
    for rep in range(2):
        out = os.path.join(tmp, "out.mp4")
        t0 = time.perf_counter()
        p = subprocess.run([BV, "enhance", clip, "-o", out, "--overwrite", "--json", "--threads", str(a.threads)],
                           check=True, stdout=subprocess.PIPE)
        wall = time.perf_counter() - t0
        done = json.loads(p.stdout.decode().strip().splitlines()[-1])
        res["enhance_s"].append(wall)
        res["enhance_infer_s"].append(done["inference_seconds"])
        p = subprocess.run([BV, "infer-pipe", "--width", "640", "--height", "360", "--threads", str(a.threads)],
                           input=raw, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        infer = sum(float(l.split()[1]) for l in p.stderr.decode().splitlines() if l.startswith("infer "))
        res["infer_alone_s"].append(infer)
        print(f"  end-to-end run {rep}: enhance {wall:.1f} s (model {done['inference_seconds']:.1f} s inside), "
              f"inference alone {infer:.1f} s, {n} frames", flush=True)
    e, i = min(res["enhance_s"]), min(res["infer_alone_s"])
    res.update(frames=n, overhead=1 - i / e, overhead_in_run=1 - min(res["enhance_infer_s"]) / e)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default="bigbuckbunny.mp4")
    ap.add_argument("--sizes", default="320x180,640x360")
    ap.add_argument("--start", type=int, default=30)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--e2e-frames", type=int, default=132)
    ap.add_argument("--json", default=os.path.join(os.environ.get("BV_DATA_DIR", "/tmp"), "bench", "enhance.json"))
    ap.add_argument("--e2e-only", action="store_true", help="part 2 alone (no peers)")
    a = ap.parse_args()
    if a.e2e_only:
        e2e = end_to_end(a)
        print(f"end to end ({e2e['frames']} frames 640x360, default settings): bv enhance "
              f"{min(e2e['enhance_s']):.1f} s, inference alone {min(e2e['infer_alone_s']):.1f} s: "
              f"pipelined time is {min(e2e['enhance_s']) / min(e2e['infer_alone_s']):.3f}x pure inference "
              f"(overhead {100 * e2e['overhead']:.1f}% of total)")
        return
    rows = speed(a)
    e2e = end_to_end(a)
    print(f"\n{'runtime':16s} {'input':9s} {'s/f med':>8s} {'s/f min':>8s} {'vs ncnn':>8s} {'PSNR dB':>8s}")
    for r in rows:
        ps = "inf" if r["psnr_vs_ncnn"] == float("inf") else f"{r['psnr_vs_ncnn']:.1f}"
        print(f"{r['runtime']:16s} {r['size']:9s} {r['s_median']:8.3f} {r['s_min']:8.3f} {r['speedup_vs_ncnn']:7.2f}x {ps:>8s}")
    print("(threads={}, vs ncnn = ncnn-fp32 median / runtime median, PSNR = uint8 vs ncnn fp32)".format(a.threads))
    for size in a.sizes.split(","):
        sized = [r for r in rows if r["size"] == size]
        ours = next(r for r in sized if r["runtime"] == "bettervideo")
        fastest_peer = min((r for r in sized if r["runtime"] != "bettervideo"), key=lambda r: r["s_median"])
        print(f"{size}: bettervideo {ours['speedup_vs_ncnn']:.2f}x ncnn fp32; fastest peer {fastest_peer['runtime']} "
              f"{fastest_peer['s_median']:.3f} s/f, ours/fastest = {ours['s_median'] / fastest_peer['s_median']:.2f}")
    print(f"end to end ({e2e['frames']} frames 640x360, default settings): overhead {100 * e2e['overhead']:.1f}% "
          f"of total (inference alone vs bv enhance); {100 * e2e['overhead_in_run']:.1f}% measured inside the run")
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(dict(date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), loadavg=os.getloadavg(), speed=rows, end_to_end=e2e), f, indent=1)
    print("wrote", a.json)


if __name__ == "__main__":
    main()
