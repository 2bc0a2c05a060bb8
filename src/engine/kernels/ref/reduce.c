/* Reference Reduce* (axes as attribute, or as input for ReduceSum >= 13
 * and every Reduce* >= 18; keepdims; noop_with_empty_axes), ArgMax and
 * ArgMin.
 *
 * Reductions accumulate in double (float inputs) or int64 (integer inputs)
 * into a buffer of the output's size: the input is walked once in memory
 * order and each element lands on out[offset] where reduced axes have
 * stride 0. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/ref/ref_nn.h"

typedef enum red_op {
    RED_SUM,
    RED_MEAN,
    RED_MAX,
    RED_MIN,
    RED_PROD,
    RED_L1,
    RED_L2,
    RED_SUM_SQUARE,
    RED_LOG_SUM,
    RED_LOG_SUM_EXP,
} red_op;

typedef struct red_shape {
    int rank;
    int64_t dims[QD_MAX_RANK];
    int64_t ostride[QD_MAX_RANK]; /* output stride per input axis, 0 if reduced */
    int64_t n_in, n_out;
} red_shape;

/* Calls BODY(i, o) for every input element i with its output offset o. The
 * innermost axis is a plain loop. */
#define RED_WALK(s, BODY)                                                                          \
    do {                                                                                           \
        int64_t idx_[QD_MAX_RANK] = {0};                                                           \
        const int r_ = (s)->rank;                                                                  \
        const int64_t last_ = r_ ? (s)->dims[r_ - 1] : 1;                                          \
        const int64_t ls_ = r_ ? (s)->ostride[r_ - 1] : 0;                                         \
        if ((s)->n_in == 0)                                                                        \
            break;                                                                                 \
        for (int64_t i0_ = 0; i0_ < (s)->n_in; i0_ += last_) {                                     \
            int64_t ob_ = 0;                                                                       \
            for (int d_ = 0; d_ < r_ - 1; d_++)                                                    \
                ob_ += idx_[d_] * (s)->ostride[d_];                                                \
            for (int64_t j_ = 0; j_ < last_; j_++) {                                               \
                const int64_t i = i0_ + j_, o = ob_ + j_ * ls_;                                    \
                BODY;                                                                              \
            }                                                                                      \
            for (int d_ = r_ - 2; d_ >= 0; d_--) {                                                 \
                if (++idx_[d_] < (s)->dims[d_])                                                    \
                    break;                                                                         \
                idx_[d_] = 0;                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Floating inputs: accumulate in double. */
#define RED_FLOAT(NAME, T)                                                                         \
    static void NAME(const red_shape *s, red_op op, const T *x, T *y, double *acc)                 \
    {                                                                                              \
        int64_t cnt = s->n_out ? s->n_in / s->n_out : 0;                                           \
        double init = 0.0;                                                                         \
        if (op == RED_MAX || op == RED_LOG_SUM_EXP)                                                \
            init = -INFINITY;                                                                      \
        else if (op == RED_MIN)                                                                    \
            init = INFINITY;                                                                       \
        else if (op == RED_PROD)                                                                   \
            init = 1.0;                                                                            \
        for (int64_t o = 0; o < s->n_out; o++)                                                     \
            acc[o] = init;                                                                         \
        switch (op) {                                                                              \
        case RED_SUM:                                                                              \
        case RED_MEAN:                                                                             \
        case RED_LOG_SUM: RED_WALK(s, acc[o] += x[i]); break;                                      \
        case RED_MAX:                                                                              \
        case RED_LOG_SUM_EXP: RED_WALK(s, acc[o] = x[i] > acc[o] ? x[i] : acc[o]); break;          \
        case RED_MIN: RED_WALK(s, acc[o] = x[i] < acc[o] ? x[i] : acc[o]); break;                  \
        case RED_PROD: RED_WALK(s, acc[o] *= x[i]); break;                                         \
        case RED_L1: RED_WALK(s, acc[o] += fabs((double)x[i])); break;                             \
        case RED_L2:                                                                               \
        case RED_SUM_SQUARE: RED_WALK(s, acc[o] += (double)x[i] * x[i]); break;                    \
        }                                                                                          \
        if (op == RED_LOG_SUM_EXP) {                                                               \
            /* Second pass: log(sum(exp(x - max))) + max, stable for large x. */                   \
            double *mx = acc + s->n_out;                                                           \
            for (int64_t o = 0; o < s->n_out; o++) {                                               \
                mx[o] = isinf(acc[o]) ? 0.0 : acc[o];                                              \
                acc[o] = 0.0;                                                                      \
            }                                                                                      \
            RED_WALK(s, acc[o] += exp(x[i] - mx[o]));                                              \
            for (int64_t o = 0; o < s->n_out; o++)                                                 \
                acc[o] = log(acc[o]) + mx[o];                                                      \
        }                                                                                          \
        for (int64_t o = 0; o < s->n_out; o++) {                                                   \
            double v = acc[o];                                                                     \
            if (op == RED_MEAN)                                                                    \
                v = cnt ? v / (double)cnt : NAN;                                                   \
            else if (op == RED_L2)                                                                 \
                v = sqrt(v);                                                                       \
            else if (op == RED_LOG_SUM)                                                            \
                v = log(v);                                                                        \
            y[o] = (T)v;                                                                           \
        }                                                                                          \
    }

RED_FLOAT(red_f32, float)
RED_FLOAT(red_f64, double)

static inline uint64_t iabs64(int64_t v)
{
    return v < 0 ? -(uint64_t)v : (uint64_t)v;
}

/* Integer inputs: accumulate in int64 (wrapping through uint64 for sums
 * and products); mean truncates like integer division; L2 and the log
 * forms go through double. */
#define RED_INT(NAME, T, TMIN, TMAX)                                                               \
    static void NAME(const red_shape *s, red_op op, const T *x, T *y, int64_t *acc)                \
    {                                                                                              \
        int64_t cnt = s->n_out ? s->n_in / s->n_out : 0;                                           \
        int64_t init = 0;                                                                          \
        if (op == RED_MAX)                                                                         \
            init = TMIN;                                                                           \
        else if (op == RED_MIN)                                                                    \
            init = TMAX;                                                                           \
        else if (op == RED_PROD)                                                                   \
            init = 1;                                                                              \
        uint64_t *u = (uint64_t *)acc;                                                             \
        for (int64_t o = 0; o < s->n_out; o++)                                                     \
            acc[o] = init;                                                                         \
        switch (op) {                                                                              \
        case RED_SUM:                                                                              \
        case RED_MEAN: RED_WALK(s, u[o] += (uint64_t)(int64_t)x[i]); break;                        \
        case RED_MAX: RED_WALK(s, acc[o] = x[i] > acc[o] ? x[i] : acc[o]); break;                  \
        case RED_MIN: RED_WALK(s, acc[o] = x[i] < acc[o] ? x[i] : acc[o]); break;                  \
        case RED_PROD: RED_WALK(s, u[o] *= (uint64_t)(int64_t)x[i]); break;                        \
        case RED_L1: RED_WALK(s, u[o] += iabs64(x[i])); break;                                     \
        case RED_L2:                                                                               \
        case RED_SUM_SQUARE:                                                                       \
            RED_WALK(s, u[o] += (uint64_t)(int64_t)x[i] * (uint64_t)(int64_t)x[i]);                \
            break;                                                                                 \
        default: break;                                                                            \
        }                                                                                          \
        for (int64_t o = 0; o < s->n_out; o++) {                                                   \
            int64_t v = acc[o];                                                                    \
            if (op == RED_MEAN)                                                                    \
                v = cnt ? v / cnt : 0;                                                             \
            else if (op == RED_L2)                                                                 \
                v = (int64_t)sqrt((double)v);                                                      \
            y[o] = (T)v;                                                                           \
        }                                                                                          \
    }

RED_INT(red_i32, int32_t, INT32_MIN, INT32_MAX)
RED_INT(red_i64, int64_t, INT64_MIN, INT64_MAX)
RED_INT(red_i8, int8_t, INT8_MIN, INT8_MAX)
RED_INT(red_u8, uint8_t, 0, UINT8_MAX)

/* The axes to reduce: from input 1 when the node has one (ReduceSum >= 13,
 * all Reduce* >= 18), else from the attribute. *n = 0: none given. */
static qd_status read_axes(const qd_kernel_args *a, int rank, int *reduce, int *n)
{
    const qd_tensor *ax = qd_nn_in(a, 1);
    qd_status st;
    int64_t v[QD_MAX_RANK];
    int64_t count = 0;
    if (ax) {
        if ((st = qd_nn_check_any(a, ax, "axes")) != QD_OK)
            return st;
        if (ax->dtype != QD_DT_INT64 && ax->dtype != QD_DT_INT32)
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "axes must be int64");
        count = qd_nn_numel(ax);
        if (count > rank)
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "%lld axes for rank %d",
                              (long long)count, rank);
        for (int64_t i = 0; i < count; i++)
            v[i] = qd_nn_get_int(ax, i);
    } else {
        const int64_t *attr;
        size_t na;
        if ((st = qd_node_attr_ints(a->graph, a->node, "axes", &attr, &na)) != QD_OK)
            return st;
        if (na > (size_t)rank)
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "%zu axes for rank %d", na, rank);
        count = (int64_t)na;
        for (size_t i = 0; i < na; i++)
            v[i] = attr[i];
    }
    for (int i = 0; i < rank; i++)
        reduce[i] = 0;
    for (int64_t i = 0; i < count; i++) {
        int d;
        if ((st = qd_nn_axis(a, v[i], rank, &d)) != QD_OK)
            return st;
        if (reduce[d])
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "axis %d is repeated", d);
        reduce[d] = 1;
    }
    *n = (int)count;
    return QD_OK;
}

