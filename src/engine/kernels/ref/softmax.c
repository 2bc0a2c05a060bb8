/* Reference Softmax, LogSoftmax, TopK and CumSum. All work on the
 * [outer, n, inner] view of the input around one axis. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/ref/ref_nn.h"

static void split_axis(const qd_tensor *t, int axis, int64_t *outer, int64_t *n, int64_t *inner)
{
    *outer = qd_nn_prod(axis, t->dims);
    *n = t->dims[axis];
    *inner = qd_nn_prod(t->rank - axis - 1, t->dims + axis + 1);
}

/* ---- Softmax / LogSoftmax ---- */

static qd_status softmax(const qd_kernel_args *a, int log_form)
{
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output")) != QD_OK)
        return st;
    if (qd_nn_numel(Y) != qd_nn_numel(X))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "output must have the input's shape");
    /* Opset 13 normalizes along one axis (default -1); before, the input
     * is coerced to 2-D at axis (default 1) and rows are normalized. */
    int old = a->graph->opset < 13;
    int64_t axis_attr;
    int axis = 0;
    if ((st = qd_node_attr_int(a->graph, a->node, "axis", old ? 1 : -1, &axis_attr)) != QD_OK)
        return st;
    int64_t outer, n, inner;
    if (X->rank == 0) {
        outer = n = inner = 1;
    } else {
        if ((st = qd_nn_axis(a, axis_attr, X->rank, &axis)) != QD_OK)
            return st;
        if (old) {
            outer = qd_nn_prod(axis, X->dims);
            n = qd_nn_prod(X->rank - axis, X->dims + axis);
            inner = 1;
        } else {
            split_axis(X, axis, &outer, &n, &inner);
        }
    }
    if (outer * n * inner == 0)
        return QD_OK;
    const float *x = X->data;
    float *y = Y->data;
    if (inner == 1) {
        QD_NN_OMP_FOR(outer * n > QD_NN_PAR_MIN)
        for (int64_t o = 0; o < outer; o++) {
            const float *xr = x + o * n;
            float *yr = y + o * n;
            float mx = xr[0];
            for (int64_t j = 1; j < n; j++)
                mx = xr[j] > mx ? xr[j] : mx;
            double sum = 0.0;
            for (int64_t j = 0; j < n; j++) {
                float e = expf(xr[j] - mx);
                sum += e;
                if (!log_form)
                    yr[j] = e;
            }
            if (log_form) {
                float ls = (float)log(sum);
                for (int64_t j = 0; j < n; j++)
                    yr[j] = xr[j] - mx - ls;
            } else {
                float inv = (float)(1.0 / sum);
                for (int64_t j = 0; j < n; j++)
                    yr[j] *= inv;
            }
        }
        return QD_OK;
    }
    /* Strided axis: keep per-column max and sum in scratch rows so that
     * memory is read in order. */
    float *mx = qd_malloc((size_t)inner * sizeof *mx);
    double *sum = qd_malloc((size_t)inner * sizeof *sum);
    if (!mx || !sum) {
        qd_free(mx);
        qd_free(sum);
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * n * inner;
        float *yo = y + o * n * inner;
        for (int64_t i = 0; i < inner; i++) {
            mx[i] = xo[i];
            sum[i] = 0.0;
        }
        for (int64_t j = 1; j < n; j++)
            for (int64_t i = 0; i < inner; i++)
                mx[i] = xo[j * inner + i] > mx[i] ? xo[j * inner + i] : mx[i];
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < inner; i++) {
                float e = expf(xo[j * inner + i] - mx[i]);
                sum[i] += e;
                if (!log_form)
                    yo[j * inner + i] = e;
            }
        for (int64_t i = 0; i < inner; i++)
            sum[i] = log_form ? log(sum[i]) : 1.0 / sum[i];
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < inner; i++) {
                if (log_form)
                    yo[j * inner + i] = xo[j * inner + i] - mx[i] - (float)sum[i];
                else
                    yo[j * inner + i] *= (float)sum[i];
            }
    }
    qd_free(mx);
    qd_free(sum);
    return QD_OK;
}

qd_status qd_ref_softmax(const qd_kernel_args *a)
{
    return softmax(a, 0);
}

qd_status qd_ref_log_softmax(const qd_kernel_args *a)
{
    return softmax(a, 1);
}

/* ---- TopK ---- */

/* p goes before q: the larger (or smaller) value, ties broken by the lower
 * index as ONNX specifies. */
