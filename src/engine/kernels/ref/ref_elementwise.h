/* Reference elementwise kernels (portable C): broadcasting binary ops,
 * Where, unary math, Clip, Cast, Identity, Dropout. */
#ifndef QD_REF_ELEMENTWISE_H
#define QD_REF_ELEMENTWISE_H

#include <stdint.h>

#include "engine/kernel.h"

/* Add, Sub, Mul, Div, Pow, Mod, Max, Min, Sum, Mean, Equal, Less,
 * LessOrEqual, Greater, GreaterOrEqual, And, Or, Xor (switches on op). */
qd_status qd_ref_binary(const qd_kernel_args *a);
qd_status qd_ref_where(const qd_kernel_args *a);

/* Relu, LeakyRelu, Elu, Sigmoid, HardSigmoid, HardSwish, Tanh, Erf,
 * Softplus, Sqrt, Reciprocal, Neg, Abs, Exp, Log, Floor, Ceil, Round, Sign,
 * Sin, Cos, Not (switches on op). */
qd_status qd_ref_unary(const qd_kernel_args *a);
qd_status qd_ref_clip(const qd_kernel_args *a);
qd_status qd_ref_cast(const qd_kernel_args *a);
qd_status qd_ref_identity(const qd_kernel_args *a);
qd_status qd_ref_dropout(const qd_kernel_args *a);

/* Converts n elements from src_dtype to dst_dtype the way Cast does (float
 * to integer truncates toward zero, NaN gives 0, out-of-range saturates to
 * int64 first and then wraps; to bool is != 0). src and dst must not
 * overlap unless they are the same pointer with the same element size.
 * Returns 0, or -1 when a dtype is not numeric. */
int qd_ref_convert(const void *src, qd_dtype src_dtype, void *dst, qd_dtype dst_dtype, int64_t n);

/* Gelu: approximate "none" (erf) or "tanh". */
qd_status qd_ref_gelu(const qd_kernel_args *a);

#endif
