/* MaxPool and GlobalAveragePool on channels-last data, so the layout plan
 * need not convert around the pools between convolutions (ResNet's stem
 * pool, the final global pool). Channels are the contiguous inner loop,
 * which the compiler vectorises; portable C. */
#include <float.h>
#include <string.h>

#include <immintrin.h>

#include "engine/kernels/x86/pool2d_nhwc.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

/* kernel_shape, strides, dilations, begin pads of a 2-D MaxPool; 0 when
 * its attributes are not a case handled here. */
static int read_pool(const qd_node *n, int64_t k[2], int64_t s[2], int64_t d[2], int64_t p[2])
{
    const qd_attr *ks = qd_node_attr(n, "kernel_shape"), *st = qd_node_attr(n, "strides"),
                  *dl = qd_node_attr(n, "dilations"), *pd = qd_node_attr(n, "pads"),
                  *ap = qd_node_attr(n, "auto_pad");
    if (!ks || ks->type != QD_ATTR_INTS || ks->n != 2)
        return 0;
    if (ap && (ap->type != QD_ATTR_STRING || (strcmp(ap->s, "NOTSET") && strcmp(ap->s, "VALID"))))
        return 0;
    for (int i = 0; i < 2; i++) {
        k[i] = ks->ints[i];
        s[i] = st && st->type == QD_ATTR_INTS && st->n == 2 ? st->ints[i] : 1;
        d[i] = dl && dl->type == QD_ATTR_INTS && dl->n == 2 ? dl->ints[i] : 1;
        p[i] = pd && pd->type == QD_ATTR_INTS && pd->n == 4 ? pd->ints[i] : 0;
        if (k[i] < 1 || s[i] < 1 || d[i] < 1 || p[i] < 0)
            return 0;
    }
    return 1;
}

int qd_pool2d_nhwc_supports(const qd_node *n)
{
    qd_dtype dt = n->n_inputs == 1 && n->inputs[0] ? n->inputs[0]->dtype : QD_DT_UNDEFINED;
    int bytes = (dt == QD_DT_INT8 || dt == QD_DT_UINT8) && n->op == QD_OP_MAX_POOL;
    if (n->n_inputs != 1 || !n->inputs[0] || (dt != QD_DT_FLOAT && !bytes) ||
        n->inputs[0]->rank != 4 || n->n_outputs < 1 || !n->outputs[0])
        return 0;
    if (n->op == QD_OP_GLOBAL_AVERAGE_POOL)
        return 1;
    if (n->op != QD_OP_MAX_POOL || (n->n_outputs > 1 && n->outputs[1]))
        return 0; /* Indices are NCHW offsets: not computed here */
    int64_t k[2], s[2], d[2], p[2];
    return read_pool(n, k, s, d, p);
}

typedef struct pool_geom {
    int64_t k[2], s[2], d[2], p[2];
    int64_t ih, iw, oh, ow, c;
} pool_geom;

/* One output row of a MaxPool on AVX-512: per output pixel, the channels
 * in blocks of 64 held in four registers across the window, stored once. */
static QD_X86_AVX512 void max_pool_row_avx512(const pool_geom *g, const float *src, float *dst,
                                              int64_t oy)
{
    const int64_t c = g->c;
    for (int64_t ox = 0; ox < g->ow; ox++) {
        float *out = dst + ox * c;
        for (int64_t c0 = 0; c0 < c; c0 += 64) {
            int64_t left = c - c0;
            __mmask16 m[4];
            __m512 acc[4];
            for (int j = 0; j < 4; j++) {
                int64_t n = left - 16 * j;
                m[j] = n >= 16 ? (__mmask16)0xFFFF : n > 0 ? qd_x86_tail_mask(n) : 0;
                acc[j] = _mm512_set1_ps(-FLT_MAX);
            }
            for (int64_t ky = 0; ky < g->k[0]; ky++) {
                int64_t iy = oy * g->s[0] - g->p[0] + ky * g->d[0];
                if (iy < 0 || iy >= g->ih)
                    continue;
                for (int64_t kx = 0; kx < g->k[1]; kx++) {
                    int64_t ix = ox * g->s[1] - g->p[1] + kx * g->d[1];
                    if (ix < 0 || ix >= g->iw)
                        continue;
                    const float *in = src + (iy * g->iw + ix) * c + c0;
                    for (int j = 0; j < 4; j++)
                        acc[j] = _mm512_max_ps(_mm512_maskz_loadu_ps(m[j], in + 16 * j), acc[j]);
                }
            }
            for (int j = 0; j < 4; j++)
                _mm512_mask_storeu_ps(out + c0 + 16 * j, m[j], acc[j]);
        }
    }
}

