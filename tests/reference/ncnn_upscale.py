#!/usr/bin/env python3
"""Reference runtime for the fidelity tests: the official ncnn wheel, fp32, CPU.

Reads packed rgb24 frames of WIDTHxHEIGHT from stdin and writes the model's
upscaled rgb24 frames to stdout: input RGB/255 as float32 CHW, output
clamp(0, 1) * 255 rounded (the same conventions as ../shared/peers).

Real-CUGAN's convolutions do not pad: its reference tool (realcugan-ncnn-vulkan)
extends the image by a fixed border of repeated edge pixels first (18 px for
x2, 14 for x3, 19 for x4), so the output covers the whole image. --pad does
the same here, with numpy's own edge padding.

Usage: ncnn_upscale.py PARAM BIN WIDTH HEIGHT [--threads N] [--input NAME]
       [--output NAME] [--pad PIXELS]
"""
import argparse
import sys

import ncnn
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("param")
    ap.add_argument("bin")
    ap.add_argument("width", type=int)
    ap.add_argument("height", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input", default="data")
    ap.add_argument("--output", default="output")
    ap.add_argument("--pad", type=int, default=0)
    a = ap.parse_args()
    w, h = a.width, a.height
    net = ncnn.Net()
    o = net.opt
    o.use_vulkan_compute = False
    o.num_threads = a.threads
    for k in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed"):
        setattr(o, k, False)
    assert net.load_param(a.param) == 0, a.param
    assert net.load_model(a.bin) == 0, a.bin
    size = w * h * 3
    src, dst = sys.stdin.buffer, sys.stdout.buffer
    while True:
        buf = src.read(size)
        if len(buf) < size:
            break
        img = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        if a.pad:
            img = np.pad(img, ((a.pad, a.pad), (a.pad, a.pad), (0, 0)), mode="edge")
        chw = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) * (1.0 / 255.0)
        ex = net.create_extractor()
        ex.input(a.input, ncnn.Mat(chw))
        ret, out = ex.extract(a.output)
        assert ret == 0, ret
        y = np.clip(np.array(out, dtype=np.float32), 0.0, 1.0) * 255.0
        s = y.shape[1] // h
        assert y.shape[1:] == (h * s, w * s), f"output {y.shape} is not a multiple of {h}x{w}"
        dst.write(np.ascontiguousarray(np.rint(y).astype(np.uint8).transpose(1, 2, 0)).tobytes())
        dst.flush()


if __name__ == "__main__":
    main()
