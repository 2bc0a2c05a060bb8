/* Reference QuantizeLinear, DequantizeLinear (per tensor and per axis),
 * QLinearConv and QLinearMatMul.
 *
 * Quantize: y = saturate(round_half_even(x / scale) + zero_point), in
 * float as onnxruntime and the ONNX reference do. The QLinear ops subtract
 * the zero points, accumulate in int32 and requantize the accumulator with
 * the float multiplier x_scale * w_scale / y_scale, then round half to even
 * and saturate. */
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/ref/ref_nn.h"

/* Element i of an integer tensor as int64 (the quantized dtypes and
 * int32). */
static int64_t qget(const qd_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case QD_DT_UINT8: return ((const uint8_t *)t->data)[i];
    case QD_DT_INT8: return ((const int8_t *)t->data)[i];
    case QD_DT_UINT16: return ((const uint16_t *)t->data)[i];
    case QD_DT_INT16: return ((const int16_t *)t->data)[i];
    case QD_DT_INT32: return ((const int32_t *)t->data)[i];
    default: return 0;
    }
}

/* Scale and zero point of a Q/DQ node: per tensor (one element) or per
 * axis (1-D with dims[axis] elements). Fills the [outer, C, inner] split,
 * C = 1 for per tensor. zp may be NULL (zero). */
static qd_status qparams(const qd_kernel_args *a, const qd_tensor *X, const qd_tensor *S,
                         const qd_tensor *Z, int64_t *outer, int64_t *C, int64_t *inner)
{
    qd_status st;
    int64_t axis_attr, block;
    int axis = 0;
    if ((st = qd_nn_check(a, S, QD_DT_FLOAT, "scale")) != QD_OK ||
        (Z && (st = qd_nn_check_any(a, Z, "zero point")) != QD_OK) ||
        (st = qd_node_attr_int(a->graph, a->node, "axis", 1, &axis_attr)) != QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "block_size", 0, &block)) != QD_OK)
        return st;
    if (block)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "blocked quantization is not supported");
    int64_t ns = qd_nn_numel(S);
    if (Z && qd_nn_numel(Z) != ns)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "scale and zero point sizes differ");
    if (S->rank == 0 || (ns == 1 && S->rank == 1 && X->rank == 0)) {
        *outer = qd_nn_numel(X);
        *C = *inner = 1;
        return QD_OK;
    }
    if (S->rank != 1 || (st = qd_nn_axis(a, axis_attr, X->rank, &axis)) != QD_OK)
        return st != QD_OK ? st
                           : qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "scale must be a scalar or 1-D");
    if (ns == 1 && X->dims[axis] != 1) {
        *outer = qd_nn_numel(X);
        *C = *inner = 1;
        return QD_OK;
    }
    if (ns != X->dims[axis])
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "scale has %lld elements for axis %d of %lld",
                          (long long)ns, axis, (long long)X->dims[axis]);
    *outer = qd_nn_prod(axis, X->dims);
    *C = ns;
    *inner = qd_nn_prod(X->rank - axis - 1, X->dims + axis + 1);
    return QD_OK;
}

#define QD_QUANT_STORE(T)                                                                          \
    do {                                                                                           \
        T *ys = Y->data;                                                                           \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t c = 0; c < C; c++) {                                                      \
                float s = scale[c];                                                                \
                int32_t z = Z ? (int32_t)qget(Z, c) : 0;                                           \
                int64_t base = (o * C + c) * inner;                                                \
                for (int64_t i = 0; i < inner; i++)                                                \
                    ys[base + i] = (T)qd_nn_quantize(x[base + i] / s, z, lo, hi);                  \
            }                                                                                      \
    } while (0)

