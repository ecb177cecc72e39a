#!/usr/bin/env python3
"""Independent reference implementation of the sealed-object format v1
(docs/sealed-object-format.md), on pyca/cryptography rather than aws-lc-rs.

Reads JSON lines on stdin, answers one JSON line each:
  {"op": "seal", "dek", "tenant", "object", "key_version", "seg_log2", "salt", "prefix", "plain"} -> {"sealed"}
  {"op": "open", "dek", "tenant", "object", "key_version", "sealed"} -> {"plain"} or {"error"}
(byte strings as hex).
"""
import json
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HEADER_LEN, TAG_LEN = 52, 16


def header(seg_log2, key_version, salt, prefix):
    return b"BVSO" + bytes([1, 1, seg_log2, 0]) + struct.pack(">I", key_version) + salt + prefix + b"\x00"


def segment_key(dek, salt, tenant, obj, key_version):
    info = b"bettervideo sealed object v1" + tenant + obj + struct.pack(">I", key_version)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(dek)


def nonce(prefix, i, last):
    return prefix + struct.pack(">I", i) + bytes([1 if last else 0])


def seal(dek, tenant, obj, key_version, seg_log2, salt, prefix, plain):
    h = header(seg_log2, key_version, salt, prefix)
    aead = AESGCM(segment_key(dek, salt, tenant, obj, key_version))
    size = 1 << seg_log2
    chunks = [plain[i:i + size] for i in range(0, len(plain), size)] or [b""]
    out = [h]
    for i, c in enumerate(chunks):
        out.append(aead.encrypt(nonce(prefix, i, i == len(chunks) - 1), c, h))
    return b"".join(out)


def open_(dek, tenant, obj, key_version, sealed):
    h = sealed[:HEADER_LEN]
    if len(h) < HEADER_LEN or h[:4] != b"BVSO" or h[4] != 1 or h[5] != 1:
        raise ValueError("format")
    size = 1 << h[6]
    salt, prefix = h[12:44], h[44:51]
    aead = AESGCM(segment_key(dek, salt, tenant, obj, key_version))
    body = sealed[HEADER_LEN:]
    full = size + TAG_LEN
    segs = [body[i:i + full] for i in range(0, len(body), full)]
    if not segs:
        raise ValueError("truncated")
    return b"".join(aead.decrypt(nonce(prefix, i, i == len(segs) - 1), s, h) for i, s in enumerate(segs))


def main():
    for line in sys.stdin:
        r = json.loads(line)
        x = {k: bytes.fromhex(v) for k, v in r.items() if k not in ("op", "key_version", "seg_log2")}
        if r["op"] == "seal":
            s = seal(x["dek"], x["tenant"], x["object"], r["key_version"], r["seg_log2"], x["salt"], x["prefix"], x["plain"])
            print(json.dumps({"sealed": s.hex()}), flush=True)
        else:
            try:
                p = open_(x["dek"], x["tenant"], x["object"], r["key_version"], x["sealed"])
                print(json.dumps({"plain": p.hex()}), flush=True)
            except (InvalidTag, ValueError) as e:
                print(json.dumps({"error": type(e).__name__}), flush=True)


if __name__ == "__main__":
    main()
