/* GELU (ONNX Gelu, opset 20), float32, AVX-512.
 *
 * approximate = "none": y = x * Phi(x) = x/2 * erfc(-x / sqrt(2)). With
 * e = erfc(|x| / sqrt(2)) (x86_math_avx512.h: a polynomial in
 * 1 / (1 + p z) times exp(-x^2 / 2), the square split exactly), y is
 * x/2 * e for x < 0 and x/2 * (2 - e) otherwise: no cancellation, so the
 * negative tail keeps its relative accuracy (~3e-7).
 * approximate = "tanh": y = x/2 * (1 + tanh(u)) = x * sigmoid(2u) with
 * u = sqrt(2/pi) (x + 0.044715 x^3), through the two-sided sigmoid. */
#include <immintrin.h>
#include <string.h>

#include "engine/kernels/ref/ref_elementwise.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

static inline QD_X86_AVX512 __m512 gelu_erf_ps(__m512 x)
{
    /* |x| clamped at 15 (Phi(-15) underflows) so that x*x stays finite. */
    const __m512 a = _mm512_min_ps(_mm512_set1_ps(15.0f), _mm512_abs_ps(x));
    const __m512 z = _mm512_mul_ps(a, _mm512_set1_ps(0.70710678118654752f));
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512 a2 = _mm512_mul_ps(a, a), a2lo = _mm512_fmsub_ps(a, a, a2);
    const __m512 e = _mm512_mul_ps(qd_x86_erfcx_ps(z), qd_x86_exp_neg_sq_ps(_mm512_mul_ps(a2, half),
                                                                         _mm512_mul_ps(a2lo, half)));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 g = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.0f), e), e);
    return _mm512_mul_ps(_mm512_mul_ps(x, half), g);
}

static inline QD_X86_AVX512 __m512 gelu_tanh_ps(__m512 x)
{
    const __m512 x2 = _mm512_mul_ps(x, x);
    /* 2u = 2 sqrt(2/pi) x (1 + 0.044715 x^2) */
    const __m512 k = _mm512_set1_ps(1.59576912160573071f);
    const __m512 inner = _mm512_fmadd_ps(x2, _mm512_set1_ps(0.044715f), _mm512_set1_ps(1.0f));
    const __m512 u2 = _mm512_mul_ps(_mm512_mul_ps(x, k), inner);
    return _mm512_mul_ps(x, qd_x86_sigmoid_ps(u2));
}

typedef struct gelu_ctx {
    const float *x;
    float *y;
    int tanh_form;
} gelu_ctx;

static QD_X86_AVX512 void gelu_range(void *p, int64_t b, int64_t e)
{
    const gelu_ctx *c = p;
    const float *x = c->x;
    float *y = c->y;
    int64_t i = b;
    if (c->tanh_form) {
        for (; i + 16 <= e; i += 16)
            _mm512_storeu_ps(y + i, gelu_tanh_ps(_mm512_loadu_ps(x + i)));
        if (i < e) {
            __mmask16 m = qd_x86_tail_mask(e - i);
            _mm512_mask_storeu_ps(y + i, m, gelu_tanh_ps(_mm512_maskz_loadu_ps(m, x + i)));
        }
    } else {
        for (; i + 16 <= e; i += 16)
            _mm512_storeu_ps(y + i, gelu_erf_ps(_mm512_loadu_ps(x + i)));
        if (i < e) {
            __mmask16 m = qd_x86_tail_mask(e - i);
            _mm512_mask_storeu_ps(y + i, m, gelu_erf_ps(_mm512_maskz_loadu_ps(m, x + i)));
        }
    }
}

/* "none" -> 0, "tanh" -> 1, else -1. */
static int approx_mode(const char *s)
{
    if (!strcmp(s, "none"))
        return 0;
    if (!strcmp(s, "tanh"))
        return 1;
    return -1;
}

int qd_x86_gelu_supports(const qd_node *n)
{
    if (!qd_x86_is_gelu(n) || n->n_inputs != 1 || !qd_x86_unary_shapes_ok(n, 1))
        return 0;
    const qd_attr *at = qd_node_attr(n, "approximate");
    return !at || (at->type == QD_ATTR_STRING && approx_mode(at->s) >= 0);
}

qd_status qd_x86_gelu(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input X")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK)
        return st;
    const int64_t numel = qd_nn_numel(X);
    if (qd_nn_numel(Y) != numel)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "output has %lld elements, input %lld",
                          (long long)qd_nn_numel(Y), (long long)numel);
    const char *approx;
    if ((st = qd_node_attr_string(a->graph, a->node, "approximate", "none", &approx)) != QD_OK)
        return st;
    const int mode = approx_mode(approx);
    if (mode < 0)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL,
                          "approximate is '%s', expected 'none' or 'tanh'", approx);
    if (!qd_x86_cpu_avx512())
        return qd_ref_gelu(a);
    gelu_ctx c = {X->data, Y->data, mode};
    qd_x86_parallel(a, numel, numel, gelu_range, &c);
    return QD_OK;
}
