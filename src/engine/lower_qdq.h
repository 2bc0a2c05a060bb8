/* Lowering QDQ groups to INT8 kernels, the way TensorRT builds a QDQ model.
 *
 * A QDQ model says "this op computes on int8 data" with DequantizeLinear
 * nodes on its inputs: x_q -> DQ(s_x) -> Conv <- DQ(s_w[c]) <- W_q. The
 * engine runs such a Conv (or MatMul/Gemm with a constant weight) as one
 * INT8 kernel reading x_q and W_q directly; the DQ nodes then compute
 * nothing anyone reads and are dropped. Around it:
 *  - activations and a residual Add after the op are fused as post-ops,
 *    as for float;
 *  - when the (fused) result feeds only a QuantizeLinear to int8, the
 *    kernel writes that Q's int8 output itself (requantization: the
 *    next layer's input), else it writes float;
 *  - with a requantized output, a residual operand that is itself
 *    DQ(int8 or uint8, zero point) is read as such (oneDNN's `sum`, minus
 *    the residual's zero point).
 * onnxruntime's form is lowered too: uint8 (or int8) activations with a
 * zero point on the input and on the requantized output (oneDNN zero
 * points), and a bias DQ(int32, s_x * s_w[c]) added to the accumulator as
 * it is. Weights must be symmetric int8. Anything else runs as written
 * (float DQ -> op -> Q), which is always correct. */
#ifndef QD_ENGINE_LOWER_QDQ_H
#define QD_ENGINE_LOWER_QDQ_H

#include "engine/kernel.h"
#include "ir/graph.h"

/* The source of a DequantizeLinear output v that a lowered kernel may read
 * instead: v = DQ(q, scale, 0) with q a non-constant int8 tensor and one
 * float scale. Returns q and sets *scale, or NULL. */
qd_value *qd_lower_dq_source(const qd_value *v, float *scale);
/* The same for an int8 or uint8 q with one constant zero point (*zp). */
qd_value *qd_lower_dq_source_zp(const qd_value *v, float *scale, int32_t *zp);

/* n's bias (Conv input 2, Gemm's C) as the int32 constant b of
 * DQ(b, scale, zero point 0), or NULL. qd_lower_anchor checks the scale. */
qd_value *qd_lower_bias_source(const qd_node *n);

/* When n (Conv, MatMul, Gemm) reads DQ(int8 or uint8 activation) as input 0 and
 * DQ(constant int8 weight, zero point 0, scales per output channel or one)
 * as input 1: fills q (src_scale, weight scales) and returns 1 with the
 * int8 values in *x_q and *w_q. A MatMul of two DQ(int8 activation)
 * inputs (attention, zero points 0) is lowered too, with q->runtime_b set.
 * A bias that is DequantizeLinear output must be qd_lower_bias_source's
 * with scales s_x * s_w[c] (within float rounding), else 0. */
int qd_lower_anchor(const qd_node *n, qd_value **x_q, qd_value **w_q, qd_quant_params *q);

/* When v's only use is one QuantizeLinear to int8 with zero point 0 and a
 * float scale, and v is not a graph output: returns that node and sets
 * *scale. Else NULL. */
qd_node *qd_lower_requant_target(const qd_value *v, float *scale);
/* The same for a Q to int8 or uint8 with one constant zero point (*zp). */
qd_node *qd_lower_requant_target_zp(const qd_value *v, float *scale, int32_t *zp);

#endif
