"""Max |a - b| over every tensor of two gm checkpoints (folders of .safetensors files).

Standard library only (reads safetensors by hand), so it runs with any python3.
Prints one line: `max_abs_diff=<x> tensors=<n> exact=<yes|no> missing=<names>`.
"""
import array
import json
import os
import struct
import sys

FMT = {"F32": "f", "F64": "d", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B", "BOOL": "B"}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        code = FMT.get(meta["dtype"])
        lo, hi = meta["data_offsets"]
        if code is None:  # e.g. F16/BF16: compare the bytes only
            out[name] = (meta["dtype"], body[lo:hi])
            continue
        a = array.array(code)
        a.frombytes(body[lo:hi])
        if sys.byteorder != "little":
            a.byteswap()
        out[name] = (meta["dtype"], a)
    return out


def load_dir(d):
    tensors = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            for k, v in read(os.path.join(d, f)).items():
                tensors[f"{f[:-12]}/{k}"] = v
    return tensors


def main(a_dir, b_dir):
    a, b = load_dir(a_dir), load_dir(b_dir)
    missing = sorted(set(a) ^ set(b))
    worst, exact = 0.0, True
    for name in sorted(set(a) & set(b)):
        (da, xa), (db, xb) = a[name], b[name]
        if da != db or len(xa) != len(xb):
            missing.append(name + "(shape/dtype)")
            continue
        if isinstance(xa, bytes):
            exact = exact and xa == xb
            continue
        for u, v in zip(xa, xb):
            d = abs(float(u) - float(v))
            if d != d:  # NaN on one side only
                d = float("inf") if (u == u) != (v == v) else 0.0
            if d > 0:
                exact = False
            worst = max(worst, d)
    print(
        f"max_abs_diff={worst:.3e} tensors={len(set(a) & set(b))} "
        f"exact={'yes' if exact and not missing else 'no'} missing={','.join(missing) or '-'}"
    )
    return 0 if not missing and len(a) > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
