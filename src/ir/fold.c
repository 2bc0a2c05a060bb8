/* Constant folding of shape-computation subgraphs.
 *
 * Torch exports compute Reshape targets, Expand shapes and Slice bounds at
 * run time from Shape(x). Once the input shape is fixed, those subgraphs are
 * constants; evaluating them here (on small tensors only) turns every shape
 * downstream static. Folding only sets the outputs' konst; removing the
 * folded nodes is a later pass's job. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/shape_internal.h"

/* Variadic Min/Max with more inputs than this are left alone. */
#define FOLD_MAX_INPUTS 8

typedef enum fold_result { FOLD_ERROR = -1, FOLD_NO = 0, FOLD_OK = 1 } fold_result;

static int is_intlike(qd_dtype d) { return qd_dtype_is_int(d) || d == QD_DT_BOOL; }

/* dst[i] = src[j], converting the type the way Cast does. FOLD_NO when a
 * float does not fit the integer type (Cast leaves that undefined). */
static fold_result copy_elem(qd_tensor *dst, int64_t i, const qd_tensor *src, int64_t j)
{
    if (is_intlike(src->dtype)) {
        if (is_intlike(dst->dtype))
            qd_tensor_set_i64(dst, i, qd_tensor_get_i64(src, j));
        else
            qd_tensor_set_f64(dst, i, src->dtype == QD_DT_UINT64 ? qd_tensor_get_f64(src, j)
                                                                 : (double)qd_tensor_get_i64(src, j));
        return FOLD_OK;
    }
    double v = qd_tensor_get_f64(src, j);
    if (qd_dtype_is_int(dst->dtype) && !(v > -9.2e18 && v < 9.2e18))
        return FOLD_NO;
    qd_tensor_set_f64(dst, i, v);
    return FOLD_OK;
}

static void next_index(int rank, const int64_t *dims, int64_t *idx)
{
    for (int i = rank - 1; i >= 0; i--) {
        if (++idx[i] < dims[i])
            return;
        idx[i] = 0;
    }
}

/* Strides of `in` read as if broadcast to out dims (0 where it repeats).
 * -1 when in does not broadcast to out. */
static int broadcast_strides(const qd_tensor *in, int rank, const int64_t *dims, int64_t *strides)
{
    if (in->rank > rank)
        return -1;
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        int k = i - (rank - in->rank);
        if (k < 0) {
            strides[i] = 0;
            continue;
        }
        if (in->dims[k] != dims[i] && in->dims[k] != 1)
            return -1;
        strides[i] = in->dims[k] == 1 ? 0 : s;
        s *= in->dims[k];
    }
    return 0;
}

static int64_t offset_of(int rank, const int64_t *idx, const int64_t *strides)
{
    int64_t off = 0;
    for (int i = 0; i < rank; i++)
        off += idx[i] * strides[i];
    return off;
}

/* ---- elementwise ---- */

/* Mod: the sign follows the divisor (Python's %) unless fmod=1, which
 * follows the dividend (C's fmod). */
