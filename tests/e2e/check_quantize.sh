#!/bin/sh
# check_quantize.sh QDEPLOY PYTHON BAD_DIR TV_DIR: `qdeploy quantize` on a small
# model with Fashion-MNIST calibration (Debian's dataset-fashion-mnist) and on
# convnext_tiny (mixed vs uniform): the QDQ models pass onnx.checker, run on
# the engine, keep depthwise convs float in mixed and quantize them in
# uniform; bad input fails cleanly and writes nothing.
set -u
QDEPLOY=$1
PYTHON=$2
BAD=$3
TV=$4
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

"$QDEPLOY" quantize "$BAD/small_conv.onnx" -o "$WORK/sc.qdq.onnx" --calib "$FMNIST" \
    --calib-batches 2 --batch-size 8 --mean 0.2860 --std 0.3530 > "$WORK/out" 2>&1 ||
    fail "quantize small_conv: $(cat "$WORK/out")"
grep -q "QDQ pairs: 1 activation" "$WORK/out" || fail "small_conv report: $(cat "$WORK/out")"

"$PYTHON" - "$WORK" <<'PY' || fails=$((fails + 1))
import sys, onnx, numpy as np
w = sys.argv[1]
m = onnx.load(f"{w}/sc.qdq.onnx")
onnx.checker.check_model(m)
ops = [n.op_type for n in m.graph.node]
assert ops.count("QuantizeLinear") == 1 and ops.count("DequantizeLinear") == 2, ops
w8 = [i for i in m.graph.initializer if i.name.endswith("_int8")]
assert w8 and all(i.data_type == onnx.TensorProto.INT8 for i in w8), "weights stored as int8"
np.save(f"{w}/x.npy", np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32))
print("ok   small_conv QDQ model: checker passes,", ops.count("DequantizeLinear"), "DQ nodes")
PY
"$QDEPLOY" run "$WORK/sc.qdq.onnx" --input "$WORK/x.npy" --output "$WORK/y.npy" > /dev/null 2>&1 ||
    fail "the QDQ model does not run on the engine"

# onnxruntime (npm onnxruntime-node, the test peer) runs the QDQ model as
# written; on a held-out input its output agrees with the engine's.
ORT_RUN="$(dirname "$0")/ort_run.js"
"$PYTHON" -c "import numpy as np; np.save('$WORK/held.npy', np.random.default_rng(9).standard_normal((1, 3, 16, 16)).astype(np.float32))"
if node "$ORT_RUN" "$WORK/sc.qdq.onnx" "$WORK/held.npy" "$WORK/y_ort.npy" 2> "$WORK/ort_err" &&
   "$QDEPLOY" run "$WORK/sc.qdq.onnx" --input "$WORK/held.npy" --output "$WORK/y_qd.npy" > /dev/null; then
    "$PYTHON" - "$WORK" <<'PY' || fails=$((fails + 1))
import sys, numpy as np
w = sys.argv[1]
a, b = np.load(f"{w}/y_qd.npy"), np.load(f"{w}/y_ort.npy")
err = float(np.abs(a - b).max())
assert a.shape == b.shape and err <= 1e-4 * max(1.0, float(np.abs(b).max())), f"max |diff| {err}"
assert a.argmax() == b.argmax()
print(f"ok   small_conv QDQ: engine vs onnxruntime max |diff| {err:.2g}, same top-1")
PY
else
    fail "onnxruntime or the engine could not run the QDQ model: $(cat "$WORK/ort_err")"
fi

for p in mixed uniform; do
    "$QDEPLOY" quantize "$TV/convnext_tiny.onnx" -o "$WORK/cn_$p.onnx" --calib "$WORK/x.npy" \
        --calib-batches 1 --batch-size 1 --policy $p > "$WORK/out_$p" 2>&1 ||
        fail "quantize convnext_tiny --policy $p: $(tail -1 "$WORK/out_$p")"
done
"$PYTHON" - "$WORK" <<'PY' || fails=$((fails + 1))
import sys, onnx
w = sys.argv[1]
def depthwise_with_qdq(p):
    m = onnx.load(f"{w}/cn_{p}.onnx")
    onnx.checker.check_model(m)
    prod = {o: n for n in m.graph.node for o in n.output}
    count = 0
    for n in m.graph.node:
        g = [a.i for a in n.attribute if a.name == "group"]
        if n.op_type == "Conv" and g and g[0] > 1:
            count += prod.get(n.input[0]) is not None and prod[n.input[0]].op_type == "DequantizeLinear"
    return count
mixed, uniform = depthwise_with_qdq("mixed"), depthwise_with_qdq("uniform")
assert mixed == 0, f"mixed put QDQ on {mixed} depthwise convs"
assert uniform == 18, f"uniform put QDQ on {uniform} of 18 depthwise convs"
print("ok   convnext_tiny: depthwise convs with QDQ: mixed 0, uniform 18")
PY

