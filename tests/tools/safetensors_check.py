"""safetensors_check.py: reads cetus's safetensors files by the format's specification with
json + numpy only (the layout Hugging Face's `safetensors` library reads), and writes files
the way other writers do, for tests/e2e/t_safetensors_python.sh.

  safetensors_check.py check OUTDIR     verify OUTDIR/sample.safetensors and OUTDIR/ckpt
  safetensors_check.py foreign OUTDIR   write OUTDIR/foreign_*.safetensors and the
                                        expected `st_write_sample dump` output next to each
"""
import json
import os
import struct
import sys

import numpy as np
import torch

MAX_HEADER = 100_000_000  # Hugging Face's reader refuses larger headers

# ---- XXH64 (seed 0), from the xxHash specification, to check cetus's checksums -----------
M64 = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc, lane):
    return (_rotl((acc + lane * P2) & M64, 31) * P1) & M64


def _merge(h, v):
    return (((h ^ _round(0, v)) * P1) + P4) & M64


def xxh64(data, seed=0):
    data = bytes(data)
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed, (seed - P1) & M64]
        lanes = np.frombuffer(data[: n - n % 32], dtype="<u8").reshape(-1, 4)
        for row in lanes.tolist():
            v = [_round(v[k], row[k]) for k in range(4)]
        i = n - n % 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M64
        for k in range(4):
            h = _merge(h, v[k])
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h ^= _round(0, struct.unpack_from("<Q", data, i)[0])
        h = (_rotl(h, 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        h ^= (struct.unpack_from("<I", data, i)[0] * P1) & M64
        h = (_rotl(h, 23) * P2 + P3) & M64
        i += 4
    while i < n:
        h ^= (data[i] * P5) & M64
        h = (_rotl(h, 11) * P1) & M64
        i += 1
    h ^= h >> 33
    h = (h * P2) & M64
    h ^= h >> 29
    h = (h * P3) & M64
    return h ^ (h >> 32)


# ---- reading by the specification ----------------------------------------------------------
def read_safetensors(path):
    """Returns (metadata, {name: np.ndarray}, header key order, data order)."""
    raw = open(path, "rb").read()
    assert len(raw) >= 8, f"{path}: too short"
    n = struct.unpack("<Q", raw[:8])[0]
    assert n <= MAX_HEADER and 8 + n <= len(raw), f"{path}: bad header length {n}"
    assert n % 8 == 0, f"{path}: header length {n} not padded to 8"
    text = raw[8 : 8 + n]
    assert text[:1] == b"{", f"{path}: header does not start with {{"
    header = json.loads(text.decode("utf-8"))
    meta = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()), meta
    data = raw[8 + n :]
    order = sorted(header, key=lambda k: tuple(header[k]["data_offsets"]))
    tensors, pos = {}, 0
    for name in order:
        info = header[name]
        assert set(info) == {"dtype", "shape", "data_offsets"}, info
        assert info["dtype"] == "F32", info
        begin, end = info["data_offsets"]
        assert begin == pos and end >= begin, f"{path}: {name} at {begin}, expected {pos}"
        shape = info["shape"]
        assert all(isinstance(d, int) and d >= 0 for d in shape), shape
        assert end - begin == 4 * int(np.prod(shape, dtype=np.int64)), f"{path}: {name} size"
        tensors[name] = np.frombuffer(data, dtype="<f4", count=(end - begin) // 4,
                                      offset=begin).reshape(shape)
        pos = end
    assert pos == len(data), f"{path}: {len(data) - pos} bytes after the last tensor"
    if "cetus.xxh64" in meta:
        got = f"{xxh64(data):016x}"
        assert got == meta["cetus.xxh64"], f"{path}: data xxh64 {got} != {meta['cetus.xxh64']}"
    return meta, tensors, list(header), order


def sample_values(k, numel):
    i = np.arange(numel)
    return ((i % 97) - 48).astype(np.float32) * np.float32(0.125) + np.float32(k)


def check_tensor(name, arr, shape, want):
    assert list(arr.shape) == list(shape), f"{name}: shape {arr.shape}, expected {shape}"
    want = np.asarray(want, dtype=np.float32).reshape(shape)
    assert np.array_equal(arr.view(np.uint32), want.view(np.uint32)), f"{name}: values differ"
    t = torch.from_numpy(arr.copy())  # the data is directly usable as a torch tensor
    assert t.dtype == torch.float32 and list(t.shape) == list(shape)
    assert torch.equal(t.view(torch.int32), torch.from_numpy(want.view(np.int32).copy()))


def check_sample(out):
    meta, t, header_order, data_order = read_safetensors(os.path.join(out, "sample.safetensors"))
    assert meta["format"] == "pt" and meta["note"] == "written by st_write_sample", meta
    expect = [("wte.weight", [24, 5], sample_values(0, 120)),
              ("h.0.attn.c_attn.bias", [7], sample_values(1, 7)),
              ("patch.proj.weight", [2, 3, 4, 5], sample_values(2, 120)),
              ("scale", [], sample_values(3, 1)),
              ("special", [8], np.array([0x00000000, 0x80000000, 0x7f800000, 0xff800000,
                                         0x7fc00000, 0x00000001, 0x7f7fffff, 0x3eaaaaab],
                                        dtype=np.uint32).view(np.float32))]
    residues = set()
    for j in range(8):
        path = os.path.join(out, f"pad_{j}.safetensors")
        pmeta, pt, _, _ = read_safetensors(path)
        assert pmeta["note"] == "x" * j, pmeta
        check_tensor("x", pt["x"], [1], [1.5])
        raw = open(path, "rb").read()
        residues.add(len(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]].rstrip(b" ")) % 8)
    assert len(residues) == 8, f"unpadded header lengths cover only residues {residues}"
    names = [e[0] for e in expect]
    assert header_order == names and data_order == names, (header_order, data_order)
    for name, shape, want in expect:
        check_tensor(name, t[name], shape, want)