static int64_t int_mod(int64_t a, int64_t b, int c_style, int *ok)
{
    if (b == 0) {
        *ok = 0;
        return 0;
    }
    if (b == -1)
        return 0; /* also avoids INT64_MIN % -1 */
    int64_t r = a % b;
    if (!c_style && r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return r;
}

static double float_mod(double a, double b, int c_style)
{
    double r = fmod(a, b);
    if (!c_style && r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return r;
}

static int64_t int_binary(qd_op op, int64_t a, int64_t b, int fmod, int *ok)
{
    /* Wrap like two's complement instead of overflowing. */
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    switch (op) {
    case QD_OP_ADD: return (int64_t)(ua + ub);
    case QD_OP_SUB: return (int64_t)(ua - ub);
    case QD_OP_MUL: return (int64_t)(ua * ub);
    case QD_OP_DIV:
        /* Integer Div truncates toward zero, as onnxruntime does. */
        if (b == 0 || (a == INT64_MIN && b == -1)) {
            *ok = 0;
            return 0;
        }
        return a / b;
    case QD_OP_MOD: return int_mod(a, b, fmod, ok);
    case QD_OP_MIN: return a < b ? a : b;
    case QD_OP_MAX: return a > b ? a : b;
    case QD_OP_EQUAL: return a == b;
    case QD_OP_LESS: return a < b;
    case QD_OP_LESS_OR_EQUAL: return a <= b;
    case QD_OP_GREATER: return a > b;
    case QD_OP_GREATER_OR_EQUAL: return a >= b;
    case QD_OP_AND: return a && b;
    case QD_OP_OR: return a || b;
    case QD_OP_XOR: return !a != !b;
    default: *ok = 0; return 0;
    }
}

static double float_binary(qd_op op, double a, double b, int fmod, int *ok)
{
    switch (op) {
    case QD_OP_ADD: return a + b;
    case QD_OP_SUB: return a - b;
    case QD_OP_MUL: return a * b;
    case QD_OP_DIV: return a / b;
    case QD_OP_MOD: return float_mod(a, b, fmod);
    case QD_OP_MIN: return a < b || isnan(a) ? a : b;
    case QD_OP_MAX: return a > b || isnan(a) ? a : b;
    case QD_OP_EQUAL: return a == b;
    case QD_OP_LESS: return a < b;
    case QD_OP_LESS_OR_EQUAL: return a <= b;
    case QD_OP_GREATER: return a > b;
    case QD_OP_GREATER_OR_EQUAL: return a >= b;
    default: *ok = 0; return 0;
    }
}

static int64_t int_unary(qd_op op, int64_t a)
{
    switch (op) {
    case QD_OP_NEG: return (int64_t)((uint64_t)0 - (uint64_t)a);
    case QD_OP_ABS: return a < 0 ? (int64_t)((uint64_t)0 - (uint64_t)a) : a;
    case QD_OP_NOT: return !a;
    default: return a; /* Floor, Ceil of integers */
    }
}

static double float_unary(qd_op op, double a)
{
    switch (op) {
    case QD_OP_NEG: return -a;
    case QD_OP_ABS: return fabs(a);
    case QD_OP_FLOOR: return floor(a);
    case QD_OP_CEIL: return ceil(a);
    case QD_OP_SQRT: return sqrt(a);
    default: return a;
    }
}

/* Unary, binary and variadic elementwise ops (broadcasting). */
static fold_result fold_elementwise(qd_graph *g, const qd_node *n, const qd_tensor **in,
                                    int n_in, qd_tensor *out)
{
    if (n_in < 1 || n_in > FOLD_MAX_INPUTS)
        return FOLD_NO;
    int64_t fmod_attr = 0;
    if (n->op == QD_OP_MOD && qd_node_attr_int(g, n, "fmod", 0, &fmod_attr) != QD_OK)
        return FOLD_ERROR;
    int fmod = fmod_attr != 0;
    int64_t strides[FOLD_MAX_INPUTS][QD_MAX_RANK], idx[QD_MAX_RANK] = {0};
    for (int k = 0; k < n_in; k++)
        if (broadcast_strides(in[k], out->rank, out->dims, strides[k]) != 0)
            return FOLD_NO;
    /* Integer math when the operands are integers (or bool); else double. */
    int ints = is_intlike(in[0]->dtype);
    int64_t count = qd_numel(out->rank, out->dims);
    for (int64_t i = 0; i < count; i++, next_index(out->rank, out->dims, idx)) {
        int ok = 1;
        int64_t off0 = offset_of(out->rank, idx, strides[0]);
        if (ints) {
            int64_t acc = qd_tensor_get_i64(in[0], off0);
            if (n_in == 1)
                acc = int_unary(n->op, acc);
            for (int k = 1; k < n_in && ok; k++)
                acc = int_binary(n->op, acc,
                                 qd_tensor_get_i64(in[k], offset_of(out->rank, idx, strides[k])),
                                 fmod, &ok);
            if (!ok)
                return FOLD_NO;
            if (is_intlike(out->dtype)) {
                qd_tensor_set_i64(out, i, acc);
            } else {
                qd_tensor_set_f64(out, i, (double)acc);
            }
        } else {
            double acc = qd_tensor_get_f64(in[0], off0);
            if (n_in == 1)
                acc = float_unary(n->op, acc);
            for (int k = 1; k < n_in && ok; k++)
                acc = float_binary(n->op, acc,
                                   qd_tensor_get_f64(in[k], offset_of(out->rank, idx, strides[k])),
                                   fmod, &ok);
            if (!ok || (qd_dtype_is_int(out->dtype) && !(acc > -9.2e18 && acc < 9.2e18)))
                return FOLD_NO;
            qd_tensor_set_f64(out, i, acc);
        }
    }
    return FOLD_OK;
}

static fold_result fold_where(const qd_tensor **in, qd_tensor *out)
{
    int64_t strides[3][QD_MAX_RANK], idx[QD_MAX_RANK] = {0};
    for (int k = 0; k < 3; k++)
        if (broadcast_strides(in[k], out->rank, out->dims, strides[k]) != 0)
            return FOLD_NO;
    int64_t count = qd_numel(out->rank, out->dims);
    for (int64_t i = 0; i < count; i++, next_index(out->rank, out->dims, idx)) {
        int pick = qd_tensor_get_i64(in[0], offset_of(out->rank, idx, strides[0])) ? 1 : 2;
        if (copy_elem(out, i, in[pick], offset_of(out->rank, idx, strides[pick])) != FOLD_OK)
            return FOLD_NO;
    }
    return FOLD_OK;
}

/* ---- data movement ---- */

/* Same elements in the same order (Reshape, Squeeze, Identity, Cast...). */
static fold_result fold_copy(const qd_tensor *in, qd_tensor *out)
{
    int64_t count = qd_numel(out->rank, out->dims);
    if (qd_numel(in->rank, in->dims) != count)
        return FOLD_NO;
    for (int64_t i = 0; i < count; i++)
        if (copy_elem(out, i, in, i) != FOLD_OK)
            return FOLD_NO;
    return FOLD_OK;
}

static fold_result fold_expand(const qd_tensor *in, qd_tensor *out)
{
    int64_t strides[QD_MAX_RANK], idx[QD_MAX_RANK] = {0};
    if (broadcast_strides(in, out->rank, out->dims, strides) != 0)
        return FOLD_NO;
    int64_t count = qd_numel(out->rank, out->dims);
    for (int64_t i = 0; i < count; i++, next_index(out->rank, out->dims, idx))
        if (copy_elem(out, i, in, offset_of(out->rank, idx, strides)) != FOLD_OK)
            return FOLD_NO;
    return FOLD_OK;
}

static fold_result fold_transpose(qd_graph *g, const qd_node *n, const qd_tensor *in,
                                  qd_tensor *out)
{
    const int64_t *perm;
    size_t np;
    if (qd_node_attr_ints(g, n, "perm", &perm, &np) != QD_OK)
        return FOLD_ERROR;
    if (in->rank != out->rank || (perm && np != (size_t)in->rank))
        return FOLD_NO;
    /* in_strides[k]: step in the input for output axis k. */
    int64_t in_strides[QD_MAX_RANK], perm_strides[QD_MAX_RANK], idx[QD_MAX_RANK] = {0};
    int64_t s = 1;
    for (int i = in->rank - 1; i >= 0; i--) {
        in_strides[i] = s;
        s *= in->dims[i];
    }
    for (int k = 0; k < out->rank; k++)
        perm_strides[k] = in_strides[perm ? perm[k] : out->rank - 1 - k];
    int64_t count = qd_numel(out->rank, out->dims);
    for (int64_t i = 0; i < count; i++, next_index(out->rank, out->dims, idx))
        if (copy_elem(out, i, in, offset_of(out->rank, idx, perm_strides)) != FOLD_OK)
            return FOLD_NO;
    return FOLD_OK;
}

static fold_result fold_concat(qd_graph *g, const qd_node *n, const qd_tensor **in, int n_in,
                               qd_tensor *out)
{
    int64_t axis;
    int a;
    if (qd_node_attr_int(g, n, "axis", 1, &axis) != QD_OK ||
        qd_axis(g, n, axis, out->rank, &a) != QD_OK)
        return FOLD_ERROR;
    int64_t outer = qd_numel(a, out->dims);
    int64_t pos = 0;
    for (int64_t o = 0; o < outer; o++) {
        for (int k = 0; k < n_in; k++) {
            if (in[k]->rank != out->rank)
                return FOLD_NO;
            int64_t block = qd_numel(out->rank - a, in[k]->dims + a);
            for (int64_t j = 0; j < block; j++)
                if (copy_elem(out, pos++, in[k], o * block + j) != FOLD_OK)
                    return FOLD_NO;
        }
    }
    return pos == qd_numel(out->rank, out->dims) ? FOLD_OK : FOLD_NO;
}

static fold_result fold_gather(qd_graph *g, const qd_node *n, const qd_tensor *data,
                               const qd_tensor *indices, qd_tensor *out)
{
    int64_t axis;
    int a;
    if (qd_node_attr_int(g, n, "axis", 0, &axis) != QD_OK ||
        qd_axis(g, n, axis, data->rank, &a) != QD_OK)
        return FOLD_ERROR;
    int64_t outer = qd_numel(a, data->dims), dim = data->dims[a];
    int64_t inner = qd_numel(data->rank - a - 1, data->dims + a + 1);
    int64_t n_idx = qd_numel(indices->rank, indices->dims);
    if (qd_numel(out->rank, out->dims) != outer * n_idx * inner)
        return FOLD_NO;
    int64_t pos = 0;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t k = qd_tensor_get_i64(indices, j);
            if (k < 0)
                k += dim;
            if (k < 0 || k >= dim)
                return FOLD_NO;
            for (int64_t e = 0; e < inner; e++)
                if (copy_elem(out, pos++, data, (o * dim + k) * inner + e) != FOLD_OK)
                    return FOLD_NO;
        }
    }
    return FOLD_OK;
}

