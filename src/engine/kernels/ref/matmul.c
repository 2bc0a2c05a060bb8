/* Reference MatMul (numpy semantics) and Gemm. */
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/ref/ref_nn.h"

/* Integer matmul computed in the unsigned type of the same width so that
 * overflow wraps (as the int kernels of other runtimes do) instead of being
 * undefined. */
#define QD_MM_INT(NAME, T, U)                                                                      \
    static void NAME(const qd_nn_mm_plan *p, const T *A, const T *B, T *Y)                         \
    {                                                                                              \
        const int64_t M = p->M, K = p->K, N = p->N;                                                \
        for (int64_t b = 0; b < p->batch; b++) {                                                   \
            const T *a = A + p->a_off[b] * M * K, *bb = B + p->b_off[b] * K * N;                   \
            T *y = Y + b * M * N;                                                                  \
            for (int64_t i = 0; i < M; i++) {                                                      \
                U *yi = (U *)(y + i * N);                                                          \
                for (int64_t j = 0; j < N; j++)                                                    \
                    yi[j] = 0;                                                                     \
                for (int64_t k = 0; k < K; k++) {                                                  \
                    U v = (U)a[i * K + k];                                                         \
                    const T *br = bb + k * N;                                                      \
                    for (int64_t j = 0; j < N; j++)                                                \
                        yi[j] += v * (U)br[j];                                                     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

QD_MM_INT(mm_i32, int32_t, uint32_t)
QD_MM_INT(mm_i64, int64_t, uint64_t)
QD_MM_INT(mm_u32, uint32_t, uint32_t)
QD_MM_INT(mm_u64, uint64_t, uint64_t)

qd_status qd_ref_matmul(const qd_kernel_args *a)
{
    const qd_tensor *A = qd_nn_in(a, 0), *B = qd_nn_in(a, 1);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, A, "input A")) != QD_OK ||
        (st = qd_nn_check(a, B, A->dtype, "input B")) != QD_OK ||
        (st = qd_nn_check(a, Y, A->dtype, "output Y")) != QD_OK)
        return st;
    qd_dtype dt = A->dtype;
    if (dt != QD_DT_FLOAT && dt != QD_DT_INT32 && dt != QD_DT_INT64 && dt != QD_DT_UINT32 &&
        dt != QD_DT_UINT64)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference MatMul for %s",
                          qd_dtype_name(dt));
    qd_nn_mm_plan p;
    if ((st = qd_nn_mm_plan_init(a, A, B, Y, &p)) != QD_OK)
        return st;
    switch (dt) {
    case QD_DT_FLOAT: {
        const float *ad = A->data, *bd = B->data;
        float *yd = Y->data;
        if (qd_nn_numel(Y))
            memset(yd, 0, Y->nbytes);
        for (int64_t b = 0; b < p.batch; b++)
            qd_nn_sgemm(p.M, p.N, p.K, ad + p.a_off[b] * p.M * p.K, p.K,
                        bd + p.b_off[b] * p.K * p.N, p.N, yd + b * p.M * p.N, p.N);
        break;
    }
    case QD_DT_INT32: mm_i32(&p, A->data, B->data, Y->data); break;
    case QD_DT_INT64: mm_i64(&p, A->data, B->data, Y->data); break;
    case QD_DT_UINT32: mm_u32(&p, A->data, B->data, Y->data); break;
    default: mm_u64(&p, A->data, B->data, Y->data); break;
    }
    qd_nn_mm_plan_free(&p);
    return QD_OK;
}

/* out[c][r] = in[r][c] for an r x c matrix, in 32 x 32 tiles so that
 * both sides stay in cache. */
static void transpose(const float *in, int64_t rows, int64_t cols, float *out)
{
    for (int64_t r0 = 0; r0 < rows; r0 += 32)
        for (int64_t c0 = 0; c0 < cols; c0 += 32) {
            int64_t r1 = r0 + 32 < rows ? r0 + 32 : rows, c1 = c0 + 32 < cols ? c0 + 32 : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++)
                    out[c * rows + r] = in[r * cols + c];
        }
}

/* y[j] = dot(a, b + j*k) for j < n: A times a transposed B without moving
 * B, for the few-row Gemm of a classifier. 16 partial sums (a fixed trip
 * count GCC vectorizes). */