def check_checkpoint(out):
    ck = os.path.join(out, "ckpt")
    assert open(os.path.join(out, "latest")).read() == "ckpt\n"
    doc = json.load(open(os.path.join(ck, "trainer.json")))
    assert doc["format"] == "cetus-checkpoint" and doc["version"] == 1, doc
    assert doc["trainer"] == {"step": 5, "rng": "00ff"}, doc["trainer"]
    for fname, rec in doc["files"].items():
        raw = open(os.path.join(ck, fname), "rb").read()
        assert rec["bytes"] == len(raw), (fname, rec, len(raw))
        assert rec["xxh64"] == f"{xxh64(raw):016x}", (fname, rec)
    assert sorted(doc["files"]) == ["model.safetensors", "optimizer.safetensors"]
    meta, t, _, order = read_safetensors(os.path.join(ck, "model.safetensors"))
    assert meta["format"] == "pt" and order == ["wte.weight", "ln_f.weight"], (meta, order)
    check_tensor("wte.weight", t["wte.weight"], [6, 4], sample_values(4, 28)[:24])
    check_tensor("ln_f.weight", t["ln_f.weight"], [4], sample_values(4, 28)[24:])
    _, t, _, order = read_safetensors(os.path.join(ck, "optimizer.safetensors"))
    assert order == ["wte.weight.exp_avg", "ln_f.weight.exp_avg",
                     "wte.weight.exp_avg_sq", "ln_f.weight.exp_avg_sq"], order
    for suffix, k in ((".exp_avg", 10), (".exp_avg_sq", 20)):
        check_tensor("wte.weight" + suffix, t["wte.weight" + suffix], [6, 4], sample_values(k, 28)[:24])
        check_tensor("ln_f.weight" + suffix, t["ln_f.weight" + suffix], [4], sample_values(k, 28)[24:])


# ---- writing as other writers do -------------------------------------------------------
def write_foreign(path, tensors, header_order, metadata):
    """tensors: [(name, array)] in data order; header keys in header_order."""
    header, pos, blobs = {}, 0, []
    for name, arr in tensors:
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [pos, pos + len(b)]}
        pos += len(b)
        blobs.append(b)
    ordered = {"__metadata__": metadata} if metadata is not None else {}
    ordered.update((k, header[k]) for k in header_order)
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    with open(path + ".expected", "w") as f:
        for name, arr in tensors:
            bits = " ".join(f"{x:08x}" for x in np.asarray(arr, dtype="<f4").reshape(-1).view(np.uint32))
            f.write(f"{name}|{arr.ndim}|{','.join(str(d) for d in arr.shape)}|{bits}\n")


def foreign(out):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal((4,)).astype(np.float32)
    c = np.float32(2.5).reshape(())
    # like Hugging Face's writer: data sorted by name, header in data order, "format": "pt"
    data = sorted([("h.1.mlp.c_fc.weight", a), ("h.0.ln_1.bias", b), ("lm_scale", c)])
    write_foreign(os.path.join(out, "foreign_hf.safetensors"), data, [n for n, _ in data], {"format": "pt"})
    # header keys in reverse data order, no metadata at all
    write_foreign(os.path.join(out, "foreign_rev.safetensors"), data, [n for n, _ in data][::-1], None)


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "check":
        check_sample(out)
        check_checkpoint(out)
    elif mode == "foreign":
        foreign(out)
    else:
        sys.exit(f"unknown mode {mode}")
    print(f"safetensors_check {mode}: ok")
