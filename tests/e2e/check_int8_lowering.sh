#!/bin/sh
# check_int8_lowering.sh QDEPLOY PYTHON TV_DIR: quantizes torchvision resnet50,
# convnext_tiny and vit_b_16 (mixed, and convnext_tiny uniform too; one
# random calibration image is enough to place and scale QDQ) and checks that
# the engine lowers every QDQ group it should to an INT8 kernel: each Conv,
# MatMul or Gemm whose input and weight both come from DequantizeLinear of
# int8 (zero point 0), and each MatMul of two such activations, is one INT8
# step. Prints the counts per model.
set -u
QDEPLOY=$1
PYTHON=$2
TV=$3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

"$PYTHON" -c "import numpy as np; np.save('$WORK/calib.npy', np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32))"

check() { # model policy
    m=$1 p=$2
    q="$WORK/$m.$p.onnx"
    if ! "$QDEPLOY" quantize "$TV/$m.onnx" -o "$q" --calib "$WORK/calib.npy" --calib-batches 1 \
        --batch-size 1 --policy "$p" --method max > "$WORK/quantize.out" 2>&1; then
        fail "quantize $m --policy $p: $(tail -1 "$WORK/quantize.out")"
        return
    fi
    if ! "$QDEPLOY" bench "$q" --iters 1 --warmup 0 > "$WORK/bench.out" 2>&1; then
        fail "bench $m ($p): $(tail -1 "$WORK/bench.out")"
        return
    fi
    got=$(sed -n 's/^plan: .*INT8 kernels: \([0-9]*\) (\([0-9]*\) write int8).*/\1 \2/p' "$WORK/bench.out")
    want=$("$PYTHON" - "$q" <<'PY'
import sys, onnx, onnx.numpy_helper
m = onnx.load(sys.argv[1], load_external_data=False)
g = m.graph
prod = {o: n for n in g.node for o in n.output}
inits = {i.name: i for i in g.initializer}
def zero(name):
    return name == "" or (name in inits and not any(onnx.numpy_helper.to_array(inits[name]).ravel()))
def dq_of(name, const):
    n = prod.get(name)
    if n is None or n.op_type != "DequantizeLinear":
        return False
    src_const = n.input[0] in inits
    return src_const == const and zero(n.input[2] if len(n.input) > 2 else "")
# A Conv/MatMul/Gemm with an int8 weight, or a MatMul of two int8
# activations (attention's QK^T and AV).
count = sum(1 for n in g.node if n.op_type in ("Conv", "MatMul", "Gemm")
            and len(n.input) > 1 and dq_of(n.input[0], False)
            and (dq_of(n.input[1], True) or (n.op_type == "MatMul" and dq_of(n.input[1], False))))
print(count)
PY
)
    int8=${got% *}
    echo "     $m ($p): $got  (INT8 kernels, of which write int8); QDQ groups in the model: $want"
    [ -n "$got" ] && [ "$int8" = "$want" ] && [ "$want" -gt 0 ] ||
        fail "$m ($p): $int8 INT8 kernels for $want QDQ groups"
}

check resnet50 mixed
check convnext_tiny mixed
check convnext_tiny uniform
check vit_b_16 mixed

[ $fails -eq 0 ] && echo "ok   every QDQ group became an INT8 kernel"
exit $fails
