#!/bin/sh
# check_ort_style.sh QDEPLOY AGREEMENT PYTHON MODEL: quantizes a trained
# Fashion-MNIST fixture (as check_int8_agreement.sh), rewrites the QDQ model
# into onnxruntime's form (to_ort_style_qdq.py: uint8 activations with zero
# point 128, int32 biases at s_x * s_w) and checks that the engine plans it
# as the symmetric model (the same INT8 kernels, as many writing 8-bit
# outputs), that its INT8 kernels agree with it run as written, and that
# they agree with onnxruntime (npm onnxruntime-node, ort_run.js) running it.
set -u
QDEPLOY=$1
AGREEMENT=$2
PYTHON=$3
MODEL=$4
. "$(dirname "$0")/fixture_int8.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
name=$(basename "$MODEL" .onnx)
quantize_fixture "$QDEPLOY" "$MODEL" "$WORK/q.onnx" "$WORK"
"$PYTHON" "$(dirname "$0")/to_ort_style_qdq.py" "$WORK/q.onnx" "$WORK/ort.onnx" || {
    echo "FAIL $name: to_ort_style_qdq.py"; exit 1; }
for m in q ort; do
    "$QDEPLOY" bench "$WORK/$m.onnx" --iters 1 --warmup 0 > "$WORK/$m.bench" 2>&1 || {
        echo "FAIL bench $name ($m): $(tail -1 "$WORK/$m.bench")"; exit 1; }
done
plan_q=$(sed -n 's/^plan: .*INT8 kernels: \([0-9]*\) (\([0-9]*\) write int8).*/\1 \2/p' "$WORK/q.bench")
plan_o=$(sed -n 's/^plan: .*INT8 kernels: \([0-9]*\) (\([0-9]*\) write int8).*/\1 \2/p' "$WORK/ort.bench")
echo "     $name: INT8 kernels (of which write 8-bit): symmetric $plan_q, onnxruntime-style $plan_o"
[ -n "$plan_q" ] && [ "$plan_q" = "$plan_o" ] || {
    echo "FAIL $name: the onnxruntime-style model is not lowered as the symmetric one"; exit 1; }
check_agreement "$AGREEMENT" "$WORK/ort.onnx" "$name (onnxruntime-style)"
"$PYTHON" -c "import numpy as np; np.save('$WORK/x.npy', np.random.default_rng(5).standard_normal((16, 3, 32, 32)).astype(np.float32))"
node "$(dirname "$0")/ort_run.js" "$WORK/ort.onnx" "$WORK/x.npy" "$WORK/y_ort.npy" 2> "$WORK/ort_err" || {
    echo "FAIL $name: onnxruntime: $(grep -v '^.\[0;93m' "$WORK/ort_err" | tail -1)"; exit 1; }
"$QDEPLOY" run "$WORK/ort.onnx" --input "$WORK/x.npy" --output "$WORK/y_qd.npy" > "$WORK/run.out" 2>&1 || {
    echo "FAIL run $name: $(tail -1 "$WORK/run.out")"; exit 1; }
"$PYTHON" - "$WORK/y_qd.npy" "$WORK/y_ort.npy" <<'PY'
import sys
import numpy as np
q, o = np.load(sys.argv[1]), np.load(sys.argv[2])
diff, scale = float(np.abs(q - o).max()), float(np.abs(o).max())
agree = float((q.argmax(1) == o.argmax(1)).mean())
print(f"     INT8 kernels vs onnxruntime on 16 random inputs: max |diff| {diff:.3g} "
      f"(logit scale {scale:.3g}), Top-1 agree {agree:.0%}")
if q.shape != o.shape or diff > 0.1 * scale or agree < 0.9:
    print("FAIL INT8 kernels and onnxruntime differ")
    sys.exit(1)
print("ok   INT8 kernels agree with onnxruntime")
PY
