/* Per-tensor QuantizeLinear (float32 -> int8/uint8) and DequantizeLinear
 * (int8/uint8 -> float32) on AVX-512: the "reformat" steps around INT8
 * kernels, memory-bound, so they must not be scalar code.
 *
 * Same arithmetic as the reference kernel (ref/quant.c): q = saturate(
 * round_half_even(x / scale) + zero_point), x = (q - zero_point) * scale,
 * with a true division (not a reciprocal multiply) so ties round alike.
 * Per-axis scales stay on the reference kernel. */
#include <immintrin.h>
#include <string.h>

#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

typedef struct q_ctx {
    const void *x;
    void *y;
    float scale;
    int32_t zp;
    int to_u8;   /* Quantize: uint8 output */
    int from_u8; /* Dequantize: uint8 input */
} q_ctx;

static QD_X86_AVX512 void quantize_range(void *p, int64_t b, int64_t e)
{
    const q_ctx *c = p;
    const float *x = c->x;
    const __m512 s = _mm512_set1_ps(c->scale);
    const __m512i zp = _mm512_set1_epi32(c->zp);
    const __m512i lo = _mm512_set1_epi32(c->to_u8 ? 0 : -128);
    const __m512i hi = _mm512_set1_epi32(c->to_u8 ? 255 : 127);
    for (int64_t i = b; i < e; i += 16) {
        __mmask16 m = e - i >= 16 ? (__mmask16)0xFFFF : qd_x86_tail_mask(e - i);
        __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), s);
        __m512i q = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, zp), lo), hi);
        __m128i packed = _mm512_cvtepi32_epi8(q); /* in range: truncation is exact */
        _mm_mask_storeu_epi8((char *)c->y + i, m, packed);
    }
}

static QD_X86_AVX512 void dequantize_range(void *p, int64_t b, int64_t e)
{
    const q_ctx *c = p;
    float *y = c->y;
    const __m512 s = _mm512_set1_ps(c->scale);
    const __m512i zp = _mm512_set1_epi32(c->zp);
    for (int64_t i = b; i < e; i += 16) {
        __mmask16 m = e - i >= 16 ? (__mmask16)0xFFFF : qd_x86_tail_mask(e - i);
        __m128i raw = _mm_maskz_loadu_epi8(m, (const char *)c->x + i);
        __m512i q = c->from_u8 ? _mm512_cvtepu8_epi32(raw) : _mm512_cvtepi8_epi32(raw);
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, zp)), s);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

/* The zero point of a Q/DQ node as int32 (absent: 0). */
static int32_t zero_point(const qd_tensor *z)
{
    if (!z)
        return 0;
    return z->dtype == QD_DT_UINT8 ? ((const uint8_t *)z->data)[0] : ((const int8_t *)z->data)[0];
}

/* QuantizeLinear or DequantizeLinear, per tensor (qd_x86_quantize_supports). */
qd_status qd_x86_quantize(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const qd_tensor *x = a->inputs[0], *s = a->inputs[1];
    const qd_tensor *z = a->n_inputs > 2 ? a->inputs[2] : NULL;
    qd_tensor *y = a->outputs[0];
    q_ctx c = {x->data, y->data, ((const float *)s->data)[0], zero_point(z), 0, 0};
    int64_t n = qd_numel(x->rank, x->dims);
    if (a->node->op == QD_OP_QUANTIZE_LINEAR) {
        c.to_u8 = y->dtype == QD_DT_UINT8;
        qd_x86_parallel(a, n, n, quantize_range, &c);
    } else {
        c.from_u8 = x->dtype == QD_DT_UINT8;
        qd_x86_parallel(a, n, n, dequantize_range, &c);
    }
    return QD_OK;
}

/* A one-element float32 constant. */
static int const_scalar_f32(const qd_value *v)
{
    return v && v->konst && v->konst->dtype == QD_DT_FLOAT && qd_numel(v->konst->rank,
                                                                       v->konst->dims) == 1;
}

int qd_x86_quantize_supports(const qd_node *n)
{
    const qd_value *x = qd_x86_in(n, 0), *y = qd_x86_out(n, 0), *z = qd_x86_in(n, 2);
    if (!x || !y || !qd_value_shape_known(x) || !const_scalar_f32(qd_x86_in(n, 1)))
        return 0;
    if (z && (!z->konst || qd_numel(z->konst->rank, z->konst->dims) != 1 ||
              (z->konst->dtype != QD_DT_INT8 && z->konst->dtype != QD_DT_UINT8)))
        return 0;
    if (qd_node_attr(n, "block_size"))
        return 0;
    qd_dtype q = n->op == QD_OP_QUANTIZE_LINEAR ? y->dtype : x->dtype;
    qd_dtype f = n->op == QD_OP_QUANTIZE_LINEAR ? x->dtype : y->dtype;
    return f == QD_DT_FLOAT && (q == QD_DT_INT8 || q == QD_DT_UINT8);
}
