/* GlobalAveragePool and ReduceMean over one contiguous run of axes,
 * float32, AVX-512. The input is seen as [outer, R, inner] with R the
 * reduced elements:
 *   inner = 1 (last axes, (2, 3) of NCHW, GlobalAveragePool): each output
 *     is the mean of a contiguous row, summed in double lanes;
 *   inner > 1 ((1, 2) of NHWC, the token axis of [N, L, C]): R rows of
 *     `inner` are summed column-wise in 64-column blocks of double
 *     accumulators.
 * Work items are outputs (rows) or (outer, 64-column block) pairs, one
 * contiguous run per thread. */
#include <immintrin.h>
#include <string.h>

#include "engine/kernels/ref/ref_nn.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

#define RM_COLS 64

typedef struct rm_ctx {
    const float *x;
    float *y;
    int64_t R, inner, cblocks;
} rm_ctx;

static QD_X86_AVX512 __m512d lo_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}
static QD_X86_AVX512 __m512d hi_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

static QD_X86_AVX512 void rm_rows(void *p, int64_t b, int64_t e)
{
    const rm_ctx *c = p;
    const int64_t R = c->R, nv = R & ~(int64_t)31;
    for (int64_t o = b; o < e; o++) {
        const float *x = c->x + o * R;
        __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
        __m512d s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd();
        int64_t i = 0;
        for (; i < nv; i += 32) {
            const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
            s0 = _mm512_add_pd(s0, lo_pd(v0));
            s1 = _mm512_add_pd(s1, hi_pd(v0));
            s2 = _mm512_add_pd(s2, lo_pd(v1));
            s3 = _mm512_add_pd(s3, hi_pd(v1));
        }
        for (; i < R; i += 16) {
            const __m512 v = _mm512_maskz_loadu_ps(qd_x86_tail_mask(R - i), x + i);
            s0 = _mm512_add_pd(s0, lo_pd(v));
            s1 = _mm512_add_pd(s1, hi_pd(v));
        }
        const __m512d s = _mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3));
        c->y[o] = (float)(_mm512_reduce_add_pd(s) / (double)R);
    }
}

static QD_X86_AVX512 void rm_cols(void *p, int64_t b, int64_t e)
{
    const rm_ctx *c = p;
    const int64_t R = c->R, inner = c->inner;
    const __m512d inv = _mm512_set1_pd(1.0 / (double)R);
    for (int64_t it = b; it < e; it++) {
        const int64_t o = it / c->cblocks, j0 = (it % c->cblocks) * RM_COLS;
        const int64_t nj = inner - j0 < RM_COLS ? inner - j0 : RM_COLS;
        const float *x = c->x + o * R * inner + j0;
        __mmask16 m[RM_COLS / 16];
        for (int k = 0; k < RM_COLS / 16; k++)
            m[k] = nj > 16 * k ? qd_x86_tail_mask(nj - 16 * k) : 0;
        __m512d acc[RM_COLS / 8];
        for (int k = 0; k < RM_COLS / 8; k++)
            acc[k] = _mm512_setzero_pd();
        for (int64_t rr = 0; rr < R; rr++) {
            const float *row = x + rr * inner;
            for (int k = 0; k < RM_COLS / 16; k++) {
                const __m512 v = _mm512_maskz_loadu_ps(m[k], row + 16 * k);
                acc[2 * k] = _mm512_add_pd(acc[2 * k], lo_pd(v));
                acc[2 * k + 1] = _mm512_add_pd(acc[2 * k + 1], hi_pd(v));
            }
        }
        float *y = c->y + o * inner + j0;
        for (int k = 0; k < RM_COLS / 16; k++) {
            const __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(acc[2 * k], inv));
            const __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(acc[2 * k + 1], inv));
            const __m512 v = _mm512_castpd_ps(_mm512_insertf64x4(
                _mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
            _mm512_mask_storeu_ps(y + 16 * k, m[k], v);
        }
    }
}

/* The reduced axes as flags; 0 when not readable. n_axes = 0: none given.
 * axes_t: the run-time axes tensor (kernels) or NULL (supports: from the
 * node's constant input). */
