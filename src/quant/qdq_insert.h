/* Quantize/DequantizeLinear insertion, TensorRT style.
 *
 * Activations: x -> QuantizeLinear(scale = amax/127, zero point int8 0)
 *                -> DequantizeLinear -> consumer, per tensor (scalar scale
 * and zero point). One pair per tensor and scale: a second consumer of the
 * same tensor with the same scale reuses the pair.
 *
 * Weights (constant float initializers): stored quantized, as TensorRT and
 * NVIDIA ModelOpt export them: W_int8 = clamp(round_half_even(W / scale),
 * -127, 127) as an INT8 initializer, followed by DequantizeLinear(W_int8,
 * scale, int8 zeros, axis) feeding the consumer. Per channel along `axis`:
 * scale[c] = max|W[c, ...]| / 127 (1.0 when the channel is all zeros).
 *
 * Rules (TensorRT): int8 symmetric, zero point 0, float32 scales, bias
 * untouched, opset >= 13 (per-axis DequantizeLinear). New names derive from
 * the tensor name ("<x>_QuantizeLinear", "<x>_DequantizeLinear", "<x>_scale",
 * "<x>_zero_point", "<W>_int8"), made unique. The graph is left
 * topologically sorted. Errors name the node and the tensor (qd_graph_error).
 */
#ifndef QD_QUANT_QDQ_INSERT_H
#define QD_QUANT_QDQ_INSERT_H

#include "ir/graph.h"

/* One QDQ point: input `input` of `node`. For a weight, per_channel_axis is
 * the channel axis, -1 for one scale over the tensor. */
typedef struct qd_qdq_point_spec {
    qd_node *node;
    int input;
    int per_channel_axis; /* -1 per tensor */
} qd_qdq_point_spec;

/* Inserts (or reuses) a per-tensor Q/DQ pair on consumer->inputs[input].
 * amax >= 0; scale = qd_observer_scale(amax). A consumer input already fed
 * by a DequantizeLinear with the same scale is left as it is (QD_OK); with
 * another scale it is an error. */
qd_status qd_qdq_insert_activation(qd_graph *g, qd_node *consumer, int input, float amax);

/* Replaces the constant float weight consumer->inputs[input] by an INT8
 * initializer + DequantizeLinear (per channel along axis, or per tensor
 * when axis is -1). Only this consumer is rewired; the float initializer is
 * dropped from the model's initializers when nothing else reads it. */
qd_status qd_qdq_insert_weight(qd_graph *g, qd_node *consumer, int input, int axis);

/* TensorRT's per-channel axis for the weight input of a node: 0 for Conv
 * (input 1) and for Gemm with transB=1; 1 for Gemm with transB=0; the last
 * axis (N of [..., K, N]) for a MatMul's constant second input. Other cases
 * are QD_STATUS_UNSUPPORTED with a message naming the node. */
qd_status qd_qdq_weight_axis(qd_graph *g, const qd_node *node, int input, int *axis);

/* Inserts one point: a weight (constant initializer input) with
 * spec->per_channel_axis (amax is ignored: taken from the data), else an
 * activation with amax. */
qd_status qd_qdq_insert_point(qd_graph *g, const qd_qdq_point_spec *spec, float amax);

#endif
