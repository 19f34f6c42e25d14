#!/usr/bin/python3
"""Compares two PEFT adapter files (adapter_model.safetensors) tensor by tensor.

  compare_adapters.py EXPECTED ACTUAL [TOLERANCE]

Reads safetensors with its own small reader (8-byte little-endian header length, JSON header,
raw little-endian data) and numpy, independently of the project's C++ reader/writer. Exit 0
when both hold the same tensor names and shapes and every element agrees within TOLERANCE
(default 1e-6, max abs diff); otherwise exit 1 after printing expected, actual and the max
difference of each mismatch.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start:base + end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            values = bits.view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=DTYPES[info["dtype"]])
        tensors[name] = values.astype(np.float64).reshape(info["shape"])
    return tensors


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    expected = load(sys.argv[1])
    actual = load(sys.argv[2])
    tolerance = float(sys.argv[3]) if len(sys.argv) == 4 else 1e-6
    ok = True
    if sorted(expected) != sorted(actual):
        print("tensor names differ: expected %s, actual %s" % (sorted(expected), sorted(actual)))
        return 1
    if not expected:
        print("no tensors in %s" % sys.argv[1])
        return 1
    worst = 0.0
    for name in sorted(expected):
        e, a = expected[name], actual[name]
        if e.shape != a.shape:
            print("%s: shape expected %s, actual %s" % (name, e.shape, a.shape))
            ok = False
            continue
        diff = float(np.max(np.abs(e - a))) if e.size else 0.0
        if not np.isfinite(diff):
            diff = float("inf")
        worst = max(worst, diff)
        if diff > tolerance:
            i = np.unravel_index(int(np.argmax(np.abs(e - a))), e.shape)
            print("%s: max abs diff %.3g > %.3g at %s: expected %r, actual %r"
                  % (name, diff, tolerance, tuple(int(x) for x in i), float(e[i]), float(a[i])))
            ok = False
    print("%d tensors, max abs diff %.3g (tolerance %.3g)" % (len(expected), worst, tolerance))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
