"""to_ort_style_qdq.py IN OUT: rewrites a symmetric int8 QDQ model
(qdeploy quantize's output) into the form onnxruntime.quantization.quantize_static
writes, computing the same values:
  - activations uint8 with zero point 128 at the same scale (q_u8 = q_s8 + 128,
    so DQ gives the same reals; Q saturates at the same bounds);
  - the float bias of each Conv/Gemm whose input and weight are DQ becomes
    DequantizeLinear(int32 round(b / (s_x * s_w[c])), s_x * s_w[c]).
Used by check_ort_style.sh."""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def main():
    src, dst = sys.argv[1], sys.argv[2]
    m = onnx.load(src)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)

    def arr(name):
        return numpy_helper.to_array(inits[name])

    def put(name, a):
        t = numpy_helper.from_array(a, name)
        if name in inits:
            inits[name].CopyFrom(t)
        else:
            g.initializer.append(t)
            inits[name] = g.initializer[-1]

    # Activation Q/DQ pairs: int8 zero point 0 -> uint8 zero point 128.
    done = set()
    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(n.input) < 3:
            continue
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            continue  # a weight
        z = n.input[2]
        if z in done or z not in inits:
            continue
        a = arr(z)
        if a.dtype != np.int8 or a.size != 1 or a.ravel()[0] != 0:
            continue
        put(z, np.array(128, dtype=np.uint8).reshape(a.shape))
        done.add(z)
    # A zero point shared by a weight DQ and an activation would now be wrong.
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and len(n.input) > 2:
            assert n.input[2] not in done, "zero point shared by a weight and an activation"

    def dq_scale(name, const):
        n = prod.get(name)
        if n is None or n.op_type != "DequantizeLinear" or (n.input[0] in inits) != const:
            return None
        return n
    biased = 0
    for n in list(g.node):
        if n.op_type not in ("Conv", "Gemm") or len(n.input) < 3 or n.input[2] not in inits:
            continue
        dx, dw = dq_scale(n.input[0], False), dq_scale(n.input[1], True)
        if dx is None or dw is None or dx.input[1] not in inits or dw.input[1] not in inits:
            continue
        if n.op_type == "Gemm" and any(a.name == "transB" and a.i == 0 for a in n.attribute):
            continue
        sx = arr(dx.input[1]).astype(np.float32).reshape(())
        sw = arr(dw.input[1]).astype(np.float32).ravel()
        b = arr(n.input[2]).astype(np.float32).ravel()
        sb = (sx * sw).astype(np.float32)
        if sb.size == 1:
            sb = np.full(b.shape, sb[0], dtype=np.float32)
        q = np.clip(np.round(b / sb), -2**31, 2**31 - 1).astype(np.int32)
        base = n.input[2]
        put(base + "_quantized", q)
        put(base + "_quantized_scale", sb)
        zp = np.zeros(q.shape, dtype=np.int32)
        put(base + "_quantized_zero_point", zp)
        dq = helper.make_node("DequantizeLinear",
                              [base + "_quantized", base + "_quantized_scale",
                               base + "_quantized_zero_point"],
                              [base + "_dq"], name=base + "_DequantizeLinear", axis=0)
        g.node.insert(list(g.node).index(n), dq)
        n.input[2] = base + "_dq"
        biased += 1
    print(f"to_ort_style_qdq: {len(done)} activation zero points to uint8, {biased} biases to int32")
    # The float biases replaced are read by nothing now.
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used or t.name in {o.name for o in g.output}]
    del g.initializer[:]
    g.initializer.extend(keep)
    # Shapes recorded for the old int8 tensors would contradict the new types.
    del g.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, dst)


if __name__ == "__main__":
    main()