static qd_status reduce(const qd_kernel_args *a, red_op op)
{
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, X, "input data")) != QD_OK ||
        (st = qd_nn_check(a, Y, X->dtype, "output reduced")) != QD_OK)
        return st;
    qd_dtype dt = X->dtype;
    int is_float = dt == QD_DT_FLOAT || dt == QD_DT_DOUBLE;
    if (!is_float && dt != QD_DT_INT32 && dt != QD_DT_INT64 && dt != QD_DT_INT8 &&
        dt != QD_DT_UINT8)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference reduction for %s",
                          qd_dtype_name(dt));
    if (!is_float && (op == RED_LOG_SUM || op == RED_LOG_SUM_EXP))
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no integer reference for this reduction");
    int64_t noop;
    int reduce_ax[QD_MAX_RANK], n_axes = 0;
    if ((st = qd_node_attr_int(a->graph, a->node, "noop_with_empty_axes", 0, &noop)) != QD_OK ||
        (st = read_axes(a, X->rank, reduce_ax, &n_axes)) != QD_OK)
        return st;
    /* No axes: all of them, unless noop_with_empty_axes keeps every axis
     * (each output then reduces a single element). */
    if (n_axes == 0)
        for (int i = 0; i < X->rank; i++)
            reduce_ax[i] = !noop;

    red_shape s;
    s.rank = X->rank;
    s.n_in = qd_nn_numel(X);
    s.n_out = 1;
    for (int i = X->rank - 1; i >= 0; i--) {
        s.dims[i] = X->dims[i];
        s.ostride[i] = reduce_ax[i] ? 0 : s.n_out;
        if (!reduce_ax[i])
            s.n_out *= X->dims[i];
    }
    if (qd_nn_numel(Y) != s.n_out)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "output has %lld elements, expected %lld",
                          (long long)qd_nn_numel(Y), (long long)s.n_out);
    /* LogSumExp keeps the maxima beside the sums. */
    size_t n_acc = (size_t)(s.n_out ? s.n_out : 1) * 2;
    void *acc = qd_malloc(n_acc * 8);
    if (!acc)
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    switch (dt) {
    case QD_DT_FLOAT: red_f32(&s, op, X->data, Y->data, acc); break;
    case QD_DT_DOUBLE: red_f64(&s, op, X->data, Y->data, acc); break;
    case QD_DT_INT32: red_i32(&s, op, X->data, Y->data, acc); break;
    case QD_DT_INT64: red_i64(&s, op, X->data, Y->data, acc); break;
    case QD_DT_INT8: red_i8(&s, op, X->data, Y->data, acc); break;
    default: red_u8(&s, op, X->data, Y->data, acc); break;
    }
    qd_free(acc);
    return QD_OK;
}

