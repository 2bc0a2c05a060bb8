#!/usr/bin/python3
"""check_outputs.py REFERENCE.npy OUTPUT.npy [--tol T]

Compares a model output written by `qdeploy run` with torch's output
(NAME.output.npy from tools/fixtures/export_torchvision.py --outputs):
same shape, finite, max |out - ref| <= T * max(1, max |ref|) (default T=1e-3),
and the same argmax per row (top-1). Exits 1 with the figures on mismatch.

Run with Debian's python: /usr/bin/python3.
"""
import argparse
import sys

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description="compare a qdeploy output with torch's")
    ap.add_argument("reference")
    ap.add_argument("output")
    ap.add_argument("--tol", type=float, default=1e-3)
    args = ap.parse_args(argv)
    ref = np.load(args.reference)
    out = np.load(args.output)
    name = args.output
    if ref.shape != out.shape:
        print(f"check_outputs: FAIL {name}: shape {out.shape}, reference {ref.shape}", file=sys.stderr)
        return 1
    if not np.all(np.isfinite(out)):
        print(f"check_outputs: FAIL {name}: {int(np.sum(~np.isfinite(out)))} non-finite values",
              file=sys.stderr)
        return 1
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    err = float(np.max(np.abs(out64 - ref64))) if ref.size else 0.0
    scale = max(1.0, float(np.max(np.abs(ref64))) if ref.size else 1.0)
    ok = err <= args.tol * scale
    top_ref = ref64.reshape(ref.shape[0], -1).argmax(axis=1) if ref.ndim >= 2 else ref64.argmax()
    top_out = out64.reshape(out.shape[0], -1).argmax(axis=1) if out.ndim >= 2 else out64.argmax()
    top_ok = bool(np.all(top_ref == top_out))
    msg = (f"{name}: max |out - ref| = {err:.3g} (limit {args.tol * scale:.3g}), "
           f"top-1 {np.atleast_1d(top_out).tolist()} vs reference {np.atleast_1d(top_ref).tolist()}")
    if ok and top_ok:
        print(f"check_outputs: OK {msg}")
        return 0
    print(f"check_outputs: FAIL {msg}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
