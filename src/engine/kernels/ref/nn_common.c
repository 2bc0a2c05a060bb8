/* Shared pieces of the reference NN kernels; see nn_common.h. */
#include "engine/kernels/ref/nn_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

qd_status qd_nn_fail(const qd_kernel_args *a, qd_status st, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qd_graph_fail(a->graph, st, "node '%s' (%s): %s", a->node->name ? a->node->name : "",
                         a->node->op_type ? a->node->op_type : "?", msg);
}

const qd_tensor *qd_nn_in(const qd_kernel_args *a, int i)
{
    return i < a->n_inputs ? a->inputs[i] : NULL;
}

qd_tensor *qd_nn_out(const qd_kernel_args *a, int i)
{
    return i < a->n_outputs ? a->outputs[i] : NULL;
}

int64_t qd_nn_numel(const qd_tensor *t)
{
    return qd_numel(t->rank, t->dims);
}

qd_status qd_nn_check_any(const qd_kernel_args *a, const qd_tensor *t, const char *what)
{
    if (!t)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "%s is missing", what);
    int64_t n = t->rank >= 0 && t->rank <= QD_MAX_RANK ? qd_numel(t->rank, t->dims) : -1;
    size_t es = qd_dtype_size(t->dtype);
    if (n < 0 || es == 0 || (uint64_t)n > SIZE_MAX / es || (size_t)n * es != t->nbytes ||
        (n > 0 && !t->data))
        return qd_nn_fail(a, QD_STATUS_INVALID_ARGUMENT, "%s has a malformed buffer", what);
    return QD_OK;
}

qd_status qd_nn_check(const qd_kernel_args *a, const qd_tensor *t, qd_dtype dtype,
                      const char *what)
{
    qd_status st = qd_nn_check_any(a, t, what);
    if (st != QD_OK)
        return st;
    if (t->dtype != dtype)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "%s is %s, the reference kernel takes %s",
                          what, qd_dtype_name(t->dtype), qd_dtype_name(dtype));
    return QD_OK;
}

qd_status qd_nn_axis(const qd_kernel_args *a, int64_t axis, int rank, int *out)
{
    if (axis < -(int64_t)rank || axis >= rank)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "axis %lld is out of range for rank %d",
                          (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return QD_OK;
}

qd_status qd_nn_attr_ints_n(const qd_kernel_args *a, const char *name, int n, int64_t def,
                            int64_t *out)
{
    const int64_t *v;
    size_t count;
    qd_status st = qd_node_attr_ints(a->graph, a->node, name, &v, &count);
    if (st != QD_OK)
        return st;
    if (!v) {
        for (int i = 0; i < n; i++)
            out[i] = def;
        return QD_OK;
    }
    if (count != (size_t)n)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "attribute '%s' has %zu values, expected %d",
                          name, count, n);
    memcpy(out, v, (size_t)n * sizeof *out);
    return QD_OK;
}

int64_t qd_nn_get_int(const qd_tensor *t, int64_t i)
{
    if (t->dtype == QD_DT_INT32)
        return ((const int32_t *)t->data)[i];
    return ((const int64_t *)t->data)[i];
}

int64_t qd_nn_prod(int n, const int64_t *d)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= d[i];
    return p;
}

int qd_nn_qrange(qd_dtype dt, int32_t *lo, int32_t *hi)
{
    switch (dt) {
    case QD_DT_UINT8: *lo = 0; *hi = 255; return 1;
    case QD_DT_INT8: *lo = -128; *hi = 127; return 1;
    case QD_DT_UINT16: *lo = 0; *hi = 65535; return 1;
    case QD_DT_INT16: *lo = -32768; *hi = 32767; return 1;
    default: return 0;
    }
}

/* ---- geometry ---- */