qd_status qd_ref_quantize_linear(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *S = qd_nn_in(a, 1), *Z = qd_nn_in(a, 2);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input x")) != QD_OK ||
        (st = qd_nn_check_any(a, Y, "output y")) != QD_OK)
        return st;
    int32_t lo, hi;
    if (!qd_nn_qrange(Y->dtype, &lo, &hi))
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference quantization to %s",
                          qd_dtype_name(Y->dtype));
    if (Z && Z->dtype != Y->dtype)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "zero point is %s, output %s",
                          qd_dtype_name(Z->dtype), qd_dtype_name(Y->dtype));
    int64_t outer, C, inner;
    if ((st = qparams(a, X, S, Z, &outer, &C, &inner)) != QD_OK)
        return st;
    if (qd_nn_numel(Y) != qd_nn_numel(X))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "y must have x's shape");
    const float *x = X->data, *scale = S->data;
    for (int64_t c = 0; c < C; c++)
        if (!(scale[c] != 0.0f))
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "scale %g is not usable",
                              (double)scale[c]);
    switch (Y->dtype) {
    case QD_DT_UINT8: QD_QUANT_STORE(uint8_t); break;
    case QD_DT_INT8: QD_QUANT_STORE(int8_t); break;
    case QD_DT_UINT16: QD_QUANT_STORE(uint16_t); break;
    default: QD_QUANT_STORE(int16_t); break;
    }
    return QD_OK;
}

#define QD_DEQUANT_LOAD(T)                                                                         \
    do {                                                                                           \
        const T *xs = X->data;                                                                     \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t c = 0; c < C; c++) {                                                      \
                float s = scale[c];                                                                \
                int64_t z = Z ? qget(Z, c) : 0;                                                    \
                int64_t base = (o * C + c) * inner;                                                \
                for (int64_t i = 0; i < inner; i++)                                                \
                    y[base + i] = (float)((int64_t)xs[base + i] - z) * s;                          \
            }                                                                                      \
    } while (0)

qd_status qd_ref_dequantize_linear(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *S = qd_nn_in(a, 1), *Z = qd_nn_in(a, 2);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, X, "input x")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output y")) != QD_OK)
        return st;
    int32_t lo, hi;
    if (!qd_nn_qrange(X->dtype, &lo, &hi) && X->dtype != QD_DT_INT32)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference dequantization of %s",
                          qd_dtype_name(X->dtype));
    if (Z && Z->dtype != X->dtype)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "zero point is %s, input %s",
                          qd_dtype_name(Z->dtype), qd_dtype_name(X->dtype));
    int64_t outer, C, inner;
    if ((st = qparams(a, X, S, Z, &outer, &C, &inner)) != QD_OK)
        return st;
    if (qd_nn_numel(Y) != qd_nn_numel(X))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "y must have x's shape");
    const float *scale = S->data;
    float *y = Y->data;
    switch (X->dtype) {
    case QD_DT_UINT8: QD_DEQUANT_LOAD(uint8_t); break;
    case QD_DT_INT8: QD_DEQUANT_LOAD(int8_t); break;
    case QD_DT_UINT16: QD_DEQUANT_LOAD(uint16_t); break;
    case QD_DT_INT16: QD_DEQUANT_LOAD(int16_t); break;
    default: QD_DEQUANT_LOAD(int32_t); break;
    }
    return QD_OK;
}

/* A quantized operand: 8-bit data with a per-tensor or per-channel scale
 * and zero point. */
static qd_status check_q8(const qd_kernel_args *a, const qd_tensor *t, const qd_tensor *s,
                          const qd_tensor *z, int64_t channels, const char *what)
{
    qd_status st;
    if ((st = qd_nn_check_any(a, t, what)) != QD_OK ||
        (st = qd_nn_check(a, s, QD_DT_FLOAT, "scale")) != QD_OK ||
        (z && (st = qd_nn_check(a, z, t->dtype, "zero point")) != QD_OK))
        return st;
    if (t->dtype != QD_DT_UINT8 && t->dtype != QD_DT_INT8)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "%s is %s, expected uint8 or int8", what,
                          qd_dtype_name(t->dtype));
    int64_t n = qd_nn_numel(s);
    if ((n != 1 && n != channels) || (z && qd_nn_numel(z) != n))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR,
                          "%s: scale/zero point must have 1 or %lld elements", what,
                          (long long)channels);
    return QD_OK;
}

/* Per-channel value i of a per-tensor or per-channel parameter. */
static float pscale(const qd_tensor *s, int64_t i)
{
    return ((const float *)s->data)[qd_nn_numel(s) == 1 ? 0 : i];
}

static int32_t pzero(const qd_tensor *z, int64_t i)
{
    return z ? (int32_t)qget(z, qd_nn_numel(z) == 1 ? 0 : i) : 0;
}