static qd_status max_pool(const qd_kernel_args *a)
{
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    int64_t k[2], s[2], d[2], p[2];
    if (!read_pool(a->node, k, s, d, p))
        return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                             "node '%s' (MaxPool): attributes not handled by the NHWC kernel",
                             a->node->name);
    if (x->dtype != QD_DT_FLOAT)
        return qd_max_pool2d_nhwc_8bit(a, k, s, d, p); /* int8 after a propagated Q */
    int64_t n_img = x->dims[0], c = x->dims[1], ih = x->dims[2], iw = x->dims[3];
    int64_t oh = y->dims[2], ow = y->dims[3];
    const float *src = x->data;
    float *dst = y->data;
    int64_t rows = n_img * oh;
    if (qd_x86_cpu_avx512()) {
        pool_geom g = {{k[0], k[1]}, {s[0], s[1]}, {d[0], d[1]}, {p[0], p[1]}, ih, iw, oh, ow, c};
#pragma omp parallel for schedule(static) if (rows * ow * c > 16384)
        for (int64_t r = 0; r < rows; r++) {
            int64_t b = r / oh, oy = r % oh;
            max_pool_row_avx512(&g, src + b * ih * iw * c, dst + (b * oh + oy) * ow * c, oy);
        }
        return QD_OK;
    }
#pragma omp parallel for schedule(static) if (rows * ow * c > 16384)
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / oh, oy = r % oh;
        for (int64_t ox = 0; ox < ow; ox++) {
            float *out = dst + ((b * oh + oy) * ow + ox) * c;
#pragma omp simd
            for (int64_t ch = 0; ch < c; ch++)
                out[ch] = -FLT_MAX;
            for (int64_t ky = 0; ky < k[0]; ky++) {
                int64_t iy = oy * s[0] - p[0] + ky * d[0];
                if (iy < 0 || iy >= ih)
                    continue;
                for (int64_t kx = 0; kx < k[1]; kx++) {
                    int64_t ix = ox * s[1] - p[1] + kx * d[1];
                    if (ix < 0 || ix >= iw)
                        continue;
                    const float *in = src + ((b * ih + iy) * iw + ix) * c;
#pragma omp simd
                    for (int64_t ch = 0; ch < c; ch++)
                        out[ch] = in[ch] > out[ch] ? in[ch] : out[ch];
                }
            }
        }
    }
    return QD_OK;
}

static qd_status global_average_pool(const qd_kernel_args *a)
{
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    int64_t n_img = x->dims[0], c = x->dims[1], hw = x->dims[2] * x->dims[3];
    const float *src = x->data;
    float *dst = y->data; /* [N, C, 1, 1]: the same bytes in either layout */
#pragma omp parallel for schedule(static) if (n_img > 1)
    for (int64_t b = 0; b < n_img; b++) {
        float *out = dst + b * c;
        for (int64_t ch = 0; ch < c; ch++)
            out[ch] = 0.0f;
        for (int64_t i = 0; i < hw; i++) {
            const float *in = src + (b * hw + i) * c;
#pragma omp simd
            for (int64_t ch = 0; ch < c; ch++)
                out[ch] += in[ch];
        }
        for (int64_t ch = 0; ch < c; ch++)
            out[ch] /= (float)hw;
    }
    return QD_OK;
}

qd_status qd_pool2d_nhwc(const qd_kernel_args *a)
{
    const qd_tensor *x = a->n_inputs ? a->inputs[0] : NULL;
    qd_tensor *y = a->n_outputs ? a->outputs[0] : NULL;
    if (!x || !y || x->rank != 4 || y->rank != 4 || x->layout != QD_LAYOUT_NHWC ||
        (x->dtype != QD_DT_FLOAT &&
         (a->node->op != QD_OP_MAX_POOL || (x->dtype != QD_DT_INT8 && x->dtype != QD_DT_UINT8))) ||
        a->n_fused)
        return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                             "node '%s' (%s): the NHWC pool kernel needs NHWC float32 or 8-bit input",
                             a->node->name, a->node->op_type);
    return a->node->op == QD_OP_MAX_POOL ? max_pool(a) : global_average_pool(a);
}
