#!/usr/bin/env python3
"""Reference runtime for the fidelity test: the official ncnn wheel, fp32, CPU.

Reads packed rgb24 frames of WIDTHxHEIGHT from stdin and writes the model's
upscaled rgb24 frames to stdout: input RGB/255 as float32 CHW, output
clamp(0, 1) * 255 rounded (the same conventions as ../shared/peers).
Usage: ncnn_upscale.py PARAM BIN WIDTH HEIGHT [THREADS]
"""
import sys

import ncnn
import numpy as np


def main():
    param, binf, w, h = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    net = ncnn.Net()
    o = net.opt
    o.use_vulkan_compute = False
    o.num_threads = threads
    for k in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed"):
        setattr(o, k, False)
    assert net.load_param(param) == 0, param
    assert net.load_model(binf) == 0, binf
    size = w * h * 3
    src, dst = sys.stdin.buffer, sys.stdout.buffer
    while True:
        buf = src.read(size)
        if len(buf) < size:
            break
        img = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        chw = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) * (1.0 / 255.0)
        ex = net.create_extractor()
        ex.input("data", ncnn.Mat(chw))
        ret, out = ex.extract("output")
        assert ret == 0, ret
        y = np.clip(np.array(out, dtype=np.float32), 0.0, 1.0) * 255.0
        dst.write(np.ascontiguousarray(np.rint(y).astype(np.uint8).transpose(1, 2, 0)).tobytes())
        dst.flush()


if __name__ == "__main__":
    main()