/* Requantizes acc into Y's element at y + idx. */
static void store_q(qd_tensor *Y, int64_t idx, int32_t acc, float mult, int32_t zp, int32_t lo,
                    int32_t hi)
{
    int32_t v = qd_nn_quantize((float)acc * mult, zp, lo, hi);
    if (Y->dtype == QD_DT_UINT8)
        ((uint8_t *)Y->data)[idx] = (uint8_t)v;
    else
        ((int8_t *)Y->data)[idx] = (int8_t)v;
}

qd_status qd_ref_qlinear_conv(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *XS = qd_nn_in(a, 1), *XZ = qd_nn_in(a, 2);
    const qd_tensor *W = qd_nn_in(a, 3), *WS = qd_nn_in(a, 4), *WZ = qd_nn_in(a, 5);
    const qd_tensor *YS = qd_nn_in(a, 6), *YZ = qd_nn_in(a, 7), *B = qd_nn_in(a, 8);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, W, "weights w")) != QD_OK ||
        (st = qd_nn_check_any(a, X, "input x")) != QD_OK)
        return st;
    if (X->rank < 3 || W->rank != X->rank)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "x rank %d and w rank %d", X->rank, W->rank);
    int64_t M = W->dims[0];
    if ((st = check_q8(a, X, XS, XZ, 1, "input x")) != QD_OK ||
        (st = check_q8(a, W, WS, WZ, M, "weights w")) != QD_OK ||
        (st = qd_nn_check_any(a, Y, "output y")) != QD_OK ||
        (st = check_q8(a, Y, YS, YZ, 1, "output y")) != QD_OK ||
        (B && (st = qd_nn_check(a, B, QD_DT_INT32, "bias B")) != QD_OK))
        return st;
    int nsp = X->rank - 2;
    int64_t group, kernel[QD_MAX_RANK];
    if ((st = qd_node_attr_int(a->graph, a->node, "group", 1, &group)) != QD_OK ||
        (st = qd_nn_kernel_shape(a, W, nsp, kernel)) != QD_OK)
        return st;
    int64_t N = X->dims[0], C = X->dims[1];
    if (group <= 0 || C % group || M % group || W->dims[1] != C / group || Y->dims[1] != M ||
        Y->dims[0] != N || (B && qd_nn_numel(B) != M))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR,
                          "channels do not agree: x has %lld, w is %lldx%lld, group %lld",
                          (long long)C, (long long)M, (long long)W->dims[1], (long long)group);
    qd_nn_geom g;
    if ((st = qd_nn_geom_init(a, X, Y, kernel, 0, &g)) != QD_OK)
        return st;
    const int64_t Cg = C / group, Mg = M / group;
    const int64_t isp = qd_nn_prod(nsp, g.in), osp = qd_nn_prod(nsp, g.out);
    const int64_t K = Cg * qd_nn_prod(nsp, g.k);
    if (N * M * osp == 0)
        return QD_OK;
    int32_t lo, hi;
    qd_nn_qrange(Y->dtype, &lo, &hi);
    int32_t xzp = pzero(XZ, 0), yzp = pzero(YZ, 0);
    float xs = pscale(XS, 0), ys = pscale(YS, 0);

    int32_t *wq = qd_malloc((size_t)(M * K + 1) * sizeof *wq);
    int32_t *col = qd_malloc((size_t)(K * osp + 1) * sizeof *col);
    int32_t *acc = qd_malloc((size_t)(Mg * osp + 1) * sizeof *acc);
    float *mult = qd_malloc((size_t)M * sizeof *mult);
    if (!wq || !col || !acc || !mult) {
        st = qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    /* Weights minus their (per output channel) zero point, once. */
    for (int64_t m = 0; m < M; m++) {
        int32_t z = pzero(WZ, m);
        for (int64_t k = 0; k < K; k++)
            wq[m * K + k] = (int32_t)qget(W, m * K + k) - z;
        mult[m] = xs * pscale(WS, m) / ys;
    }
    for (int64_t n = 0; n < N; n++) {
        for (int64_t gi = 0; gi < group; gi++) {
            const size_t xoff = (size_t)((n * C + gi * Cg) * isp);
            if (X->dtype == QD_DT_UINT8)
                qd_nn_im2col_u8(&g, Cg, (const uint8_t *)X->data + xoff, xzp, col);
            else
                qd_nn_im2col_s8(&g, Cg, (const int8_t *)X->data + xoff, xzp, col);
            for (int64_t m = 0; m < Mg; m++) {
                int32_t b = B ? ((const int32_t *)B->data)[gi * Mg + m] : 0;
                for (int64_t q = 0; q < osp; q++)
                    acc[m * osp + q] = b;
            }
            qd_nn_igemm(Mg, osp, K, wq + gi * Mg * K, K, col, osp, acc, osp);
            for (int64_t m = 0; m < Mg; m++) {
                int64_t mm = gi * Mg + m, yoff = (n * M + mm) * osp;
                for (int64_t q = 0; q < osp; q++)
                    store_q(Y, yoff + q, acc[m * osp + q], mult[mm], yzp, lo, hi);
            }
        }
    }
    st = QD_OK;
done:
    qd_free(wq);
    qd_free(col);
    qd_free(acc);
    qd_free(mult);
    return st;
}

