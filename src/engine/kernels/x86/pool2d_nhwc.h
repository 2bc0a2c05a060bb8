/* 2-D MaxPool and GlobalAveragePool reading channels-last (NHWC) data; the
 * output is NHWC too (GlobalAveragePool's [N,C,1,1] is the same bytes in
 * both). The layout plan picks these when a pool's input is NHWC. */
#ifndef QD_X86_POOL2D_NHWC_H
#define QD_X86_POOL2D_NHWC_H

#include "engine/kernel.h"

/* 1 when n (MaxPool 2-D without Indices, explicit or VALID pads; or
 * GlobalAveragePool 4-D), float32 (MaxPool: also int8, uint8), can run on
 * channels-last data here. */
int qd_pool2d_nhwc_supports(const qd_node *n);
qd_status qd_pool2d_nhwc(const qd_kernel_args *a);

/* MaxPool on NHWC int8/uint8 data (pool2d_nhwc_s8.c), called by
 * qd_pool2d_nhwc with the pool's kernel, strides, dilations, begin pads. */
qd_status qd_max_pool2d_nhwc_8bit(const qd_kernel_args *a, const int64_t k[2], const int64_t s[2],
                                  const int64_t d[2], const int64_t p[2]);

#endif
