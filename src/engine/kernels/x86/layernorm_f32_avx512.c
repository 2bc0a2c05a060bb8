/* LayerNormalization over the last axis, float32, AVX-512.
 *
 * Per row, two passes: the sum and the sum of squares in double lanes
 * give mean and variance (exact squares, double sums: no cancellation
 * problem for activations); then y = (x - mean) * inv_std * scale + bias
 * with the mean split into a float and a float remainder so that x - mean
 * keeps its precision when |mean| >> std. The row stays in L1/L2 between
 * the passes, so the memory traffic is one read and one write. Rows are
 * split over the threads. With a fused QuantizeLinear (a->quant: the next
 * INT8 layer's input) the output is written as int8 directly. */
#include <immintrin.h>
#include <math.h>

#include "engine/kernels/ref/ref_nn.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

typedef struct ln_ctx {
    const float *x, *scale, *bias;
    float *y;
    int64_t n; /* row length */
    double eps;
    int8_t *yq;   /* int8 output (a fused QuantizeLinear), else NULL */
    float qscale; /* its scale */
} ln_ctx;

static QD_X86_AVX512 __m512d lo_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}
static QD_X86_AVX512 __m512d hi_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

QD_X86_AVX512 void qd_x86_layernorm_row(const float *x, int64_t n, const float *sc,
                                         const float *bi, double eps, float *y, int8_t *yq,
                                         float qscale)
{
    const int64_t nv = n & ~(int64_t)15;
    const __mmask16 tm = qd_x86_tail_mask(n - nv);
    const __m512 qs = _mm512_set1_ps(qscale);
    /* sum and sum of squares in double lanes: a float's square is
     * exact in double, so var = E[x^2] - mean^2 loses only
     * ~1e-16 * n * mean^2 / var (relative), nothing for activations */
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i < nv; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512d a = lo_pd(v), b = hi_pd(v);
        s0 = _mm512_add_pd(s0, a);
        s1 = _mm512_add_pd(s1, b);
        q0 = _mm512_fmadd_pd(a, a, q0);
        q1 = _mm512_fmadd_pd(b, b, q1);
    }
    if (i < n) {
        const __m512 v = _mm512_maskz_loadu_ps(tm, x + i);
        const __m512d a = lo_pd(v), b = hi_pd(v);
        s0 = _mm512_add_pd(s0, a);
        s1 = _mm512_add_pd(s1, b);
        q0 = _mm512_fmadd_pd(a, a, q0);
        q1 = _mm512_fmadd_pd(b, b, q1);
    }
    const double mean = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / (double)n;
    double var = _mm512_reduce_add_pd(_mm512_add_pd(q0, q1)) / (double)n - mean * mean;
    if (var < 0)
        var = 0;
    /* x - mean with the mean split into float + float remainder:
     * x - mhi is exact near the mean, so the centered values keep
     * their precision even when |mean| >> std */
    const float mhi = (float)mean, mlo = (float)(mean - (double)mhi);
    const __m512 vmhi = _mm512_set1_ps(mhi), vmlo = _mm512_set1_ps(mlo);
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sqrt(var + eps)));
    for (i = 0; i < nv; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmhi), vmlo);
        __m512 t = _mm512_mul_ps(d, inv);
        __m512 o = bi ? _mm512_fmadd_ps(t, _mm512_loadu_ps(sc + i), _mm512_loadu_ps(bi + i))
                      : _mm512_mul_ps(t, _mm512_loadu_ps(sc + i));
        if (yq)
            qd_x86_store_q8(yq + i, o, qs, (__mmask16)0xFFFF);
        else
            _mm512_storeu_ps(y + i, o);
    }
    if (i < n) {
        __m512 d = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tm, x + i), vmhi), vmlo);
        __m512 t = _mm512_mul_ps(d, inv);
        __m512 s = _mm512_maskz_loadu_ps(tm, sc + i);
        __m512 o = bi ? _mm512_fmadd_ps(t, s, _mm512_maskz_loadu_ps(tm, bi + i))
                      : _mm512_mul_ps(t, s);
        if (yq)
            qd_x86_store_q8(yq + i, o, qs, tm);
        else
            _mm512_mask_storeu_ps(y + i, tm, o);
    }
}

