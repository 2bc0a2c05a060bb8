/* MaxPool 2-D on NCHW float32, AVX-512, vectorised over the output width.
 *
 * Per output row: the kernel rows inside the input; output columns whose
 * whole window lies inside the input run 16 at a time (stride 1: plain
 * loads; stride 2: two loads and an even-lane permute; other strides:
 * gathers), the edge columns in scalar code. Taps are visited in the
 * reference kernel's order and combined as `v > best ? v : best` starting
 * from the first tap inside the input (MAXPS computes exactly that), so
 * the output is the reference's, NaN included; a window with no tap inside
 * the input gives -FLT_MAX as there. Geometry (pads, auto_pad, strides,
 * dilations; ceil_mode through the output shape) is the reference's
 * qd_nn_geom_init. Work items are (plane, output row) pairs. */
#include <float.h>
#include <immintrin.h>
#include <string.h>

#include "engine/kernels/ref/ref_nn.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

typedef struct mp_ctx {
    const float *x;
    float *y;
    int64_t H, W, OH, OW;
    int64_t kh, kw, sh, sw, dh, dw, pt, pl;
    int64_t ow_lo, ow_hi; /* output columns whose window is inside [0, W) */
} mp_ctx;

/* Floor division for a possibly negative numerator, d > 0. */
static int64_t floor_div(int64_t a, int64_t d)
{
    return a >= 0 ? a / d : -((-a + d - 1) / d);
}

/* 16 (masked: m) values x[base + lane * sw]. */
static inline __attribute__((always_inline)) QD_X86_AVX512 __m512
load_strided(const float *base, int64_t sw, __mmask16 m, int n)
{
    if (sw == 1)
        return _mm512_maskz_loadu_ps(m, base);
    if (sw == 2) {
        const int span = 2 * (n - 1) + 1;
        const __mmask16 mlo = qd_x86_tail_mask(span), mhi = qd_x86_tail_mask(span > 16 ? span - 16 : 0);
        const __m512 lo = _mm512_maskz_loadu_ps(mlo, base);
        const __m512 hi = _mm512_maskz_loadu_ps(mhi, base + 16);
        const __m512i even =
            _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        return _mm512_permutex2var_ps(lo, even, hi);
    }
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)sw));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base, 4);
}

/* The max over the window of n (<= 16) interior output columns from ow0,
 * kernel rows k0..k1 (all inside the input). */
static inline __attribute__((always_inline)) QD_X86_AVX512 __m512
pool16(const mp_ctx *c, const float *xp, int64_t ih0, int64_t k0, int64_t k1, int64_t ow0,
       __mmask16 m, int n)
{
    const int64_t sw = c->sw, dw = c->dw, kw = c->kw;
    const float *base = xp + (ih0 + k0 * c->dh) * c->W + ow0 * sw - c->pl;
    __m512 best = load_strided(base, sw, m, n);
    for (int64_t q = 1; q < kw; q++)
        best = _mm512_max_ps(load_strided(base + q * dw, sw, m, n), best);
    for (int64_t k = k0 + 1; k < k1; k++) {
        const float *row = xp + (ih0 + k * c->dh) * c->W + ow0 * sw - c->pl;
        for (int64_t q = 0; q < kw; q++)
            best = _mm512_max_ps(load_strided(row + q * dw, sw, m, n), best);
    }
    return best;
}