static fold_result fold_slice(qd_graph *g, const qd_node *n, const qd_tensor *data,
                              qd_tensor *out)
{
    int64_t starts[QD_MAX_RANK], ends[QD_MAX_RANK], axes[QD_MAX_RANK], steps[QD_MAX_RANK];
    int ns, ne, na, nst;
    qd_list_state ss, se, sa, sst;
    if (qd_int_list(g, n, "starts", 1, starts, QD_MAX_RANK, &ns, &ss) != QD_OK ||
        qd_int_list(g, n, "ends", 2, ends, QD_MAX_RANK, &ne, &se) != QD_OK ||
        qd_int_list(g, n, "axes", 3, axes, QD_MAX_RANK, &na, &sa) != QD_OK ||
        qd_int_list(g, n, NULL, 4, steps, QD_MAX_RANK, &nst, &sst) != QD_OK)
        return FOLD_ERROR;
    if (ss != QD_LIST_KNOWN || se != QD_LIST_KNOWN || ns != ne ||
        (sa == QD_LIST_KNOWN && na != ns) || (sst == QD_LIST_KNOWN && nst != ns) ||
        sa == QD_LIST_UNKNOWN || sst == QD_LIST_UNKNOWN || data->rank != out->rank)
        return FOLD_NO;
    int64_t first[QD_MAX_RANK], step[QD_MAX_RANK];
    for (int i = 0; i < data->rank; i++) {
        first[i] = 0;
        step[i] = 1;
    }
    for (int i = 0; i < ns; i++) {
        int64_t ax = sa == QD_LIST_KNOWN ? axes[i] : i;
        if (ax < 0)
            ax += data->rank;
        int64_t st = sst == QD_LIST_KNOWN ? steps[i] : 1;
        if (ax < 0 || ax >= data->rank || st == 0)
            return FOLD_NO;
        int64_t len = qd_slice_axis(data->dims[ax], starts[i], ends[i], st, &first[ax]);
        if (len != out->dims[ax])
            return FOLD_NO;
        step[ax] = st;
    }
    int64_t in_strides[QD_MAX_RANK], idx[QD_MAX_RANK] = {0}, s = 1;
    for (int i = data->rank - 1; i >= 0; i--) {
        in_strides[i] = s;
        s *= data->dims[i];
    }
    int64_t count = qd_numel(out->rank, out->dims);
    for (int64_t i = 0; i < count; i++, next_index(out->rank, out->dims, idx)) {
        int64_t off = 0;
        for (int k = 0; k < out->rank; k++)
            off += (first[k] + idx[k] * step[k]) * in_strides[k];
        if (copy_elem(out, i, data, off) != FOLD_OK)
            return FOLD_NO;
    }
    return FOLD_OK;
}