qd_status qd_ref_reduce_mean(const qd_kernel_args *a) { return reduce(a, RED_MEAN); }
qd_status qd_ref_reduce_sum(const qd_kernel_args *a) { return reduce(a, RED_SUM); }
qd_status qd_ref_reduce_max(const qd_kernel_args *a) { return reduce(a, RED_MAX); }
qd_status qd_ref_reduce_min(const qd_kernel_args *a) { return reduce(a, RED_MIN); }
qd_status qd_ref_reduce_prod(const qd_kernel_args *a) { return reduce(a, RED_PROD); }
qd_status qd_ref_reduce_l1(const qd_kernel_args *a) { return reduce(a, RED_L1); }
qd_status qd_ref_reduce_l2(const qd_kernel_args *a) { return reduce(a, RED_L2); }
qd_status qd_ref_reduce_sum_square(const qd_kernel_args *a) { return reduce(a, RED_SUM_SQUARE); }
qd_status qd_ref_reduce_log_sum(const qd_kernel_args *a) { return reduce(a, RED_LOG_SUM); }
qd_status qd_ref_reduce_log_sum_exp(const qd_kernel_args *a) { return reduce(a, RED_LOG_SUM_EXP); }

/* ---- ArgMax / ArgMin ---- */

/* Walks [outer, n, inner] with j (the reduced axis) outside the inner loop
 * so rows are read contiguously; best[] holds the running extreme. */
