/* Unary elementwise float32 ops on AVX-512: Relu, Sigmoid, Tanh, Erf, Exp,
 * Sqrt, Reciprocal, Neg, Abs, HardSigmoid, HardSwish, Clip.
 *
 * Relu, Neg, Abs, Sqrt, Reciprocal, HardSigmoid, HardSwish and Clip give
 * the reference kernel's bits (same operations, same order, NaN passed
 * through the same way); Sigmoid, Tanh, Erf and Exp use the polynomial
 * approximations of x86_math_avx512.h (a few ulp). The tensor is cut into
 * one contiguous range per thread. */
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/kernels/ref/ref_elementwise.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

typedef struct un_ctx {
    qd_op op;
    const float *x;
    float *y;
    float alpha, beta; /* HardSigmoid; Clip's lo, hi */
} un_ctx;

/* y[i] = EXPR(v) over [b, e), v the loaded vector; a masked tail. */
#define UN_LOOP(EXPR)                                                                              \
    do {                                                                                           \
        for (; i + 16 <= e; i += 16) {                                                             \
            const __m512 v = _mm512_loadu_ps(x + i);                                               \
            _mm512_storeu_ps(y + i, (EXPR));                                                       \
        }                                                                                          \
        if (i < e) {                                                                               \
            const __mmask16 m_ = qd_x86_tail_mask(e - i);                                          \
            const __m512 v = _mm512_maskz_loadu_ps(m_, x + i);                                     \
            _mm512_mask_storeu_ps(y + i, m_, (EXPR));                                              \
        }                                                                                          \
    } while (0)

static QD_X86_AVX512 void un_range(void *p, int64_t b, int64_t e)
{
    const un_ctx *c = p;
    const float *x = c->x;
    float *y = c->y;
    int64_t i = b;
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    const __m512 va = _mm512_set1_ps(c->alpha), vb = _mm512_set1_ps(c->beta);
    /* max/min return the second operand when one is NaN: written
     * max(bound, v), NaN passes as in the reference's comparisons. */
    switch (c->op) {
    case QD_OP_RELU: UN_LOOP(_mm512_max_ps(zero, v)); break;
    case QD_OP_SIGMOID: UN_LOOP(qd_x86_sigmoid_ps(v)); break;
    case QD_OP_TANH: UN_LOOP(qd_x86_tanh_ps(v)); break;
    case QD_OP_ERF: UN_LOOP(qd_x86_erf_ps(v)); break;
    case QD_OP_EXP: UN_LOOP(qd_x86_exp_ps(v)); break;
    case QD_OP_SQRT: UN_LOOP(_mm512_sqrt_ps(v)); break;
    case QD_OP_RECIPROCAL: UN_LOOP(_mm512_div_ps(one, v)); break;
    case QD_OP_NEG: UN_LOOP(_mm512_xor_ps(v, _mm512_set1_ps(-0.0f))); break;
    case QD_OP_ABS: UN_LOOP(_mm512_abs_ps(v)); break;
    case QD_OP_HARD_SIGMOID:
        /* clamp(alpha x + beta, 0, 1), unfused like the reference */
        UN_LOOP(_mm512_min_ps(one, _mm512_max_ps(zero, _mm512_add_ps(_mm512_mul_ps(va, v), vb))));
        break;
    case QD_OP_HARD_SWISH: {
        const __m512 six = _mm512_set1_ps(6.0f), half = _mm512_set1_ps(0.5f);
        UN_LOOP(_mm512_mul_ps(
            v, _mm512_min_ps(one, _mm512_max_ps(zero, _mm512_add_ps(_mm512_div_ps(v, six), half)))));
        break;
    }
    case QD_OP_CLIP: UN_LOOP(_mm512_min_ps(vb, _mm512_max_ps(va, v))); break;
    default: break;
    }
}

static int is_unary_op(qd_op op)
{
    switch (op) {
    case QD_OP_RELU:
    case QD_OP_SIGMOID:
    case QD_OP_TANH:
    case QD_OP_ERF:
    case QD_OP_EXP:
    case QD_OP_SQRT:
    case QD_OP_RECIPROCAL:
    case QD_OP_NEG:
    case QD_OP_ABS:
    case QD_OP_HARD_SIGMOID:
    case QD_OP_HARD_SWISH:
    case QD_OP_CLIP: return 1;
    default: return 0;
    }
}

/* A Clip bound input: absent, or one float32 element. */
static int clip_input_ok(const qd_value *v)
{
    return !v || (qd_x86_f32_known(v) && qd_value_numel(v) == 1);
}

int qd_x86_unary_supports(const qd_node *n)
{
    if (!is_unary_op(n->op) || !qd_x86_unary_shapes_ok(n, 1))
        return 0;
    float f;
    switch (n->op) {
    case QD_OP_HARD_SIGMOID:
        return qd_x86_attr_float(n, "alpha", 0.2f, &f) && qd_x86_attr_float(n, "beta", 0.5f, &f);
    case QD_OP_CLIP:
        return n->n_inputs <= 3 && clip_input_ok(qd_x86_in(n, 1)) &&
               clip_input_ok(qd_x86_in(n, 2)) && qd_x86_attr_float(n, "min", 0, &f) &&
               qd_x86_attr_float(n, "max", 0, &f);
    default: return n->n_inputs == 1;
    }
}

/* Clip's bound: input idx (opset >= 11) or attribute `name`; def when
 * neither. Returns 0, or -1 when the input is not one float32. */
static int clip_bound(const qd_kernel_args *a, int idx, const char *name, float def, float *out)
{
    *out = def;
    const qd_tensor *t = qd_nn_in(a, idx);
    if (t) {
        if (!qd_x86_tensor_f32(t) || qd_nn_numel(t) != 1)
            return -1;
        *out = ((const float *)t->data)[0];
        return 0;
    }
    const qd_attr *at = qd_node_attr(a->node, name);
    if (at) {
        if (at->type != QD_ATTR_FLOAT)
            return -1;
        *out = at->f;
    }
    return 0;
}

/* The reference kernel of op. */
static qd_status ref_unary(const qd_kernel_args *a)
{
    return a->node->op == QD_OP_CLIP ? qd_ref_clip(a) : qd_ref_unary(a);
}

qd_status qd_x86_unary(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    const qd_op op = a->node->op;
    if (!qd_x86_cpu_avx512() || !is_unary_op(op) || !qd_x86_tensor_f32(X) ||
        !qd_x86_tensor_f32(Y) || qd_nn_numel(X) != qd_nn_numel(Y))
        return ref_unary(a);
    un_ctx c = {op, X->data, Y->data, 0, 0};
    qd_status st = QD_OK;
    if (op == QD_OP_HARD_SIGMOID) {
        if ((st = qd_node_attr_float(a->graph, a->node, "alpha", 0.2f, &c.alpha)) != QD_OK ||
            (st = qd_node_attr_float(a->graph, a->node, "beta", 0.5f, &c.beta)) != QD_OK)
            return st;
    } else if (op == QD_OP_CLIP) {
        if (clip_bound(a, 1, "min", -INFINITY, &c.alpha) ||
            clip_bound(a, 2, "max", INFINITY, &c.beta))
            return ref_unary(a);
    }
    const int64_t numel = qd_nn_numel(X);
    qd_x86_parallel(a, numel, numel, un_range, &c);
    return QD_OK;
}