/* ReduceSum / ReduceProd: accumulate every input element into its output
 * slot (reduced axes get stride 0). */
static fold_result fold_reduce(qd_graph *g, const qd_node *n, const qd_tensor *in, qd_tensor *out)
{
    int64_t axes[QD_MAX_RANK], keepdims, noop;
    int count;
    qd_list_state state;
    if (qd_int_list(g, n, "axes", 1, axes, QD_MAX_RANK, &count, &state) != QD_OK ||
        qd_node_attr_int(g, n, "keepdims", 1, &keepdims) != QD_OK ||
        qd_node_attr_int(g, n, "noop_with_empty_axes", 0, &noop) != QD_OK)
        return FOLD_ERROR;
    if (state == QD_LIST_UNKNOWN)
        return FOLD_NO;
    if (count == 0 && noop)
        return fold_copy(in, out);
    int mask[QD_MAX_RANK];
    for (int i = 0; i < in->rank; i++)
        mask[i] = count == 0;
    for (int i = 0; i < count; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + in->rank : axes[i];
        if (a < 0 || a >= in->rank)
            return FOLD_NO;
        mask[a] = 1;
    }
    int64_t ostrides[QD_MAX_RANK], s = 1;
    for (int i = in->rank - 1; i >= 0; i--) {
        ostrides[i] = mask[i] ? 0 : s;
        s *= mask[i] ? 1 : in->dims[i];
    }
    int64_t n_out = qd_numel(out->rank, out->dims), n_in = qd_numel(in->rank, in->dims);
    if (s != n_out)
        return FOLD_NO;
    int prod = n->op == QD_OP_REDUCE_PROD, ints = is_intlike(in->dtype);
    void *acc = qd_malloc((size_t)(n_out ? n_out : 1) * 8);
    if (!acc) {
        qd_node_fail(g, n, QD_STATUS_OUT_OF_MEMORY, "out of memory folding");
        return FOLD_ERROR;
    }
    int64_t *ai = acc;
    double *af = acc;
    for (int64_t i = 0; i < n_out; i++) {
        if (ints)
            ai[i] = prod;
        else
            af[i] = prod;
    }
    int64_t idx[QD_MAX_RANK] = {0};
    for (int64_t i = 0; i < n_in; i++, next_index(in->rank, in->dims, idx)) {
        int64_t o = offset_of(in->rank, idx, ostrides);
        if (ints) {
            uint64_t a = (uint64_t)ai[o], b = (uint64_t)qd_tensor_get_i64(in, i);
            ai[o] = (int64_t)(prod ? a * b : a + b);
        } else {
            double v = qd_tensor_get_f64(in, i);
            af[o] = prod ? af[o] * v : af[o] + v;
        }
    }
    for (int64_t i = 0; i < n_out; i++) {
        if (ints)
            qd_tensor_set_i64(out, i, ai[i]);
        else
            qd_tensor_set_f64(out, i, af[i]);
    }
    qd_free(acc);
    return FOLD_OK;
}