static QD_X86_AVX512 void ln_rows(void *p, int64_t r0, int64_t r1)
{
    const ln_ctx *c = p;
    const int64_t n = c->n;
    for (int64_t r = r0; r < r1; r++)
        qd_x86_layernorm_row(c->x + r * n, n, c->scale, c->bias, c->eps,
                             c->yq ? NULL : c->y + r * n, c->yq ? c->yq + r * n : NULL,
                             c->qscale);
}

/* A parameter of exactly the normalized shape [n] (the reference kernel
 * takes no more dims than the normalized ones; one element broadcast is
 * left to it). */
static int vec_shape_ok(int rank, const int64_t *dims, int64_t n)
{
    return rank == 1 && dims[0] == n;
}

int qd_x86_layernorm_supports(const qd_node *n)
{
    if (n->op != QD_OP_LAYER_NORMALIZATION || !qd_x86_unary_shapes_ok(n, 1))
        return 0;
    const qd_value *x = n->inputs[0], *s = qd_x86_in(n, 1), *b = qd_x86_in(n, 2);
    if (x->rank < 1)
        return 0;
    int64_t axis, stash;
    float eps;
    if (!qd_x86_attr_int(n, "axis", -1, &axis) || !qd_x86_attr_float(n, "epsilon", 1e-5f, &eps) ||
        !qd_x86_attr_int(n, "stash_type", 1, &stash))
        return 0;
    if (axis != -1 && axis != x->rank - 1)
        return 0;
    const int64_t last = x->dims[x->rank - 1];
    if (!qd_x86_f32_known(s) || !vec_shape_ok(s->rank, s->dims, last))
        return 0;
    if (b && (!qd_x86_f32_known(b) || !vec_shape_ok(b->rank, b->dims, last)))
        return 0;
    return 1;
}

qd_status qd_x86_layernorm(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const qd_tensor *X = qd_nn_in(a, 0), *S = qd_nn_in(a, 1), *B = qd_nn_in(a, 2);
    qd_tensor *Y = qd_nn_out(a, 0);
    int q8 = a->quant && a->quant->dst_scale > 0.0f;
    if (q8 && (!qd_x86_cpu_avx512() || Y->dtype != QD_DT_INT8 || !qd_x86_tensor_f32(X) ||
               !qd_x86_tensor_f32(S) || (B && !qd_x86_tensor_f32(B))))
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "int8 LayerNorm output needs AVX-512");
    if (!qd_x86_cpu_avx512() || !qd_x86_tensor_f32(X) || (!q8 && !qd_x86_tensor_f32(Y)) ||
        !qd_x86_tensor_f32(S) || (B && !qd_x86_tensor_f32(B)) || X->rank < 1 ||
        qd_nn_out(a, 1) || qd_nn_out(a, 2))
        return qd_ref_layer_normalization(a);
    int64_t axis;
    float eps;
    qd_status st;
    if ((st = qd_node_attr_int(a->graph, a->node, "axis", -1, &axis)) != QD_OK ||
        (st = qd_node_attr_float(a->graph, a->node, "epsilon", 1e-5f, &eps)) != QD_OK)
        return st;
    const int64_t n = X->dims[X->rank - 1], numel = qd_nn_numel(X);
    if ((axis != -1 && axis != X->rank - 1) || qd_nn_numel(Y) != numel ||
        !vec_shape_ok(S->rank, S->dims, n) || (B && !vec_shape_ok(B->rank, B->dims, n)))
        return q8 ? qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "int8 LayerNorm: shapes not handled")
                  : qd_ref_layer_normalization(a);
    if (numel == 0)
        return QD_OK;
    ln_ctx c = {X->data, S->data, B ? B->data : NULL, q8 ? NULL : Y->data, n, eps,
                q8 ? Y->data : NULL, q8 ? a->quant->dst_scale : 1.0f};
    qd_x86_parallel(a, numel / n, numel, ln_rows, &c);
    return QD_OK;
}
