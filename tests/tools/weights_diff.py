#!/usr/bin/python3
"""weights_diff.py A.safetensors B.safetensors TOL: the two files hold the same tensors, and
the largest absolute difference of any value is at most TOL. Reads the format by its spec."""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4")
            for k, v in header.items()}


a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
if a.keys() != b.keys():
    sys.exit(f"tensor names differ: {sorted(a.keys() ^ b.keys())}")
worst = max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)
print(f"weights: {len(a)} tensors, worst difference {worst:.2g}")
sys.exit(0 if worst <= tol else 1)