qd_status qd_ref_qlinear_matmul(const qd_kernel_args *a)
{
    const qd_tensor *A = qd_nn_in(a, 0), *AS = qd_nn_in(a, 1), *AZ = qd_nn_in(a, 2);
    const qd_tensor *Bt = qd_nn_in(a, 3), *BS = qd_nn_in(a, 4), *BZ = qd_nn_in(a, 5);
    const qd_tensor *YS = qd_nn_in(a, 6), *YZ = qd_nn_in(a, 7);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, A, "input a")) != QD_OK ||
        (st = qd_nn_check_any(a, Bt, "input b")) != QD_OK ||
        (st = qd_nn_check_any(a, Y, "output y")) != QD_OK)
        return st;
    qd_nn_mm_plan p;
    if ((st = qd_nn_mm_plan_init(a, A, Bt, Y, &p)) != QD_OK)
        return st;
    /* a: per tensor or per row; b: per tensor or per column; y: per tensor
     * or per row (ONNX QLinearMatMul). */
    int32_t *am = NULL, *bm = NULL, *acc = NULL;
    if ((st = check_q8(a, A, AS, AZ, p.M, "input a")) != QD_OK ||
        (st = check_q8(a, Bt, BS, BZ, p.N, "input b")) != QD_OK ||
        (st = check_q8(a, Y, YS, YZ, p.M, "output y")) != QD_OK)
        goto done;
    int32_t lo, hi;
    qd_nn_qrange(Y->dtype, &lo, &hi);
    const int64_t M = p.M, K = p.K, N = p.N;
    am = qd_malloc((size_t)(M * K + 1) * sizeof *am);
    bm = qd_malloc((size_t)(K * N + 1) * sizeof *bm);
    acc = qd_malloc((size_t)(M * N + 1) * sizeof *acc);
    if (!am || !bm || !acc) {
        st = qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int64_t b = 0; b < p.batch; b++) {
        const int64_t ao = p.a_off[b] * M * K, bo = p.b_off[b] * K * N, yo = b * M * N;
        for (int64_t i = 0; i < M; i++) {
            int32_t z = pzero(AZ, i);
            for (int64_t k = 0; k < K; k++)
                am[i * K + k] = (int32_t)qget(A, ao + i * K + k) - z;
        }
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++)
                bm[k * N + j] = (int32_t)qget(Bt, bo + k * N + j) - pzero(BZ, j);
        memset(acc, 0, (size_t)(M * N) * sizeof *acc);
        qd_nn_igemm(M, N, K, am, K, bm, N, acc, N);
        for (int64_t i = 0; i < M; i++) {
            float as = pscale(AS, i), ys = pscale(YS, i);
            int32_t yz = pzero(YZ, i);
            for (int64_t j = 0; j < N; j++)
                store_q(Y, yo + i * N + j, acc[i * N + j], as * pscale(BS, j) / ys, yz, lo, hi);
        }
    }
    st = QD_OK;
done:
    qd_free(am);
    qd_free(bm);
    qd_free(acc);
    qd_nn_mm_plan_free(&p);
    return st;
}
