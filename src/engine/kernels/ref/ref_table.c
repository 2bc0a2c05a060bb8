/* op -> portable reference kernel. Every op the engine claims is here; the
 * ONNX node tests run for exactly these (tests/conformance). */
#include "engine/kernel.h"
#include "engine/kernels/ref/ref_elementwise.h"
#include "engine/kernels/ref/ref_nn.h"
#include "engine/kernels/ref/ref_tensor.h"

qd_kernel_fn qd_ref_kernel(qd_op op)
{
    switch (op) {
    case QD_OP_CONV: return qd_ref_conv;
    case QD_OP_CONV_TRANSPOSE: return qd_ref_conv_transpose;
    case QD_OP_GEMM: return qd_ref_gemm;
    case QD_OP_MATMUL: return qd_ref_matmul;
    case QD_OP_BATCH_NORMALIZATION: return qd_ref_batch_normalization;
    case QD_OP_LAYER_NORMALIZATION: return qd_ref_layer_normalization;
    case QD_OP_INSTANCE_NORMALIZATION: return qd_ref_instance_normalization;

    case QD_OP_CLIP: return qd_ref_clip;
    case QD_OP_RELU: case QD_OP_LEAKY_RELU: case QD_OP_ELU: case QD_OP_SIGMOID:
    case QD_OP_HARD_SIGMOID: case QD_OP_HARD_SWISH: case QD_OP_TANH: case QD_OP_ERF:
    case QD_OP_SOFTPLUS: case QD_OP_SQRT: case QD_OP_RECIPROCAL: case QD_OP_NEG:
    case QD_OP_ABS: case QD_OP_EXP: case QD_OP_LOG: case QD_OP_FLOOR: case QD_OP_CEIL:
    case QD_OP_ROUND: case QD_OP_SIGN: case QD_OP_SIN: case QD_OP_COS: case QD_OP_NOT:
        return qd_ref_unary;
    case QD_OP_GELU: return qd_ref_gelu;
    case QD_OP_SOFTMAX: return qd_ref_softmax;
    case QD_OP_LOG_SOFTMAX: return qd_ref_log_softmax;

    case QD_OP_ADD: case QD_OP_SUB: case QD_OP_MUL: case QD_OP_DIV: case QD_OP_POW:
    case QD_OP_MOD: case QD_OP_MAX: case QD_OP_MIN: case QD_OP_SUM: case QD_OP_MEAN:
    case QD_OP_EQUAL: case QD_OP_LESS: case QD_OP_LESS_OR_EQUAL: case QD_OP_GREATER:
    case QD_OP_GREATER_OR_EQUAL: case QD_OP_AND: case QD_OP_OR: case QD_OP_XOR:
        return qd_ref_binary;
    case QD_OP_WHERE: return qd_ref_where;
    case QD_OP_IDENTITY: return qd_ref_identity;
    case QD_OP_DROPOUT: return qd_ref_dropout;
    case QD_OP_CAST: return qd_ref_cast;

    case QD_OP_MAX_POOL: return qd_ref_max_pool;
    case QD_OP_AVERAGE_POOL: return qd_ref_average_pool;
    case QD_OP_GLOBAL_AVERAGE_POOL: return qd_ref_global_average_pool;
    case QD_OP_GLOBAL_MAX_POOL: return qd_ref_global_max_pool;
    case QD_OP_REDUCE_MEAN: return qd_ref_reduce_mean;
    case QD_OP_REDUCE_SUM: return qd_ref_reduce_sum;
    case QD_OP_REDUCE_MAX: return qd_ref_reduce_max;
    case QD_OP_REDUCE_MIN: return qd_ref_reduce_min;
    case QD_OP_REDUCE_PROD: return qd_ref_reduce_prod;
    case QD_OP_REDUCE_L2: return qd_ref_reduce_l2;
    case QD_OP_REDUCE_SUM_SQUARE: return qd_ref_reduce_sum_square;
    case QD_OP_ARG_MAX: return qd_ref_arg_max;
    case QD_OP_ARG_MIN: return qd_ref_arg_min;

    case QD_OP_RESHAPE: case QD_OP_FLATTEN: case QD_OP_SQUEEZE: case QD_OP_UNSQUEEZE:
        return qd_ref_reshape;
    case QD_OP_TRANSPOSE: return qd_ref_transpose;
    case QD_OP_CONCAT: return qd_ref_concat;
    case QD_OP_SPLIT: return qd_ref_split;
    case QD_OP_SLICE: return qd_ref_slice;
    case QD_OP_GATHER: return qd_ref_gather;
    case QD_OP_PAD: return qd_ref_pad;
    case QD_OP_EXPAND: return qd_ref_expand;
    case QD_OP_TILE: return qd_ref_tile;
    case QD_OP_SHAPE: return qd_ref_shape;
    case QD_OP_SIZE: return qd_ref_size;
    case QD_OP_CONSTANT: return qd_ref_constant;
    case QD_OP_CONSTANT_OF_SHAPE: return qd_ref_constant_of_shape;
    case QD_OP_RANGE: return qd_ref_range;
    case QD_OP_RESIZE: return qd_ref_resize;
    case QD_OP_DEPTH_TO_SPACE: return qd_ref_depth_to_space;
    case QD_OP_SPACE_TO_DEPTH: return qd_ref_space_to_depth;
    case QD_OP_TOPK: return qd_ref_topk;
    case QD_OP_CUMSUM: return qd_ref_cumsum;
    case QD_OP_EINSUM: return qd_ref_einsum;
    case QD_OP_SCATTER_ND: return qd_ref_scatter_nd;

    case QD_OP_QUANTIZE_LINEAR: return qd_ref_quantize_linear;
    case QD_OP_DEQUANTIZE_LINEAR: return qd_ref_dequantize_linear;
    case QD_OP_QLINEAR_CONV: return qd_ref_qlinear_conv;
    case QD_OP_QLINEAR_MATMUL: return qd_ref_qlinear_matmul;
    default: return NULL;
    }
}
