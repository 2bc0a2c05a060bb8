/* MaxPool on channels-last int8/uint8 data: the pool between an INT8 conv
 * that writes int8 and the next INT8 conv (ResNet's stem pool once the
 * QuantizeLinear moved above it, passes/propagate_quantize.c), with no
 * layout conversion around it. The max of quantized values is the
 * quantized max, so this is exact. Channels are the contiguous inner loop,
 * which the compiler vectorises; portable C. */
#include <stdint.h>

#include "engine/kernels/x86/pool2d_nhwc.h"

#define QD_MAX_POOL_NHWC(NAME, T, LOWEST)                                                          \
    static void NAME(const T *src, T *dst, int64_t n_img, int64_t c, int64_t ih, int64_t iw,      \
                     int64_t oh, int64_t ow, const int64_t k[2], const int64_t s[2],              \
                     const int64_t d[2], const int64_t p[2])                                       \
    {                                                                                              \
        int64_t rows = n_img * oh;                                                                 \
        _Pragma("omp parallel for schedule(static) if (rows * ow * c > 65536)")                    \
        for (int64_t r = 0; r < rows; r++) {                                                       \
            int64_t b = r / oh, oy = r % oh;                                                       \
            for (int64_t ox = 0; ox < ow; ox++) {                                                  \
                T *out = dst + ((b * oh + oy) * ow + ox) * c;                                      \
                for (int64_t ch = 0; ch < c; ch++)                                                 \
                    out[ch] = LOWEST;                                                              \
                for (int64_t ky = 0; ky < k[0]; ky++) {                                            \
                    int64_t iy = oy * s[0] - p[0] + ky * d[0];                                     \
                    if (iy < 0 || iy >= ih)                                                        \
                        continue;                                                                  \
                    for (int64_t kx = 0; kx < k[1]; kx++) {                                        \
                        int64_t ix = ox * s[1] - p[1] + kx * d[1];                                 \
                        if (ix < 0 || ix >= iw)                                                    \
                            continue;                                                              \
                        const T *in = src + ((b * ih + iy) * iw + ix) * c;                         \
                        _Pragma("omp simd") for (int64_t ch = 0; ch < c; ch++) out[ch] =           \
                            in[ch] > out[ch] ? in[ch] : out[ch];                                   \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

QD_MAX_POOL_NHWC(max_pool_s8, int8_t, INT8_MIN)
QD_MAX_POOL_NHWC(max_pool_u8, uint8_t, 0)

qd_status qd_max_pool2d_nhwc_8bit(const qd_kernel_args *a, const int64_t k[2], const int64_t s[2],
                                  const int64_t d[2], const int64_t p[2])
{
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    if (y->dtype != x->dtype || (x->dtype != QD_DT_INT8 && x->dtype != QD_DT_UINT8))
        return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                             "node '%s' (MaxPool): the NHWC 8-bit pool needs int8 or uint8 data",
                             a->node->name);
    int64_t n = x->dims[0], c = x->dims[1], ih = x->dims[2], iw = x->dims[3];
    int64_t oh = y->dims[2], ow = y->dims[3];
    if (x->dtype == QD_DT_INT8)
        max_pool_s8(x->data, y->data, n, c, ih, iw, oh, ow, k, s, d, p);
    else
        max_pool_u8(x->data, y->data, n, c, ih, iw, oh, ow, k, s, d, p);
    return QD_OK;
}
