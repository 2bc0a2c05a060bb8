/* Reference kernels (portable C) for the neural-network ops: convolution,
 * matrix products, normalization, pooling, reductions, softmax family,
 * resizing and quantization. Each follows the ONNX spec of its op; the
 * executor has already allocated the outputs with their inferred shapes. */
#ifndef QD_REF_NN_H
#define QD_REF_NN_H

#include "engine/kernel.h"

/* conv.c (float32) */
qd_status qd_ref_conv(const qd_kernel_args *a);
qd_status qd_ref_conv_transpose(const qd_kernel_args *a);

/* matmul.c: MatMul float32/int32/int64/uint32/uint64, Gemm float32 */
qd_status qd_ref_matmul(const qd_kernel_args *a);
qd_status qd_ref_gemm(const qd_kernel_args *a);

/* norm.c (float32) */
qd_status qd_ref_batch_normalization(const qd_kernel_args *a);
qd_status qd_ref_layer_normalization(const qd_kernel_args *a);
qd_status qd_ref_instance_normalization(const qd_kernel_args *a);

/* pool.c: MaxPool float32/float64/int8/uint8, the others float32 */
qd_status qd_ref_max_pool(const qd_kernel_args *a);
qd_status qd_ref_average_pool(const qd_kernel_args *a);
qd_status qd_ref_global_average_pool(const qd_kernel_args *a);
qd_status qd_ref_global_max_pool(const qd_kernel_args *a);

/* reduce.c: float32/float64/int32/int64/int8/uint8 */
qd_status qd_ref_reduce_mean(const qd_kernel_args *a);
qd_status qd_ref_reduce_sum(const qd_kernel_args *a);
qd_status qd_ref_reduce_max(const qd_kernel_args *a);
qd_status qd_ref_reduce_min(const qd_kernel_args *a);
qd_status qd_ref_reduce_prod(const qd_kernel_args *a);
qd_status qd_ref_reduce_l1(const qd_kernel_args *a);
qd_status qd_ref_reduce_l2(const qd_kernel_args *a);
qd_status qd_ref_reduce_sum_square(const qd_kernel_args *a);
qd_status qd_ref_reduce_log_sum(const qd_kernel_args *a);
qd_status qd_ref_reduce_log_sum_exp(const qd_kernel_args *a);
qd_status qd_ref_arg_max(const qd_kernel_args *a);
qd_status qd_ref_arg_min(const qd_kernel_args *a);

/* softmax.c: Softmax/LogSoftmax float32; TopK and CumSum
 * float32/float64/int32/int64 */
qd_status qd_ref_softmax(const qd_kernel_args *a);
qd_status qd_ref_log_softmax(const qd_kernel_args *a);
qd_status qd_ref_topk(const qd_kernel_args *a);
qd_status qd_ref_cumsum(const qd_kernel_args *a);

/* resize.c: Resize nearest any dtype, linear/cubic float32;
 * DepthToSpace/SpaceToDepth any dtype */
qd_status qd_ref_resize(const qd_kernel_args *a);
qd_status qd_ref_depth_to_space(const qd_kernel_args *a);
qd_status qd_ref_space_to_depth(const qd_kernel_args *a);

/* quant.c: uint8/int8 (and uint16/int16 for Q/DQ, int32 for DQ) */
qd_status qd_ref_quantize_linear(const qd_kernel_args *a);
qd_status qd_ref_dequantize_linear(const qd_kernel_args *a);
qd_status qd_ref_qlinear_conv(const qd_kernel_args *a);
qd_status qd_ref_qlinear_matmul(const qd_kernel_args *a);

#endif
