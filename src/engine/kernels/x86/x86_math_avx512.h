/* Private to the x86 kernels: float32 vector math on AVX-512 (16 lanes).
 * Every function is QD_X86_AVX512; include only from *_avx512.c files and
 * call only from QD_X86_AVX512 functions.
 *
 * Accuracy (measured against double precision on a dense grid by
 * tests/unit/test_x86_kernels.c, test_math_accuracy):
 *   exp      1.4 ulp; overflow to +inf above ~88.72, underflow through
 *            the denormals to 0 below ~-103.9; NaN in, NaN out.
 *   erf      absolute error 1.8e-7 (vs erff too), relative 3.5e-7.
 *   erfc     (x >= 0, through GELU) relative error ~3e-7 down to 1e-30.
 *   tanh     2.4 ulp.
 *   sigmoid  2.9 ulp, on both tails. */
#ifndef QD_X86_MATH_AVX512_H
#define QD_X86_MATH_AVX512_H

#include <immintrin.h>

#include "engine/kernels/x86/x86_common.h"

/* 1 / d for d in [1, 1e30]: rcp14 and one Newton step (~1 ulp; a
 * division costs several times more on current cores). */
static inline QD_X86_AVX512 __m512 qd_x86_rcp_ps(__m512 d)
{
    const __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

/* exp(x): n = round(x / ln2), r = x - n ln2 (two-part ln2), e^r by the
 * Cephes expf polynomial, then scalef(p, n) = p * 2^n with one rounding, so
 * overflow and the denormal range come out right without a branch. */
static inline QD_X86_AVX512 __m512 qd_x86_exp_ps(__m512 x)
{
    /* max/min return their second operand when one is NaN: NaN passes. */
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* exp(-(hi + lo)) for a square split exactly as hi + lo (hi = x*x rounded,
 * lo = fma(x, x, -hi)): exp(-hi) * (1 - lo), so that the rounding of x*x
 * (up to 1e-6 relative in the result at |x| = 4) does not show. */
static inline QD_X86_AVX512 __m512 qd_x86_exp_neg_sq_ps(__m512 hi, __m512 lo)
{
    const __m512 e = qd_x86_exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), hi));
    return _mm512_fnmadd_ps(e, lo, e);
}

/* erfc(z) * exp(z*z) for z >= 0, as a degree-9 polynomial in
 * t = 1 / (1 + 0.36 z), fitted over z in [0, 10] (relative error 4e-8
 * before float rounding). z is clamped at 10.5: beyond, erfc underflows. */
static inline QD_X86_AVX512 __m512 qd_x86_erfcx_ps(__m512 z)
{
    z = _mm512_min_ps(_mm512_set1_ps(10.5f), z); /* NaN passes */
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 t = qd_x86_rcp_ps(_mm512_fmadd_ps(z, _mm512_set1_ps(0.36f), one));
    __m512 p = _mm512_set1_ps(7.350107386e-02f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-3.972143227e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(7.539063324e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-6.163914799e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(5.679709761e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-2.092685059e-02f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.410838412e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.940863839e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.040247783e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-4.073066928e-05f));
    return p;
}

/* erf(x): x * P(x^2) (degree 4, fitted on |x| < 0.5) below 0.5, else
 * sign(x) * (1 - erfc(|x|)). */
static inline QD_X86_AVX512 __m512 qd_x86_erf_ps(__m512 x)
{
    const __m512 ax = _mm512_abs_ps(x);
    const __m512 x2 = _mm512_mul_ps(x, x);
    /* small |x| */
    __m512 s = _mm512_set1_ps(4.719082567e-03f);
    s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-2.675773274e-02f));
    s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.128283143e-01f));
    s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-3.761260901e-01f));
    s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.128379166e+00f));
    s = _mm512_mul_ps(s, x);
    /* large |x|; clamped at 10 (erf is 1 from 3.92) so that inf * inf -
     * inf does not make a NaN */
    const __m512 a = _mm512_min_ps(_mm512_set1_ps(10.0f), ax);
    const __m512 a2 = _mm512_mul_ps(a, a), a2lo = _mm512_fmsub_ps(a, a, a2);
    const __m512 ec = _mm512_mul_ps(qd_x86_erfcx_ps(a), qd_x86_exp_neg_sq_ps(a2, a2lo));
    __m512 l = _mm512_sub_ps(_mm512_set1_ps(1.0f), ec);
    /* copy x's sign onto l */
    const __m512 sign = _mm512_set1_ps(-0.0f);
    l = _mm512_or_ps(l, _mm512_and_ps(x, sign));
    const __mmask16 small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.5f), _CMP_LT_OQ);
    /* NaN is not small: l is NaN there (t and the polynomial are NaN). */
    return _mm512_mask_blend_ps(small, l, s);
}

/* tanh(x): x + x^3 P(x^2) (Cephes tanhf) below 0.625, else
 * sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|). */
static inline QD_X86_AVX512 __m512 qd_x86_tanh_ps(__m512 x)
{
    const __m512 ax = _mm512_abs_ps(x);
    const __m512 x2 = _mm512_mul_ps(x, x);
    __m512 s = _mm512_set1_ps(-5.70498872745e-3f);
    s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(2.06390887954e-2f));
    s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-5.37397155531e-2f));
    s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.33314422036e-1f));
    s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-3.33332819422e-1f));
    s = _mm512_fmadd_ps(_mm512_mul_ps(s, x2), x, x);
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = qd_x86_exp_ps(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0f)));
    __m512 l = _mm512_mul_ps(_mm512_sub_ps(one, e), qd_x86_rcp_ps(_mm512_add_ps(one, e)));
    l = _mm512_or_ps(l, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
    const __mmask16 small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(small, l, s);
}

/* sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0, with
 * e = exp(-|x|): no overflow, full relative accuracy on both tails (the
 * reference kernel's formula). */
static inline QD_X86_AVX512 __m512 qd_x86_sigmoid_ps(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = qd_x86_exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 num = _mm512_mask_blend_ps(neg, one, e);
    return _mm512_mul_ps(num, qd_x86_rcp_ps(_mm512_add_ps(one, e)));
}

/* The mask of the first n (< 16 or more) lanes. */
static inline QD_X86_AVX512 __mmask16 qd_x86_tail_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* Stores round_half_even(v / scale) saturated to int8 (QuantizeLinear with
 * zero point 0, the reference's division) in the lanes of m. */
static inline QD_X86_AVX512 void qd_x86_store_q8(int8_t *dst, __m512 v, __m512 scale,
                                                 __mmask16 m)
{
    __m512 t = _mm512_div_ps(v, scale);
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(127.0f));
    __m512i q = _mm512_cvt_roundps_epi32(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_mask_storeu_epi8(dst, m, _mm512_cvtepi32_epi8(q));
}

#endif