qd_status qd_nn_kernel_shape(const qd_kernel_args *a, const qd_tensor *w, int nsp, int64_t *kernel)
{
    const int64_t *ks;
    size_t n;
    qd_status st = qd_node_attr_ints(a->graph, a->node, "kernel_shape", &ks, &n);
    if (st != QD_OK)
        return st;
    if (ks && n != (size_t)nsp)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL,
                          "kernel_shape has %zu values for %d spatial dims", n, nsp);
    if (!ks && !w)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "kernel_shape is missing");
    for (int i = 0; i < nsp; i++) {
        kernel[i] = ks ? ks[i] : w->dims[i + 2];
        if (kernel[i] <= 0 || (w && w->dims[i + 2] != kernel[i]))
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL,
                              "kernel_shape[%d] = %lld does not match the weights", i,
                              (long long)kernel[i]);
    }
    return QD_OK;
}

qd_status qd_nn_geom_init(const qd_kernel_args *a, const qd_tensor *x, const qd_tensor *y,
                          const int64_t *kernel, int transposed, qd_nn_geom *g)
{
    qd_status st;
    memset(g, 0, sizeof *g);
    if (x->rank < 3 || y->rank != x->rank)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL,
                          "input rank %d / output rank %d: expected [N, C, spatial...]", x->rank,
                          y->rank);
    int nsp = g->nsp = x->rank - 2;
    int64_t pads[2 * QD_MAX_RANK];
    for (int i = 0; i < nsp; i++) {
        g->in[i] = x->dims[i + 2];
        g->out[i] = y->dims[i + 2];
        g->k[i] = kernel[i];
    }
    if ((st = qd_nn_attr_ints_n(a, "strides", nsp, 1, g->stride)) != QD_OK ||
        (st = qd_nn_attr_ints_n(a, "dilations", nsp, 1, g->dil)) != QD_OK ||
        (st = qd_nn_attr_ints_n(a, "pads", 2 * nsp, 0, pads)) != QD_OK)
        return st;
    const char *auto_pad;
    if ((st = qd_node_attr_string(a->graph, a->node, "auto_pad", "NOTSET", &auto_pad)) != QD_OK)
        return st;
    int same_upper = !strcmp(auto_pad, "SAME_UPPER"), same_lower = !strcmp(auto_pad, "SAME_LOWER");
    int valid = !strcmp(auto_pad, "VALID");
    if (!same_upper && !same_lower && !valid && strcmp(auto_pad, "NOTSET"))
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "auto_pad '%s' is not valid", auto_pad);
    for (int i = 0; i < nsp; i++)
        if (g->stride[i] <= 0 || g->dil[i] <= 0)
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "strides and dilations must be > 0");

    if (!transposed) {
        for (int i = 0; i < nsp; i++) {
            int64_t eff = (g->k[i] - 1) * g->dil[i] + 1;
            if (same_upper || same_lower) {
                /* out = ceil(in / stride); the padding that makes it so. */
                int64_t total = (g->out[i] - 1) * g->stride[i] + eff - g->in[i];
                if (total < 0)
                    total = 0;
                g->pad[i] = same_upper ? total / 2 : total - total / 2;
                g->pad_end[i] = total - g->pad[i];
            } else if (!valid) {
                g->pad[i] = pads[i];
                g->pad_end[i] = pads[i + nsp];
            }
            if (g->pad[i] < 0 || g->pad_end[i] < 0)
                return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "negative pads are not supported");
        }
        return QD_OK;
    }

    int64_t out_pad[QD_MAX_RANK];
    const int64_t *oshape;
    size_t n_oshape;
    if ((st = qd_nn_attr_ints_n(a, "output_padding", nsp, 0, out_pad)) != QD_OK ||
        (st = qd_node_attr_ints(a->graph, a->node, "output_shape", &oshape, &n_oshape)) != QD_OK)
        return st;
    for (int i = 0; i < nsp; i++) {
        int64_t eff = (g->k[i] - 1) * g->dil[i] + 1;
        if (oshape || same_upper || same_lower) {
            /* ONNX: total_padding = stride*(in-1) + output_padding + eff_k -
             * output_shape; SAME_UPPER puts the smaller half first, the
             * other modes the larger half. Output beyond the full
             * transposed result stays at the bias. */
            int64_t total = g->stride[i] * (g->in[i] - 1) + out_pad[i] + eff - g->out[i];
            if (total < 0)
                total = 0;
            g->pad[i] = same_upper ? total / 2 : total - total / 2;
            g->pad_end[i] = total - g->pad[i];
        } else if (!valid) {
            g->pad[i] = pads[i];
            g->pad_end[i] = pads[i + nsp];
        }
    }
    return QD_OK;
}