/* ---- sources ---- */

static fold_result fold_shape(qd_graph *g, const qd_node *n, const qd_value *x, qd_tensor *out)
{
    int s, e;
    if (qd_shape_attr_range(g, n, x->rank, &s, &e) != QD_OK)
        return FOLD_ERROR;
    if (qd_numel(out->rank, out->dims) != e - s)
        return FOLD_NO;
    for (int i = s; i < e; i++)
        qd_tensor_set_i64(out, i - s, x->dims[i]);
    return FOLD_OK;
}

static fold_result fold_constant(qd_graph *g, const qd_node *n, qd_tensor *out)
{
    const qd_attr *a;
    int64_t count = qd_numel(out->rank, out->dims);
    if ((a = qd_node_attr(n, "value"))) {
        const qd_tensor *t;
        if (qd_node_attr_tensor(g, n, "value", &t) != QD_OK)
            return FOLD_ERROR;
        if (!t || t->dtype != out->dtype || t->nbytes != out->nbytes || (t->nbytes && !t->data))
            return FOLD_NO;
        if (t->nbytes)
            memcpy(out->data, t->data, t->nbytes);
        return FOLD_OK;
    }
    if ((a = qd_node_attr(n, "value_float")) && a->type == QD_ATTR_FLOAT && count == 1) {
        qd_tensor_set_f64(out, 0, a->f);
        return FOLD_OK;
    }
    if ((a = qd_node_attr(n, "value_int")) && a->type == QD_ATTR_INT && count == 1) {
        qd_tensor_set_i64(out, 0, a->i);
        return FOLD_OK;
    }
    if ((a = qd_node_attr(n, "value_floats")) && a->type == QD_ATTR_FLOATS &&
        count == (int64_t)a->n) {
        for (size_t i = 0; i < a->n; i++)
            qd_tensor_set_f64(out, (int64_t)i, a->floats[i]);
        return FOLD_OK;
    }
    if ((a = qd_node_attr(n, "value_ints")) && a->type == QD_ATTR_INTS && count == (int64_t)a->n) {
        for (size_t i = 0; i < a->n; i++)
            qd_tensor_set_i64(out, (int64_t)i, a->ints[i]);
        return FOLD_OK;
    }
    return FOLD_NO;
}