static QD_X86_AVX512 void mp_rows(void *p, int64_t b, int64_t e)
{
    const mp_ctx *c = p;
    const int64_t H = c->H, W = c->W, OH = c->OH, OW = c->OW;
    for (int64_t it = b; it < e; it++) {
        const int64_t pl_idx = it / OH, oh = it % OH;
        const float *xp = c->x + pl_idx * H * W;
        float *y = c->y + pl_idx * OH * OW + oh * OW;
        /* kernel rows inside the input */
        const int64_t ih0 = oh * c->sh - c->pt;
        int64_t k0 = 0, k1 = 0;
        {
            int64_t lo = -1, hi = -1;
            for (int64_t k = 0; k < c->kh; k++) {
                const int64_t ih = ih0 + k * c->dh;
                if (ih >= 0 && ih < H) {
                    if (lo < 0)
                        lo = k;
                    hi = k + 1;
                }
            }
            if (lo >= 0) {
                k0 = lo;
                k1 = hi;
            }
        }
        if (k0 == k1) {
            for (int64_t ow = 0; ow < OW; ow++)
                y[ow] = -FLT_MAX;
            continue;
        }
        /* edge columns, scalar */
        for (int64_t ow = 0; ow < OW; ow++) {
            if (ow == c->ow_lo && c->ow_hi > c->ow_lo)
                ow = c->ow_hi;
            if (ow >= OW)
                break;
            const int64_t iw0 = ow * c->sw - c->pl;
            float best = -FLT_MAX;
            int any = 0;
            for (int64_t k = k0; k < k1; k++) {
                const int64_t ih = ih0 + k * c->dh;
                if (ih < 0 || ih >= H)
                    continue;
                for (int64_t q = 0; q < c->kw; q++) {
                    const int64_t iw = iw0 + q * c->dw;
                    if (iw < 0 || iw >= W)
                        continue;
                    const float v = xp[ih * W + iw];
                    if (!any || v > best) {
                        best = v;
                        any = 1;
                    }
                }
            }
            y[ow] = best;
        }
        /* interior columns: full vectors (constant masks), then a tail */
        int64_t ow0 = c->ow_lo;
        for (; ow0 + 16 <= c->ow_hi; ow0 += 16)
            _mm512_storeu_ps(y + ow0, pool16(c, xp, ih0, k0, k1, ow0, 0xFFFF, 16));
        if (ow0 < c->ow_hi) {
            const int n = (int)(c->ow_hi - ow0);
            _mm512_mask_storeu_ps(y + ow0, qd_x86_tail_mask(n),
                                  pool16(c, xp, ih0, k0, k1, ow0, qd_x86_tail_mask(n), n));
        }
    }
}

int qd_x86_max_pool_supports(const qd_node *n)
{
    if (n->op != QD_OP_MAX_POOL || n->n_inputs != 1 || !qd_x86_f32_known(qd_x86_in(n, 0)) ||
        !qd_x86_f32_known(qd_x86_out(n, 0)))
        return 0;
    for (int i = 1; i < n->n_outputs; i++)
        if (n->outputs[i]) /* Indices */
            return 0;
    const qd_value *x = n->inputs[0], *y = n->outputs[0];
    if (x->rank != 4 || y->rank != 4 || y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1])
        return 0;
    const qd_attr *k = qd_node_attr(n, "kernel_shape");
    if (!k || k->type != QD_ATTR_INTS || k->n != 2 || k->ints[0] < 1 || k->ints[1] < 1)
        return 0;
    /* the window's width must fit a gather's int32 offsets */
    return x->dims[3] < (1 << 24);
}

qd_status qd_x86_max_pool(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    if (!qd_x86_cpu_avx512() || !qd_x86_tensor_f32(X) || !qd_x86_tensor_f32(Y) || X->rank != 4 ||
        Y->rank != 4 || qd_nn_out(a, 1) || Y->dims[0] != X->dims[0] || Y->dims[1] != X->dims[1] ||
        X->dims[3] >= (1 << 24))
        return qd_ref_max_pool(a);
    int64_t kernel[2];
    qd_nn_geom g;
    qd_status st;
    if ((st = qd_nn_kernel_shape(a, NULL, 2, kernel)) != QD_OK ||
        (st = qd_nn_geom_init(a, X, Y, kernel, 0, &g)) != QD_OK)
        return st;
    if (g.stride[1] >= (1 << 20) || kernel[0] < 1 || kernel[1] < 1)
        return qd_ref_max_pool(a);
    mp_ctx c = {X->data, Y->data, g.in[0], g.in[1], g.out[0], g.out[1],
                g.k[0],  g.k[1],  g.stride[0], g.stride[1], g.dil[0], g.dil[1],
                g.pad[0], g.pad[1], 0, 0};
    /* interior: ow*sw - pl >= 0 and ow*sw - pl + (kw-1)*dw <= W-1 */
    c.ow_lo = (c.pl + c.sw - 1) / c.sw;
    c.ow_hi = floor_div(c.W - 1 - (c.kw - 1) * c.dw + c.pl, c.sw) + 1;
    if (c.ow_hi > c.OW)
        c.ow_hi = c.OW;
    if (c.ow_lo > c.OW)
        c.ow_lo = c.OW;
    if (c.ow_hi < c.ow_lo)
        c.ow_hi = c.ow_lo;
    const int64_t planes = X->dims[0] * X->dims[1];
    const int64_t items = planes * c.OH;
    if (items == 0 || c.OW == 0)
        return QD_OK;
    qd_x86_parallel(a, items, items * c.OW * c.kh * c.kw, mp_rows, &c);
    return QD_OK;
}