#define TOPK_BETTER(x, s, p, q, largest)                                                           \
    ((x)[(p) * (s)] == (x)[(q) * (s)]                                                              \
         ? (p) < (q)                                                                               \
         : ((largest) ? (x)[(p) * (s)] > (x)[(q) * (s)] : (x)[(p) * (s)] < (x)[(q) * (s)]))

/* Heap selection over the n indices in idx (values x[i * stride]): a heap
 * with the best on top, popped k times to the end, so idx[n-1-j] is the
 * j-th best. O(n + k log n). */
#define TOPK_IMPL(NAME, T)                                                                         \
    static void NAME##_sift(const T *x, int64_t s, int lg, int64_t *idx, int64_t root,             \
                            int64_t end)                                                           \
    {                                                                                              \
        for (;;) {                                                                                 \
            int64_t pick = 2 * root + 1;                                                           \
            if (pick >= end)                                                                       \
                return;                                                                            \
            if (pick + 1 < end && TOPK_BETTER(x, s, idx[pick + 1], idx[pick], lg))                 \
                pick++;                                                                            \
            if (!TOPK_BETTER(x, s, idx[pick], idx[root], lg))                                      \
                return;                                                                            \
            int64_t t = idx[root];                                                                 \
            idx[root] = idx[pick];                                                                 \
            idx[pick] = t;                                                                         \
            root = pick;                                                                           \
        }                                                                                          \
    }                                                                                              \
    static void NAME(const T *x, int64_t n, int64_t s, int lg, int64_t k, int64_t *idx)            \
    {                                                                                              \
        for (int64_t i = 0; i < n; i++)                                                            \
            idx[i] = i;                                                                            \
        for (int64_t r = n / 2 - 1; r >= 0; r--)                                                   \
            NAME##_sift(x, s, lg, idx, r, n);                                                      \
        for (int64_t j = 0, end = n; j < k && end > 0; j++) {                                      \
            end--;                                                                                 \
            int64_t t = idx[0];                                                                    \
            idx[0] = idx[end];                                                                     \
            idx[end] = t;                                                                          \
            NAME##_sift(x, s, lg, idx, 0, end);                                                    \
        }                                                                                          \
    }

TOPK_IMPL(topk_f32, float)
TOPK_IMPL(topk_f64, double)
TOPK_IMPL(topk_i32, int32_t)
TOPK_IMPL(topk_i64, int64_t)

qd_status qd_ref_topk(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *Kt = qd_nn_in(a, 1);
    qd_tensor *V = qd_nn_out(a, 0), *I = qd_nn_out(a, 1);
    qd_status st;
    if ((st = qd_nn_check_any(a, X, "input X")) != QD_OK ||
        (V && (st = qd_nn_check(a, V, X->dtype, "output Values")) != QD_OK) ||
        (I && (st = qd_nn_check(a, I, QD_DT_INT64, "output Indices")) != QD_OK))
        return st;
    qd_dtype dt = X->dtype;
    if (dt != QD_DT_FLOAT && dt != QD_DT_DOUBLE && dt != QD_DT_INT32 && dt != QD_DT_INT64)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference TopK for %s", qd_dtype_name(dt));
    int64_t axis_attr, largest, k;
    int axis = 0;
    if ((st = qd_node_attr_int(a->graph, a->node, "axis", -1, &axis_attr)) != QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "largest", 1, &largest)) != QD_OK ||
        (st = qd_nn_axis(a, axis_attr, X->rank, &axis)) != QD_OK)
        return st;
    /* k: the input from opset 10, the attribute before. "sorted" = 0 leaves
     * the order unspecified; sorted output satisfies it too. */
    if (Kt) {
        if ((st = qd_nn_check_any(a, Kt, "input K")) != QD_OK)
            return st;
        if (qd_nn_numel(Kt) != 1 || (Kt->dtype != QD_DT_INT64 && Kt->dtype != QD_DT_INT32))
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "K must be one int64");
        k = qd_nn_get_int(Kt, 0);
    } else if ((st = qd_node_attr_int(a->graph, a->node, "k", -1, &k)) != QD_OK) {
        return st;
    }
    int64_t outer, n, inner;
    split_axis(X, axis, &outer, &n, &inner);
    if (k < 0 || k > n)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "k = %lld is out of range [0, %lld]",
                          (long long)k, (long long)n);
    const qd_tensor *shape = V ? V : I;
    if (!shape)
        return QD_OK;
    if (shape->rank != X->rank || shape->dims[axis] != k ||
        qd_nn_numel(shape) != outer * k * inner || (V && I && qd_nn_numel(I) != qd_nn_numel(V)))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "outputs must have k = %lld along axis %d",
                          (long long)k, axis);
    if (outer * inner * k == 0)
        return QD_OK;
    int64_t *idx = qd_malloc((size_t)n * sizeof *idx);
    if (!idx)
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    size_t es = qd_dtype_size(dt);
    int lg = largest != 0;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            const char *xs = (const char *)X->data + (size_t)base * es;
            switch (dt) {
            case QD_DT_FLOAT: topk_f32((const float *)xs, n, inner, lg, k, idx); break;
            case QD_DT_DOUBLE: topk_f64((const double *)xs, n, inner, lg, k, idx); break;
            case QD_DT_INT32: topk_i32((const int32_t *)xs, n, inner, lg, k, idx); break;
            default: topk_i64((const int64_t *)xs, n, inner, lg, k, idx); break;
            }
            /* The selection leaves the best at the end, in reverse. */
            for (int64_t j = 0; j < k; j++) {
                int64_t src = idx[n - 1 - j];
                int64_t dst = (o * k + j) * inner + i;
                if (V)
                    memcpy((char *)V->data + (size_t)dst * es, xs + (size_t)(src * inner) * es,
                           es);
                if (I)
                    ((int64_t *)I->data)[dst] = src;
            }
        }
    }
    qd_free(idx);
    return QD_OK;
}