static fold_result fold_constant_of_shape(qd_graph *g, const qd_node *n, qd_tensor *out)
{
    const qd_tensor *value;
    if (qd_node_attr_tensor(g, n, "value", &value) != QD_OK)
        return FOLD_ERROR;
    if (!value) /* float zeros: qd_tensor_new already zeroed the data */
        return FOLD_OK;
    if (value->dtype != out->dtype || qd_numel(value->rank, value->dims) != 1 || !value->data)
        return FOLD_NO;
    int64_t count = qd_numel(out->rank, out->dims);
    size_t es = qd_dtype_size(out->dtype);
    for (int64_t i = 0; i < count; i++)
        memcpy((char *)out->data + (size_t)i * es, value->data, es);
    return FOLD_OK;
}

static fold_result fold_range(const qd_tensor **in, qd_tensor *out)
{
    int64_t count = qd_numel(out->rank, out->dims);
    if (is_intlike(in[0]->dtype)) {
        uint64_t start = (uint64_t)qd_tensor_get_i64(in[0], 0),
                 delta = (uint64_t)qd_tensor_get_i64(in[2], 0);
        for (int64_t i = 0; i < count; i++)
            qd_tensor_set_i64(out, i, (int64_t)(start + (uint64_t)i * delta));
        return FOLD_OK;
    }
    double start = qd_tensor_get_f64(in[0], 0), delta = qd_tensor_get_f64(in[2], 0);
    for (int64_t i = 0; i < count; i++)
        qd_tensor_set_f64(out, i, start + (double)i * delta);
    return FOLD_OK;
}

