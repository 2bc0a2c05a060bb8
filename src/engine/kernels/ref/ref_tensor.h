/* Reference layout and shape-computation kernels (portable C). Outputs are
 * already shaped by shape inference; these kernels move data. */
#ifndef QD_REF_TENSOR_H
#define QD_REF_TENSOR_H

#include "engine/kernel.h"

/* Reshape, Flatten, Squeeze, Unsqueeze: a copy of the data (a no-op when
 * the executor aliased output and input). */
qd_status qd_ref_reshape(const qd_kernel_args *a);
qd_status qd_ref_transpose(const qd_kernel_args *a);
qd_status qd_ref_concat(const qd_kernel_args *a);
qd_status qd_ref_split(const qd_kernel_args *a);
qd_status qd_ref_slice(const qd_kernel_args *a);
qd_status qd_ref_gather(const qd_kernel_args *a);
qd_status qd_ref_pad(const qd_kernel_args *a);
qd_status qd_ref_expand(const qd_kernel_args *a);
qd_status qd_ref_tile(const qd_kernel_args *a);
qd_status qd_ref_shape(const qd_kernel_args *a);
qd_status qd_ref_size(const qd_kernel_args *a);
qd_status qd_ref_constant(const qd_kernel_args *a);
qd_status qd_ref_constant_of_shape(const qd_kernel_args *a);
qd_status qd_ref_range(const qd_kernel_args *a);
qd_status qd_ref_einsum(const qd_kernel_args *a);
qd_status qd_ref_scatter_nd(const qd_kernel_args *a);

#endif