static int reduce_flags(const qd_node *n, const qd_tensor *axes_t, int rank, int *red)
{
    int64_t v[QD_MAX_RANK];
    int64_t count = 0;
    const qd_tensor *t = axes_t;
    if (!t && n->n_inputs > 1 && n->inputs[1]) {
        t = n->inputs[1]->konst;
        if (!t)
            return 0;
    }
    if (t) {
        if ((t->dtype != QD_DT_INT64 && t->dtype != QD_DT_INT32) || t->rank > 1)
            return 0;
        count = qd_numel(t->rank, t->dims);
        if (count > rank || (count > 0 && !t->data))
            return 0;
        for (int64_t i = 0; i < count; i++)
            v[i] = qd_tensor_get_i64(t, i);
    } else {
        const qd_attr *at = qd_node_attr(n, "axes");
        if (at) {
            if (at->type != QD_ATTR_INTS || at->n > (size_t)rank)
                return 0;
            count = (int64_t)at->n;
            for (int64_t i = 0; i < count; i++)
                v[i] = at->ints[i];
        }
    }
    int64_t noop;
    if (!qd_x86_attr_int(n, "noop_with_empty_axes", 0, &noop))
        return 0;
    for (int d = 0; d < rank; d++)
        red[d] = count == 0; /* none given: all (noop refused below) */
    if (count == 0 && noop)
        return 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t d = v[i] < 0 ? v[i] + rank : v[i];
        if (d < 0 || d >= rank)
            return 0;
        red[d] = 1;
    }
    return 1;
}

/* [outer, R, inner] for reducing the flagged axes of dims; 0 when they do
 * not form one run (dims of 1 may go either way). */
static int split3(int rank, const int64_t *dims, const int *red, int64_t *outer, int64_t *R,
                  int64_t *inner)
{
    int lo = -1, hi = -1;
    for (int d = 0; d < rank; d++)
        if (red[d] && dims[d] != 1) {
            if (lo < 0)
                lo = d;
            hi = d;
        }
    if (lo < 0) { /* only dims of 1 reduced: a copy */
        *outer = qd_numel(rank, dims);
        *R = *inner = 1;
        return 1;
    }
    for (int d = lo; d <= hi; d++)
        if (!red[d] && dims[d] != 1)
            return 0;
    *outer = qd_numel(lo, dims);
    *R = qd_numel(hi - lo + 1, dims + lo);
    *inner = qd_numel(rank - hi - 1, dims + hi + 1);
    return 1;
}

int qd_x86_reduce_mean_supports(const qd_node *n)
{
    if (n->op != QD_OP_GLOBAL_AVERAGE_POOL && n->op != QD_OP_REDUCE_MEAN)
        return 0;
    const qd_value *x = qd_x86_in(n, 0), *y = qd_x86_out(n, 0);
    if (!qd_x86_f32_known(x) || !qd_x86_f32_known(y))
        return 0;
    for (int i = 1; i < n->n_outputs; i++)
        if (n->outputs[i])
            return 0;
    int64_t outer, R, inner;
    if (n->op == QD_OP_GLOBAL_AVERAGE_POOL) {
        if (x->rank < 3)
            return 0;
        outer = x->dims[0] * x->dims[1];
        R = qd_numel(x->rank - 2, x->dims + 2);
        inner = 1;
    } else {
        int red[QD_MAX_RANK];
        if (x->rank < 1 || !reduce_flags(n, NULL, x->rank, red) ||
            !split3(x->rank, x->dims, red, &outer, &R, &inner))
            return 0;
    }
    return R > 0 && qd_value_numel(y) == outer * inner;
}

qd_status qd_x86_reduce_mean(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const int gap = a->node->op == QD_OP_GLOBAL_AVERAGE_POOL;
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    int64_t outer = 0, R = 0, inner = 0;
    int ok = qd_x86_cpu_avx512() && qd_x86_tensor_f32(X) && qd_x86_tensor_f32(Y);
    if (ok && gap) {
        ok = X->rank >= 3;
        if (ok) {
            outer = X->dims[0] * X->dims[1];
            R = qd_nn_prod(X->rank - 2, X->dims + 2);
            inner = 1;
        }
    } else if (ok) {
        int red[QD_MAX_RANK];
        const qd_tensor *axes = qd_nn_in(a, 1);
        /* an axes input that is not int64/int32 is the reference's error */
        ok = X->rank >= 1 && reduce_flags(a->node, axes, X->rank, red) &&
             split3(X->rank, X->dims, red, &outer, &R, &inner);
    }
    if (!ok || R <= 0 || qd_nn_numel(Y) != outer * inner)
        return gap ? qd_ref_global_average_pool(a) : qd_ref_reduce_mean(a);
    if (outer * inner == 0)
        return QD_OK;
    rm_ctx c = {X->data, Y->data, R, inner, (inner + RM_COLS - 1) / RM_COLS};
    const int64_t work = outer * R * inner;
    if (inner == 1)
        qd_x86_parallel(a, outer, work, rm_rows, &c);
    else
        qd_x86_parallel(a, outer * c.cblocks, work, rm_cols, &c);
    return QD_OK;
}
