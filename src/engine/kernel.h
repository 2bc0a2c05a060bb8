/* The kernel contract: what every kernel (reference, oneDNN, own SIMD) is
 * given. The executor has already inferred shapes and allocated the outputs;
 * a kernel only computes. */
#ifndef QD_ENGINE_KERNEL_H
#define QD_ENGINE_KERNEL_H

#include "base/status.h"
#include "ir/graph.h"
#include "ir/tensor.h"

/* How an INT8 kernel reads and writes (see engine/lower_qdq.h): real
 * value = scale * int8 value. */
typedef struct qd_quant_params {
    float src_scale;      /* inputs[0] is int8 at this scale */
    const float *w_scale; /* inputs[1] is int8: a constant weight's scales, or
                             the one scale of an activation (runtime_b) */
    int64_t n_w_scale;    /* 1 (per tensor) or one per output channel */
    float residual_scale; /* > 0: the fused Add's operand is int8 at this scale */
    float dst_scale;      /* > 0: outputs[0] is int8 at this scale; 0: float32 */
    /* With dst_scale: 0 when the fused chain commutes with a positive scale
     * (Relu, an int8 residual) and 1/dst_scale is folded into the output
     * scales; 1 when the chain computes in real units and a final linear
     * post-op scales by 1/dst_scale (GELU, bias Adds after a MatMul). */
    int requant_post_op;
    int runtime_b; /* MatMul of two int8 activations (attention's QK^T, AV) */
    /* Zero points of inputs[0] (a uint8 or int8 activation) and, with
     * dst_scale, of outputs[0] (uint8 or int8): onnxruntime's asymmetric
     * activations. A bias (inputs[2]) of int32 is in accumulator units. */
    int32_t src_zp, dst_zp;
    int32_t residual_zp; /* of the 8-bit residual at residual_scale */
} qd_quant_params;

typedef struct qd_kernel_args {
    const qd_node *node;            /* attributes (qd_node_attr*), name for errors */
    qd_graph *graph;                /* for attribute getters' error messages */
    int n_inputs;
    const qd_tensor *const *inputs; /* NULL entry: omitted optional input */
    int n_outputs;
    qd_tensor *const *outputs;      /* dtype, rank, dims set; data allocated; NULL: omitted */
    int n_threads;
    void *state; /* what the kernel's prepare step made (packed weights,
                    oneDNN primitives); NULL for reference kernels */
    /* Nodes fused into this step after `node`, in order (activations, a
     * residual Add). Each fused Add's other operand is appended to
     * inputs, in order; outputs are the last fused node's outputs. */
    const qd_node *const *fused;
    int n_fused;
    /* INT8 steps (lowered QDQ groups): the scales; NULL for float steps. */
    const qd_quant_params *quant;
    /* 1: a float Conv/MatMul/Gemm with a constant weight may compute in
     * bfloat16 (qd_engine_options.high_precision_bf16). */
    int bf16;
} qd_kernel_args;

/* A kernel returns QD_OK or fails with qd_graph_fail(a->graph, ...) naming
 * the node. */
typedef qd_status (*qd_kernel_fn)(const qd_kernel_args *a);

/* The portable reference kernel of op, or NULL when the engine has none. */
qd_kernel_fn qd_ref_kernel(qd_op op);

#endif