#define ARG_REDUCE(NAME, T)                                                                        \
    static void NAME(const T *x, int64_t outer, int64_t n, int64_t inner, int is_max, int last,    \
                     int64_t *y, T *best)                                                          \
    {                                                                                              \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *xo = x + o * n * inner;                                                       \
            int64_t *yo = y + o * inner;                                                           \
            for (int64_t i = 0; i < inner; i++) {                                                  \
                best[i] = xo[i];                                                                   \
                yo[i] = 0;                                                                         \
            }                                                                                      \
            for (int64_t j = 1; j < n; j++) {                                                      \
                const T *xr = xo + j * inner;                                                      \
                for (int64_t i = 0; i < inner; i++) {                                              \
                    T v = xr[i];                                                                   \
                    int better = is_max ? v > best[i] : v < best[i];                               \
                    if (better || (last && v == best[i])) {                                        \
                        best[i] = v;                                                               \
                        yo[i] = j;                                                                 \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

ARG_REDUCE(arg_f32, float)
ARG_REDUCE(arg_f64, double)
ARG_REDUCE(arg_i32, int32_t)
ARG_REDUCE(arg_i64, int64_t)
ARG_REDUCE(arg_i8, int8_t)
ARG_REDUCE(arg_u8, uint8_t)

static qd_status arg_reduce(const qd_kernel_args *a, int is_max)
{
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, X, "input data")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_INT64, "output reduced")) != QD_OK)
        return st;
    int64_t axis_attr, last;
    int axis = 0;
    if ((st = qd_node_attr_int(a->graph, a->node, "axis", 0, &axis_attr)) != QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "select_last_index", 0, &last)) != QD_OK ||
        (st = qd_nn_axis(a, axis_attr, X->rank, &axis)) != QD_OK)
        return st;
    int64_t outer = qd_nn_prod(axis, X->dims), n = X->dims[axis];
    int64_t inner = qd_nn_prod(X->rank - axis - 1, X->dims + axis + 1);
    if (qd_nn_numel(Y) != outer * inner)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "output has %lld elements, expected %lld",
                          (long long)qd_nn_numel(Y), (long long)(outer * inner));
    if (outer * inner == 0)
        return QD_OK;
    if (n == 0)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "cannot reduce an empty axis");
    void *best = qd_malloc((size_t)inner * 8);
    if (!best)
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    int l = last != 0;
    switch (X->dtype) {
    case QD_DT_FLOAT: arg_f32(X->data, outer, n, inner, is_max, l, Y->data, best); break;
    case QD_DT_DOUBLE: arg_f64(X->data, outer, n, inner, is_max, l, Y->data, best); break;
    case QD_DT_INT32: arg_i32(X->data, outer, n, inner, is_max, l, Y->data, best); break;
    case QD_DT_INT64: arg_i64(X->data, outer, n, inner, is_max, l, Y->data, best); break;
    case QD_DT_INT8: arg_i8(X->data, outer, n, inner, is_max, l, Y->data, best); break;
    case QD_DT_UINT8: arg_u8(X->data, outer, n, inner, is_max, l, Y->data, best); break;
    default:
        qd_free(best);
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference %s for %s",
                          is_max ? "ArgMax" : "ArgMin", qd_dtype_name(X->dtype));
    }
    qd_free(best);
    return QD_OK;
}

qd_status qd_ref_arg_max(const qd_kernel_args *a) { return arg_reduce(a, 1); }
qd_status qd_ref_arg_min(const qd_kernel_args *a) { return arg_reduce(a, 0); }
