/* Softmax over contiguous rows, float32, AVX-512: the row's max, then
 * e = exp(x - max) stored and summed, then scaled by 1 / sum. Opset >= 13
 * normalizes along one axis (claimed when it is the last, or all axes
 * after it are 1); opsets before 13 see the input as 2-D at `axis`, whose
 * rows are always contiguous. Rows are split over the threads. */
#include <immintrin.h>
#include <math.h>

#include "engine/kernels/ref/ref_nn.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

typedef struct sm_ctx {
    const float *x;
    float *y;
    int64_t n;
    int8_t *yq;   /* int8 output (a fused QuantizeLinear), else NULL */
    float qscale; /* its scale */
} sm_ctx;

static QD_X86_AVX512 void sm_rows(void *p, int64_t r0, int64_t r1)
{
    const sm_ctx *c = p;
    const int64_t n = c->n;
    const int64_t nv = n & ~(int64_t)15;
    const __mmask16 tm = qd_x86_tail_mask(n - nv);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t r = r0; r < r1; r++) {
        const float *x = c->x + r * n;
        float row[QD_X86_SOFTMAX_Q8_MAX]; /* exps of an int8-output row */
        float *y = c->yq ? row : c->y + r * n;
        __m512 m0 = ninf, m1 = ninf;
        int64_t i = 0;
        for (; i + 32 <= nv; i += 32) {
            m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
            m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
        }
        for (; i < nv; i += 16)
            m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
        if (i < n)
            m1 = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, tm, x + i), m1);
        const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)));
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        for (i = 0; i + 32 <= nv; i += 32) {
            __m512 e0 = qd_x86_exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
            __m512 e1 = qd_x86_exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mx));
            _mm512_storeu_ps(y + i, e0);
            _mm512_storeu_ps(y + i + 16, e1);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
        }
        for (; i < nv; i += 16) {
            __m512 e = qd_x86_exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
            _mm512_storeu_ps(y + i, e);
            s0 = _mm512_add_ps(s0, e);
        }
        if (i < n) {
            __m512 e = qd_x86_exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tm, x + i), mx));
            e = _mm512_maskz_mov_ps(tm, e);
            _mm512_mask_storeu_ps(y + i, tm, e);
            s1 = _mm512_add_ps(s1, e);
        }
        const float sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
        const __m512 inv = _mm512_set1_ps((float)(1.0 / (double)sum));
        if (c->yq) {
            int8_t *yq = c->yq + r * n;
            const __m512 qs = _mm512_set1_ps(c->qscale);
            for (i = 0; i < nv; i += 16)
                qd_x86_store_q8(yq + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv), qs,
                                (__mmask16)0xFFFF);
            if (i < n)
                qd_x86_store_q8(yq + i, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, y + i), inv), qs,
                                tm);
            continue;
        }
        for (i = 0; i < nv; i += 16)
            _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
        if (i < n)
            _mm512_mask_storeu_ps(y + i, tm, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, y + i), inv));
    }
}

int qd_x86_softmax_supports(const qd_node *n)
{
    if (n->op != QD_OP_SOFTMAX || !qd_x86_unary_shapes_ok(n, 1))
        return 0;
    const qd_value *x = n->inputs[0];
    if (x->rank < 1)
        return 0;
    /* Without the graph's opset: an explicit axis must leave only dims of
     * 1 after it (then both semantics agree); an absent one is -1 (>= 13)
     * or 1 with 2-D coercion (< 13), contiguous rows either way. */
    const qd_attr *at = qd_node_attr(n, "axis");
    if (!at)
        return 1;
    if (at->type != QD_ATTR_INT || at->i < -x->rank || at->i >= x->rank)
        return 0;
    int axis = (int)(at->i < 0 ? at->i + x->rank : at->i);
    for (int d = axis + 1; d < x->rank; d++)
        if (x->dims[d] != 1)
            return 0;
    return 1;
}

qd_status qd_x86_softmax(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    int q8 = a->quant && a->quant->dst_scale > 0.0f;
    if (q8 && (!qd_x86_cpu_avx512() || Y->dtype != QD_DT_INT8 || !qd_x86_tensor_f32(X) ||
               qd_nn_numel(X) != qd_nn_numel(Y) || X->rank < 1))
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "int8 Softmax output needs AVX-512");
    if (!q8 && (!qd_x86_cpu_avx512() || !qd_x86_tensor_f32(X) || !qd_x86_tensor_f32(Y) ||
                X->rank < 1 || qd_nn_numel(X) != qd_nn_numel(Y)))
        return qd_ref_softmax(a);
    const int old = a->graph->opset < 13;
    int64_t axis_attr;
    qd_status st = qd_node_attr_int(a->graph, a->node, "axis", old ? 1 : -1, &axis_attr);
    if (st != QD_OK)
        return st;
    if (axis_attr < -X->rank || axis_attr >= X->rank)
        return qd_ref_softmax(a); /* which reports it */
    const int axis = (int)(axis_attr < 0 ? axis_attr + X->rank : axis_attr);
    if (!old)
        for (int d = axis + 1; d < X->rank; d++)
            if (X->dims[d] != 1)
                return qd_ref_softmax(a);
    const int64_t numel = qd_nn_numel(X);
    const int64_t n = qd_nn_prod(X->rank - axis, X->dims + axis);
    if (q8 && n > QD_X86_SOFTMAX_Q8_MAX)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "int8 Softmax: rows over %d",
                          QD_X86_SOFTMAX_Q8_MAX);
    if (numel == 0 || n == 0)
        return QD_OK;
    sm_ctx c = {X->data, q8 ? NULL : Y->data, n, q8 ? Y->data : NULL,
                q8 ? a->quant->dst_scale : 1.0f};
    qd_x86_parallel(a, numel / n, numel, sm_rows, &c);
    return QD_OK;
}
