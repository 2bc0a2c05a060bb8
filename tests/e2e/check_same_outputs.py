#!/usr/bin/python3
"""check_same_outputs.py QDEPLOY ORIGINAL.onnx SAVED.onnx

Runs `qdeploy run` on both models with the same seeded input (shaped from
ORIGINAL's first graph input, symbolic dims as 1) and requires identical
outputs: a load/save round trip must not change what a model computes.
Run with Debian's python (/usr/bin/python3: numpy, onnx).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx


def input_shape(path):
    m = onnx.load(path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    for i in m.graph.input:
        if i.name not in inits:
            dims = [d.dim_value if d.HasField("dim_value") else 1
                    for d in i.type.tensor_type.shape.dim]
            return i.name, dims
    raise SystemExit(f"check_same_outputs: {path} has no graph input")


def run(qdeploy, model, x_path, y_path):
    r = subprocess.run([qdeploy, "run", model, "--input", x_path, "--output", y_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"check_same_outputs: qdeploy run {model} failed: {r.stderr.strip()}")
    return np.load(y_path)


def main():
    qdeploy, original, saved = sys.argv[1:4]
    name, dims = input_shape(original)
    with tempfile.TemporaryDirectory() as tmp:
        x = np.random.default_rng(5).standard_normal(dims).astype(np.float32)
        xp = os.path.join(tmp, "x.npy")
        np.save(xp, x)
        a = run(qdeploy, original, xp, os.path.join(tmp, "a.npy"))
        b = run(qdeploy, saved, xp, os.path.join(tmp, "b.npy"))
    if a.shape != b.shape or not np.array_equal(a, b):
        diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
        print(f"check_same_outputs: FAIL {saved}: outputs differ from {original} (max |diff| {diff})")
        return 1
    print(f"check_same_outputs: {saved}: outputs identical to the original's {a.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