/* ---- symbolic ---- */

/* A shape vector whose inputs are not all constant can still be known
 * element by element: Gather(Shape(x), 1) is 3 even while the batch is
 * symbolic. Folding it lets x.chunk(2, dim=1) and friends get static
 * shapes without fixing the batch. */
static int fold_symbolic(qd_graph *g, qd_node *n, qd_value *outv)
{
    if ((!qd_dtype_is_int(outv->dtype) && outv->dtype != QD_DT_BOOL) || outv->rank > 1)
        return 0;
    int64_t count = qd_value_numel(outv);
    if (count < 0 || count > QD_SYMVEC_MAX)
        return 0;
    /* Evaluate through the producer, not a konst left by an earlier run. */
    qd_tensor *old = outv->konst;
    qd_symvec sv;
    outv->konst = NULL;
    int ok = qd_symvec_eval(outv, &sv) && sv.n == count;
    outv->konst = old;
    for (int i = 0; ok && i < sv.n; i++)
        ok = sv.known[i];
    if (!ok)
        return 0;
    qd_tensor *t = qd_tensor_new(outv->dtype, outv->rank, outv->dims);
    if (!t) {
        qd_node_fail(g, n, QD_STATUS_OUT_OF_MEMORY, "out of memory folding");
        return -1;
    }
    for (int i = 0; i < sv.n; i++)
        qd_tensor_set_i64(t, i, sv.v[i]);
    qd_value_set_const(outv, t);
    return 1;
}

/* ---- driver ---- */

static int foldable(qd_op op)
{
    switch (op) {
    case QD_OP_SHAPE:
    case QD_OP_SIZE:
    case QD_OP_CONSTANT:
    case QD_OP_CONSTANT_OF_SHAPE:
    case QD_OP_RANGE:
    case QD_OP_GATHER:
    case QD_OP_CONCAT:
    case QD_OP_SLICE:
    case QD_OP_TRANSPOSE:
    case QD_OP_EXPAND:
    case QD_OP_RESHAPE:
    case QD_OP_SQUEEZE:
    case QD_OP_UNSQUEEZE:
    case QD_OP_FLATTEN:
    case QD_OP_IDENTITY:
    case QD_OP_CAST:
    case QD_OP_ADD:
    case QD_OP_SUB:
    case QD_OP_MUL:
    case QD_OP_DIV:
    case QD_OP_MOD:
    case QD_OP_MIN:
    case QD_OP_MAX:
    case QD_OP_EQUAL:
    case QD_OP_LESS:
    case QD_OP_LESS_OR_EQUAL:
    case QD_OP_GREATER:
    case QD_OP_GREATER_OR_EQUAL:
    case QD_OP_AND:
    case QD_OP_OR:
    case QD_OP_XOR:
    case QD_OP_NOT:
    case QD_OP_WHERE:
    case QD_OP_NEG:
    case QD_OP_ABS:
    case QD_OP_FLOOR:
    case QD_OP_CEIL:
    case QD_OP_SQRT:
    case QD_OP_REDUCE_SUM:
    case QD_OP_REDUCE_PROD: return 1;
    default: return 0;
    }
}