static void dot_rows(const float *a, const float *b, int64_t n, int64_t k, float *y)
{
    for (int64_t j = 0; j < n; j++) {
        const float *bj = b + j * k;
        float part[16] = {0};
        int64_t p = 0;
        for (; p + 16 <= k; p += 16)
            for (int q = 0; q < 16; q++)
                part[q] += a[p + q] * bj[p + q];
        float s = 0.0f;
        for (; p < k; p++)
            s += a[p] * bj[p];
        for (int q = 0; q < 16; q++)
            s += part[q];
        y[j] = s;
    }
}

qd_status qd_ref_gemm(const qd_kernel_args *a)
{
    const qd_tensor *A = qd_nn_in(a, 0), *B = qd_nn_in(a, 1), *Cb = qd_nn_in(a, 2);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, A, QD_DT_FLOAT, "input A")) != QD_OK ||
        (st = qd_nn_check(a, B, QD_DT_FLOAT, "input B")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK ||
        (Cb && (st = qd_nn_check(a, Cb, QD_DT_FLOAT, "input C")) != QD_OK))
        return st;
    int64_t ta, tb;
    float alpha, beta;
    if ((st = qd_node_attr_int(a->graph, a->node, "transA", 0, &ta)) != QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "transB", 0, &tb)) != QD_OK ||
        (st = qd_node_attr_float(a->graph, a->node, "alpha", 1.0f, &alpha)) != QD_OK ||
        (st = qd_node_attr_float(a->graph, a->node, "beta", 1.0f, &beta)) != QD_OK)
        return st;
    if (A->rank != 2 || B->rank != 2 || Y->rank != 2)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "A, B and Y must be 2-D");
    int64_t M = ta ? A->dims[1] : A->dims[0], K = ta ? A->dims[0] : A->dims[1];
    int64_t K2 = tb ? B->dims[1] : B->dims[0], N = tb ? B->dims[0] : B->dims[1];
    if (K != K2 || Y->dims[0] != M || Y->dims[1] != N)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR,
                          "shapes do not agree: A' %lldx%lld, B' %lldx%lld", (long long)M,
                          (long long)K, (long long)K2, (long long)N);
    /* C broadcasts to [M, N] unidirectionally: strides 0 on its 1-dims. */
    int64_t crs = 0, ccs = 0;
    if (Cb) {
        int64_t cm = Cb->rank == 2 ? Cb->dims[0] : 1;
        int64_t cn = Cb->rank >= 1 ? Cb->dims[Cb->rank - 1] : 1;
        if (Cb->rank > 2 || (cm != 1 && cm != M) || (cn != 1 && cn != N))
            return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "C does not broadcast to %lldx%lld",
                              (long long)M, (long long)N);
        crs = cm == 1 ? 0 : cn;
        ccs = cn == 1 ? 0 : 1;
    }
    float *y = Y->data;
    if (M * N == 0)
        return QD_OK;
    const float *ap = A->data, *bp = B->data;
    float *at = NULL, *bt = NULL;
    if (ta && K > 0) {
        if (!(at = qd_malloc((size_t)(M * K) * sizeof *at)))
            goto oom;
        transpose(ap, K, M, at);
        ap = at;
    }
    /* Few rows against a transposed B: dot products beat moving B. */
    int dots = tb && M < 8;
    if (tb && K > 0 && !dots) {
        if (!(bt = qd_malloc((size_t)(K * N) * sizeof *bt)))
            goto oom;
        transpose(bp, N, K, bt);
        bp = bt;
    }
    memset(y, 0, Y->nbytes);
    if (dots) {
        QD_NN_OMP_FOR(M * N * K > QD_NN_PAR_MIN * 4)
        for (int64_t jb = 0; jb < N; jb += 64)
            for (int64_t i = 0; i < M; i++)
                dot_rows(ap + i * K, bp + jb * K, N - jb < 64 ? N - jb : 64, K, y + i * N + jb);
    } else {
        qd_nn_sgemm(M, N, K, ap, K, bp, N, y, N);
    }
    const float *c = Cb ? Cb->data : NULL;
    for (int64_t i = 0; i < M; i++) {
        float *yi = y + i * N;
        if (alpha != 1.0f)
            for (int64_t j = 0; j < N; j++)
                yi[j] *= alpha;
        if (c && beta != 0.0f) {
            const float *ci = c + i * crs;
            for (int64_t j = 0; j < N; j++)
                yi[j] += beta * ci[j * ccs];
        }
    }
    qd_free(at);
    qd_free(bt);
    return QD_OK;
oom:
    qd_free(at);
    qd_free(bt);
    return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
}