# The mixed ConvNeXt QDQ model on a held-out input: onnxruntime and the
# engine agree within the rounding of requantization, with the same top-1.
"$PYTHON" -c "import numpy as np; np.save('$WORK/held224.npy', np.random.default_rng(9).standard_normal((1, 3, 224, 224)).astype(np.float32))"
if node "$ORT_RUN" "$WORK/cn_mixed.onnx" "$WORK/held224.npy" "$WORK/cy_ort.npy" 2> "$WORK/ort_err" &&
   "$QDEPLOY" run "$WORK/cn_mixed.onnx" --input "$WORK/held224.npy" --output "$WORK/cy_qd.npy" > /dev/null; then
    "$PYTHON" - "$WORK" <<'PY' || fails=$((fails + 1))
import sys, numpy as np
w = sys.argv[1]
a, b = np.load(f"{w}/cy_qd.npy"), np.load(f"{w}/cy_ort.npy")
err, scale = float(np.abs(a - b).max()), float(np.abs(b).max())
assert err <= 0.10 * scale, f"max |diff| {err} against a logit scale of {scale}"
assert a.argmax() == b.argmax(), (a.argmax(), b.argmax())
print(f"ok   convnext_tiny mixed QDQ: engine vs onnxruntime max |diff| {err:.3g} (scale {scale:.3g}), same top-1")
PY
else
    fail "onnxruntime or the engine could not run the ConvNeXt QDQ model: $(cat "$WORK/ort_err")"
fi

# User rules and the plan file: --exclude keeps matching nodes float,
# --include quantizes a Linear the mixed policy kept in high precision.
"$QDEPLOY" quantize "$TV/convnext_tiny.onnx" -o "$WORK/cn_rules.onnx" --calib "$WORK/x.npy" \
    --calib-batches 1 --batch-size 1 --exclude 'Gemm|features\.5' \
    --include 'features\.1\.0/block/block\.3' --dump-plan "$WORK/plan.json" > "$WORK/out_rules" 2>&1 ||
    fail "quantize with --include/--exclude: $(tail -1 "$WORK/out_rules")"
"$PYTHON" - "$WORK" <<'PY' || fails=$((fails + 1))
import json, sys, onnx
w = sys.argv[1]
plan = json.load(open(f"{w}/plan.json"))
pts = plan["points"]
assert not any("features.5" in p["node"] or p["op"] == "Gemm" for p in pts), "--exclude ignored"
inc = [p for p in pts if p["module"] == "--include"]
assert [p["kind"] for p in inc] == ["activation", "weight"], inc
assert all(p["scale"] > 0 for p in pts if p["kind"] == "activation")
onnx.checker.check_model(onnx.load(f"{w}/cn_rules.onnx"))
print(f"ok   --include/--exclude/--dump-plan: {len(pts)} points, the included Linear quantized")
PY

# Bad input: one line naming the problem, non-zero status, no output file.
expect_fail() {
    name=$1; pat=$2; shift 2
    rm -f "$WORK/bad.onnx"
    "$QDEPLOY" quantize "$@" > /dev/null 2> "$WORK/err"
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "$name: exit status $rc"; return; fi
    grep -q -- "$pat" "$WORK/err" || fail "$name: '$pat' not in: $(cat "$WORK/err")"
    [ -e "$WORK/bad.onnx" ] && fail "$name: wrote an output file"
    echo "ok   $name: $(head -1 "$WORK/err")"
}
expect_fail same_path "output path is the input" "$BAD/small_conv.onnx" -o "$BAD/small_conv.onnx" --calib "$FMNIST"
expect_fail missing_calib "nothere" "$BAD/small_conv.onnx" -o "$WORK/bad.onnx" --calib "$WORK/nothere.npy"
expect_fail bad_model "truncated.onnx" "$BAD/truncated.onnx" -o "$WORK/bad.onnx" --calib "$FMNIST"
expect_fail bad_regex "regular expression" "$BAD/small_conv.onnx" -o "$WORK/bad.onnx" --calib "$FMNIST" --exclude '('
expect_fail bad_policy "policy" "$BAD/small_conv.onnx" -o "$WORK/bad.onnx" --calib "$FMNIST" --policy fancy
"$PYTHON" -c "import numpy as np; np.save('$WORK/empty.npy', np.zeros((0, 3, 16, 16), np.float32))"
expect_fail empty_calib "empty" "$BAD/small_conv.onnx" -o "$WORK/bad.onnx" --calib "$WORK/empty.npy"

[ $fails -eq 0 ] && echo "quantize: all checks pass" || exit 1