static fold_result compute(qd_graph *g, const qd_node *n, const qd_tensor **in, int n_in,
                           qd_tensor *out)
{
    switch (n->op) {
    case QD_OP_SHAPE: return fold_shape(g, n, n->inputs[0], out);
    case QD_OP_SIZE:
        qd_tensor_set_i64(out, 0, qd_value_numel(n->inputs[0]));
        return FOLD_OK;
    case QD_OP_CONSTANT: return fold_constant(g, n, out);
    case QD_OP_CONSTANT_OF_SHAPE: return fold_constant_of_shape(g, n, out);
    case QD_OP_RANGE: return n_in >= 3 ? fold_range(in, out) : FOLD_NO;
    case QD_OP_GATHER: return n_in >= 2 ? fold_gather(g, n, in[0], in[1], out) : FOLD_NO;
    case QD_OP_CONCAT: return fold_concat(g, n, in, n_in, out);
    case QD_OP_SLICE: return fold_slice(g, n, in[0], out);
    case QD_OP_TRANSPOSE: return fold_transpose(g, n, in[0], out);
    case QD_OP_EXPAND: return fold_expand(in[0], out);
    case QD_OP_RESHAPE:
    case QD_OP_SQUEEZE:
    case QD_OP_UNSQUEEZE:
    case QD_OP_FLATTEN:
    case QD_OP_IDENTITY:
    case QD_OP_CAST: return fold_copy(in[0], out);
    case QD_OP_WHERE: return n_in == 3 ? fold_where(in, out) : FOLD_NO;
    case QD_OP_REDUCE_SUM:
    case QD_OP_REDUCE_PROD: return fold_reduce(g, n, in[0], out);
    default: return fold_elementwise(g, n, in, n_in, out);
    }
}

int qd_fold_node(qd_graph *g, qd_node *n)
{
    if (!foldable(n->op) || n->n_outputs < 1 || !n->outputs[0])
        return 0;
    for (int i = 1; i < n->n_outputs; i++)
        if (n->outputs[i])
            return 0; /* every foldable op has one output */
    qd_value *outv = n->outputs[0];
    if (!qd_value_shape_known(outv) || outv->rank > QD_MAX_RANK)
        return 0;
    int64_t count = qd_value_numel(outv);
    if (count < 0 || count > QD_FOLD_MAX_ELEMENTS || qd_dtype_size(outv->dtype) == 0)
        return 0;

    /* Shape and Size need only the input's shape; the rest need data. Data
     * inputs are the first `needed` ones (Reshape's shape input is read by
     * its shape function already). */
    const qd_tensor *in[FOLD_MAX_INPUTS] = {0};
    int n_in = 0;
    if (n->op == QD_OP_SHAPE || n->op == QD_OP_SIZE) {
        if (n->n_inputs < 1 || !n->inputs[0])
            return 0;
        if (!qd_value_shape_known(n->inputs[0]))
            return n->op == QD_OP_SHAPE ? fold_symbolic(g, n, outv) : 0;
    } else {
        if (n->n_inputs > FOLD_MAX_INPUTS && n->op != QD_OP_CONCAT)
            return 0;
        for (int i = 0; i < n->n_inputs; i++) {
            const qd_value *v = n->inputs[i];
            if (!v)
                continue;
            if (!v->konst || (v->konst->nbytes && !v->konst->data))
                return fold_symbolic(g, n, outv);
            if (i < FOLD_MAX_INPUTS && i == n_in)
                in[n_in++] = v->konst;
        }
        if (n->op != QD_OP_CONSTANT && (n->n_inputs < 1 || !n->inputs[0]))
            return 0;
    }

    qd_tensor *t = qd_tensor_new(outv->dtype, outv->rank, outv->dims);
    if (!t) {
        qd_node_fail(g, n, QD_STATUS_OUT_OF_MEMORY, "out of memory folding");
        return -1;
    }
    fold_result r;
    if (n->op == QD_OP_CONCAT && n->n_inputs > FOLD_MAX_INPUTS) {
        /* Concat of many pieces: gather every konst. */
        const qd_tensor **all = qd_calloc((size_t)n->n_inputs, sizeof *all);
        if (!all) {
            qd_tensor_delete(t);
            qd_node_fail(g, n, QD_STATUS_OUT_OF_MEMORY, "out of memory folding");
            return -1;
        }
        for (int i = 0; i < n->n_inputs; i++)
            all[i] = n->inputs[i]->konst;
        r = fold_concat(g, n, all, n->n_inputs, t);
        qd_free(all);
    } else {
        r = compute(g, n, in, n_in, t);
    }
    if (r != FOLD_OK) {
        qd_tensor_delete(t);
        return r == FOLD_ERROR ? -1 : 0;
    }
    qd_value_set_const(outv, t);
    return 1;
}