/* ---- CumSum ---- */

#define CUMSUM_IMPL(NAME, T)                                                                       \
    static void NAME(const T *x, T *y, int64_t outer, int64_t n, int64_t inner, int exclusive,     \
                     int reverse, T *run)                                                          \
    {                                                                                              \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            for (int64_t i = 0; i < inner; i++)                                                    \
                run[i] = 0;                                                                        \
            for (int64_t jj = 0; jj < n; jj++) {                                                   \
                int64_t j = reverse ? n - 1 - jj : jj;                                             \
                const T *xr = x + (o * n + j) * inner;                                             \
                T *yr = y + (o * n + j) * inner;                                                   \
                for (int64_t i = 0; i < inner; i++) {                                              \
                    T v = xr[i];                                                                   \
                    if (exclusive) {                                                               \
                        yr[i] = run[i];                                                            \
                        run[i] += v;                                                               \
                    } else {                                                                       \
                        run[i] += v;                                                               \
                        yr[i] = run[i];                                                            \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

CUMSUM_IMPL(cumsum_f32, float)
CUMSUM_IMPL(cumsum_f64, double)
/* Integers add through unsigned types: overflow wraps, no UB. */
CUMSUM_IMPL(cumsum_u32, uint32_t)
CUMSUM_IMPL(cumsum_u64, uint64_t)

qd_status qd_ref_cumsum(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *Ax = qd_nn_in(a, 1);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, X, "input x")) != QD_OK ||
        (st = qd_nn_check(a, Y, X->dtype, "output y")) != QD_OK ||
        (st = qd_nn_check_any(a, Ax, "input axis")) != QD_OK)
        return st;
    if (qd_nn_numel(Ax) != 1 || (Ax->dtype != QD_DT_INT32 && Ax->dtype != QD_DT_INT64))
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "axis must be one int32/int64");
    int64_t exclusive, reverse;
    int axis = 0;
    if ((st = qd_node_attr_int(a->graph, a->node, "exclusive", 0, &exclusive)) != QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "reverse", 0, &reverse)) != QD_OK ||
        (st = qd_nn_axis(a, qd_nn_get_int(Ax, 0), X->rank, &axis)) != QD_OK)
        return st;
    if (qd_nn_numel(Y) != qd_nn_numel(X))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "output must have the input's shape");
    int64_t outer, n, inner;
    split_axis(X, axis, &outer, &n, &inner);
    if (outer * n * inner == 0)
        return QD_OK;
    void *run = qd_malloc((size_t)inner * 8);
    if (!run)
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    int ex = exclusive != 0, rv = reverse != 0;
    switch (X->dtype) {
    case QD_DT_FLOAT: cumsum_f32(X->data, Y->data, outer, n, inner, ex, rv, run); break;
    case QD_DT_DOUBLE: cumsum_f64(X->data, Y->data, outer, n, inner, ex, rv, run); break;
    case QD_DT_INT32:
    case QD_DT_UINT32: cumsum_u32(X->data, Y->data, outer, n, inner, ex, rv, run); break;
    case QD_DT_INT64:
    case QD_DT_UINT64: cumsum_u64(X->data, Y->data, outer, n, inner, ex, rv, run); break;
    default:
        qd_free(run);
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference CumSum for %s",
                          qd_dtype_name(X->dtype));
    }
    qd_free(run);
    return QD_OK;
}