/* ---- im2col / col2im ---- */

/* Splits an output run [0, n) along the last dim into the part whose input
 * index i = o*s + off falls inside [0, len): [*lo, *hi). */
static void valid_run(int64_t n, int64_t s, int64_t off, int64_t len, int64_t *lo, int64_t *hi)
{
    /* smallest o with o*s + off >= 0 */
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    /* smallest o with o*s + off >= len */
    int64_t h = len - off <= 0 ? 0 : (len - off + s - 1) / s;
    if (l > n)
        l = n;
    if (h > n)
        h = n;
    if (h < l)
        h = l;
    *lo = l;
    *hi = h;
}

/* One im2col body per source type: for every row (channel, kernel offset)
 * walk the output positions with an odometer over all but the last spatial
 * dim; the last dim is a run split into padding / inside / padding. */
#define QD_NN_IM2COL(NAME, SRC_T, DST_T, CONV)                                                     \
    void NAME(const qd_nn_geom *g, int64_t channels, const SRC_T *x, int32_t zp_, DST_T *col)      \
    {                                                                                              \
        (void)zp_;                                                                                 \
        const int nsp = g->nsp;                                                                    \
        const int64_t isp = qd_nn_prod(nsp, g->in), osp = qd_nn_prod(nsp, g->out);                 \
        const int64_t kprod = qd_nn_prod(nsp, g->k);                                               \
        const int64_t lout = g->out[nsp - 1], lin = g->in[nsp - 1];                                \
        const int64_t ls = g->stride[nsp - 1];                                                     \
        if (osp == 0)                                                                              \
            return;                                                                                \
        const int64_t outer = osp / lout, rows = channels * kprod;                                 \
        QD_NN_OMP_FOR(rows * osp > QD_NN_PAR_MIN)                                                  \
        for (int64_t r = 0; r < rows; r++) {                                                       \
            const int32_t zp = zp_;                                                                \
            (void)zp;                                                                              \
            int64_t kidx[QD_MAX_RANK], o[QD_MAX_RANK] = {0};                                       \
            int64_t kr = r % kprod;                                                                \
            for (int d = nsp - 1; d >= 0; d--) {                                                   \
                kidx[d] = kr % g->k[d];                                                            \
                kr /= g->k[d];                                                                     \
            }                                                                                      \
            const SRC_T *xc = x + (r / kprod) * isp;                                               \
            DST_T *dst = col + r * osp;                                                            \
            const int64_t off = kidx[nsp - 1] * g->dil[nsp - 1] - g->pad[nsp - 1];                 \
            int64_t lo, hi;                                                                        \
            valid_run(lout, ls, off, lin, &lo, &hi);                                               \
            for (int64_t q = 0; q < outer; q++, dst += lout) {                                     \
                int64_t base = 0;                                                                  \
                int inside = 1;                                                                    \
                for (int d = 0; d < nsp - 1; d++) {                                                \
                    int64_t ii = o[d] * g->stride[d] - g->pad[d] + kidx[d] * g->dil[d];            \
                    if (ii < 0 || ii >= g->in[d]) {                                                \
                        inside = 0;                                                                \
                        break;                                                                     \
                    }                                                                              \
                    base = base * g->in[d] + ii;                                                   \
                }                                                                                  \
                if (!inside) {                                                                     \
                    memset(dst, 0, (size_t)lout * sizeof *dst);                                    \
                } else {                                                                           \
                    const SRC_T *src = xc + base * lin;                                            \
                    for (int64_t ow = 0; ow < lo; ow++)                                            \
                        dst[ow] = 0;                                                               \
                    if (ls == 1) {                                                                 \
                        for (int64_t ow = lo; ow < hi; ow++)                                       \
                            dst[ow] = CONV(src[off + ow]);                                         \
                    } else {                                                                       \
                        for (int64_t ow = lo; ow < hi; ow++)                                       \
                            dst[ow] = CONV(src[off + ow * ls]);                                    \
                    }                                                                              \
                    for (int64_t ow = hi; ow < lout; ow++)                                         \
                        dst[ow] = 0;                                                               \
                }                                                                                  \
                for (int d = nsp - 2; d >= 0; d--) {                                               \
                    if (++o[d] < g->out[d])                                                        \
                        break;                                                                     \
                    o[d] = 0;                                                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

#define QD_NN_CONV_F32(v) (v)
#define QD_NN_CONV_ZP(v) ((int32_t)(v) - zp)
QD_NN_IM2COL(im2col_f32_impl, float, float, QD_NN_CONV_F32)
QD_NN_IM2COL(qd_nn_im2col_u8, uint8_t, int32_t, QD_NN_CONV_ZP)
QD_NN_IM2COL(qd_nn_im2col_s8, int8_t, int32_t, QD_NN_CONV_ZP)

void qd_nn_im2col_f32(const qd_nn_geom *g, int64_t channels, const float *x, float *col)
{
    im2col_f32_impl(g, channels, x, 0, col);
}

void qd_nn_col2im_f32(const qd_nn_geom *g, int64_t channels, const float *col, float *y)
{
    const int nsp = g->nsp;
    const int64_t isp = qd_nn_prod(nsp, g->in), osp = qd_nn_prod(nsp, g->out);
    const int64_t kprod = qd_nn_prod(nsp, g->k);
    const int64_t lout = g->out[nsp - 1], lin = g->in[nsp - 1], ls = g->stride[nsp - 1];
    if (isp == 0 || osp == 0)
        return;
    const int64_t outer = isp / lin;
    /* Rows of one output channel write the same plane: parallel over m. */
    QD_NN_OMP_FOR(channels * kprod * isp > QD_NN_PAR_MIN)
    for (int64_t m = 0; m < channels; m++) {
        float *ym = y + m * osp;
        for (int64_t kr0 = 0; kr0 < kprod; kr0++) {
            int64_t kidx[QD_MAX_RANK], i[QD_MAX_RANK] = {0}, kr = kr0;
            for (int d = nsp - 1; d >= 0; d--) {
                kidx[d] = kr % g->k[d];
                kr /= g->k[d];
            }
            const float *src = col + (m * kprod + kr0) * isp;
            const int64_t off = kidx[nsp - 1] * g->dil[nsp - 1] - g->pad[nsp - 1];
            for (int64_t q = 0; q < outer; q++, src += lin) {
                int64_t base = 0;
                int inside = 1;
                for (int d = 0; d < nsp - 1; d++) {
                    int64_t oo = i[d] * g->stride[d] - g->pad[d] + kidx[d] * g->dil[d];
                    if (oo < 0 || oo >= g->out[d]) {
                        inside = 0;
                        break;
                    }
                    base = base * g->out[d] + oo;
                }
                if (inside) {
                    float *dst = ym + base * lout;
                    for (int64_t iw = 0; iw < lin; iw++) {
                        int64_t ow = iw * ls + off;
                        if (ow >= 0 && ow < lout)
                            dst[ow] += src[iw];
                    }
                }
                for (int d = nsp - 2; d >= 0; d--) {
                    if (++i[d] < g->in[d])
                        break;
                    i[d] = 0;
                }
            }
        }
    }
}

/* ---- GEMM ---- */

/* Tile sizes: a KB x NB panel of B (64 KiB) stays in L2 while MB rows of A
 * stream over it; the 4 x 16 inner block has a fixed trip count so that
 * GCC vectorizes it even at -O2. */
#define MB 64
#define NB 256
#define KB 64
#define JW 16
#define JW1 8 /* single-row tail: measured faster narrower */

#define QD_NN_GEMM(NAME, T)                                                                        \
    static void NAME##_tile(int64_t m, int64_t n, int64_t k, const T *restrict A, int64_t lda,     \
                            const T *restrict B, int64_t ldb, T *restrict C, int64_t ldc)          \
    {                                                                                              \
        int64_t i = 0;                                                                             \
        for (; i + 4 <= m; i += 4) {                                                               \
            const T *a0 = A + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;             \
            T *c0 = C + i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;                   \
            int64_t j = 0;                                                                         \
            for (; j + JW <= n; j += JW) {                                                         \
                T acc[4][JW];                                                                      \
                for (int jj = 0; jj < JW; jj++) {                                                  \
                    acc[0][jj] = c0[j + jj];                                                       \
                    acc[1][jj] = c1[j + jj];                                                       \
                    acc[2][jj] = c2[j + jj];                                                       \
                    acc[3][jj] = c3[j + jj];                                                       \
                }                                                                                  \
                for (int64_t p = 0; p < k; p++) {                                                  \
                    const T *b = B + p * ldb + j;                                                  \
                    T v0 = a0[p], v1 = a1[p], v2 = a2[p], v3 = a3[p];                              \
                    for (int jj = 0; jj < JW; jj++) {                                              \
                        acc[0][jj] += v0 * b[jj];                                                  \
                        acc[1][jj] += v1 * b[jj];                                                  \
                        acc[2][jj] += v2 * b[jj];                                                  \
                        acc[3][jj] += v3 * b[jj];                                                  \
                    }                                                                              \
                }                                                                                  \
                for (int jj = 0; jj < JW; jj++) {                                                  \
                    c0[j + jj] = acc[0][jj];                                                       \
                    c1[j + jj] = acc[1][jj];                                                       \
                    c2[j + jj] = acc[2][jj];                                                       \
                    c3[j + jj] = acc[3][jj];                                                       \
                }                                                                                  \
            }                                                                                      \
            for (; j < n; j++) {                                                                   \
                T s0 = c0[j], s1 = c1[j], s2 = c2[j], s3 = c3[j];                                  \
                for (int64_t p = 0; p < k; p++) {                                                  \
                    T b = B[p * ldb + j];                                                          \
                    s0 += a0[p] * b;                                                               \
                    s1 += a1[p] * b;                                                               \
                    s2 += a2[p] * b;                                                               \
                    s3 += a3[p] * b;                                                               \
                }                                                                                  \
                c0[j] = s0;                                                                        \
                c1[j] = s1;                                                                        \
                c2[j] = s2;                                                                        \
                c3[j] = s3;                                                                        \
            }                                                                                      \
        }                                                                                          \
        for (; i < m; i++) {                                                                       \
            const T *ai = A + i * lda;                                                             \
            T *ci = C + i * ldc;                                                                   \
            int64_t j = 0;                                                                         \
            for (; j + JW1 <= n; j += JW1) {                                                       \
                T acc[JW1];                                                                        \
                for (int jj = 0; jj < JW1; jj++)                                                   \
                    acc[jj] = ci[j + jj];                                                          \
                for (int64_t p = 0; p < k; p++) {                                                  \
                    const T *b = B + p * ldb + j;                                                  \
                    T v = ai[p];                                                                   \
                    for (int jj = 0; jj < JW1; jj++)                                               \
                        acc[jj] += v * b[jj];                                                      \
                }                                                                                  \
                for (int jj = 0; jj < JW1; jj++)                                                   \
                    ci[j + jj] = acc[jj];                                                          \
            }                                                                                      \
            for (; j < n; j++) {                                                                   \
                T acc = ci[j];                                                                     \
                for (int64_t p = 0; p < k; p++)                                                    \
                    acc += ai[p] * B[p * ldb + j];                                                 \
                ci[j] = acc;                                                                       \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    static void NAME##_run(int64_t M, int64_t N, int64_t K, const T *A, int64_t lda, const T *B,   \
                           int64_t ldb, T *C, int64_t ldc)                                         \
    {                                                                                              \
        if (M <= 0 || N <= 0 || K <= 0)                                                            \
            return;                                                                                \
        const int64_t mt = (M + MB - 1) / MB, nt = (N + NB - 1) / NB;                              \
        /* Tiles of C are independent; K is walked in order inside one. */                         \
        QD_NN_OMP_FOR(M * N * K > QD_NN_PAR_MIN * 4)                                               \
        for (int64_t t = 0; t < mt * nt; t++) {                                                    \
            int64_t i0 = (t / nt) * MB, j0 = (t % nt) * NB;                                        \
            int64_t m = M - i0 < MB ? M - i0 : MB, n = N - j0 < NB ? N - j0 : NB;                  \
            for (int64_t p0 = 0; p0 < K; p0 += KB) {                                               \
                int64_t k = K - p0 < KB ? K - p0 : KB;                                             \
                NAME##_tile(m, n, k, A + i0 * lda + p0, lda, B + p0 * ldb + j0, ldb,               \
                            C + i0 * ldc + j0, ldc);                                               \
            }                                                                                      \
        }                                                                                          \
    }

QD_NN_GEMM(sgemm, float)
/* int32 GEMM computed in uint32: wraps instead of signed-overflow UB. */
QD_NN_GEMM(igemm, uint32_t)

void qd_nn_sgemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc)
{
    sgemm_run(M, N, K, A, lda, B, ldb, C, ldc);
}

void qd_nn_igemm(int64_t M, int64_t N, int64_t K, const int32_t *A, int64_t lda, const int32_t *B,
                 int64_t ldb, int32_t *C, int64_t ldc)
{
    igemm_run(M, N, K, (const uint32_t *)A, lda, (const uint32_t *)B, ldb, (uint32_t *)C, ldc);
}

/* ---- batched matmul plan ---- */

qd_status qd_nn_mm_plan_init(const qd_kernel_args *a, const qd_tensor *A, const qd_tensor *B,
                             const qd_tensor *Y, qd_nn_mm_plan *p)
{
    memset(p, 0, sizeof *p);
    int ra = A->rank, rb = B->rank;
    if (ra < 1 || rb < 1)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "matmul operands must have rank >= 1");
    int64_t K2;
    if (ra == 1) {
        p->M = 1;
        p->K = A->dims[0];
    } else {
        p->M = A->dims[ra - 2];
        p->K = A->dims[ra - 1];
    }
    if (rb == 1) {
        K2 = B->dims[0];
        p->N = 1;
    } else {
        K2 = B->dims[rb - 2];
        p->N = B->dims[rb - 1];
    }
    if (K2 != p->K)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "inner dims differ (%lld vs %lld)",
                          (long long)p->K, (long long)K2);
    int nba = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
    int nb = nba > nbb ? nba : nbb;
    int64_t da[QD_MAX_RANK], db[QD_MAX_RANK], dy[QD_MAX_RANK];
    /* Right-aligned batch dims, padded with 1. */
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - nba), ib = i - (nb - nbb);
        da[i] = ia >= 0 ? A->dims[ia] : 1;
        db[i] = ib >= 0 ? B->dims[ib] : 1;
        if (da[i] != db[i] && da[i] != 1 && db[i] != 1)
            return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "batch dims do not broadcast");
        dy[i] = da[i] == 1 ? db[i] : da[i];
    }
    p->batch = qd_nn_prod(nb, dy);
    if (qd_nn_numel(Y) != p->batch * p->M * p->N)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "output has %lld elements, expected %lld",
                          (long long)qd_nn_numel(Y), (long long)(p->batch * p->M * p->N));
    p->a_off = qd_malloc((size_t)(p->batch ? p->batch : 1) * sizeof *p->a_off);
    p->b_off = qd_malloc((size_t)(p->batch ? p->batch : 1) * sizeof *p->b_off);
    if (!p->a_off || !p->b_off) {
        qd_nn_mm_plan_free(p);
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    int64_t idx[QD_MAX_RANK] = {0};
    for (int64_t b = 0; b < p->batch; b++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < nb; i++) {
            oa = oa * da[i] + (da[i] == 1 ? 0 : idx[i]);
            ob = ob * db[i] + (db[i] == 1 ? 0 : idx[i]);
        }
        p->a_off[b] = oa;
        p->b_off[b] = ob;
        for (int i = nb - 1; i >= 0; i--) {
            if (++idx[i] < dy[i])
                break;
            idx[i] = 0;
        }
    }
    return QD_OK;
}

void qd_nn_mm_plan_free(qd_nn_mm_plan *p)
{
    qd_free(p->a_off);
    qd_free(p->b_off);
    p->a_off = p->b_off = NULL;
}
