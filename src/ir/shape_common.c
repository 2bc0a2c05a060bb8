/* The shape-function table and the helpers every shape function uses. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/shape_internal.h"

static const qd_shape_fn SHAPE_FNS[] = {
#define QD_OP(id, onnx_name, since, shape_fn) qd_shape_##shape_fn,
#include "ir/ops.def"
#undef QD_OP
};

_Static_assert(sizeof SHAPE_FNS / sizeof SHAPE_FNS[0] == QD_OP_COUNT,
               "ops.def and the shape table disagree");

qd_shape_fn qd_shape_fn_of(qd_op op)
{
    return (unsigned)op < QD_OP_COUNT ? SHAPE_FNS[op] : NULL;
}

/* ---- shapes under construction ---- */

void qd_shp_unknown(qd_shp *s)
{
    memset(s, 0, sizeof *s);
    s->rank = -1;
    for (int i = 0; i < QD_MAX_RANK; i++)
        s->d[i] = -1;
}

void qd_shp_unknown_dims(qd_shp *s, int rank)
{
    qd_shp_unknown(s);
    s->rank = rank;
}

void qd_shp_of(const qd_value *v, qd_shp *s)
{
    qd_shp_unknown(s);
    if (!v || v->rank < 0 || v->rank > QD_MAX_RANK)
        return;
    s->rank = v->rank;
    for (int i = 0; i < v->rank; i++) {
        s->d[i] = v->dims[i] < 0 ? -1 : v->dims[i];
        s->sym[i] = s->d[i] < 0 ? v->dim_params[i] : NULL;
    }
}

void qd_shp_copy_dim(qd_shp *dst, int j, const qd_shp *src, int i)
{
    dst->d[j] = src->d[i];
    dst->sym[j] = src->sym[i];
}

int qd_dim_same(int64_t a, const char *sa, int64_t b, const char *sb)
{
    if (a >= 0 || b >= 0)
        return a == b;
    return sa && sb && strcmp(sa, sb) == 0;
}

const char *qd_shp_str(const qd_shp *s, char *buf, size_t size)
{
    if (s->rank < 0) {
        snprintf(buf, size, "?");
        return buf;
    }
    if (s->rank == 0) {
        snprintf(buf, size, "scalar");
        return buf;
    }
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->rank && i < QD_MAX_RANK && off < size; i++) {
        const char *sep = i ? "x" : "";
        int w;
        if (s->d[i] >= 0)
            w = snprintf(buf + off, size - off, "%s%lld", sep, (long long)s->d[i]);
        else
            w = snprintf(buf + off, size - off, "%s%s", sep, s->sym[i] ? s->sym[i] : "?");
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return buf;
}

/* One broadcast dimension: 1 stretches; an unknown dim facing a known d > 1
 * must be d or 1, so the result is d; two unknowns agree only when they are
 * the same symbol. */
static int broadcast_dim(int64_t a, const char *sa, int64_t b, const char *sb, int64_t *out,
                         const char **sout)
{
    *sout = NULL;
    if (a == 1) {
        *out = b;
        *sout = sb;
    } else if (b == 1) {
        *out = a;
        *sout = sa;
    } else if (a >= 0 && b >= 0) {
        if (a != b)
            return -1;
        *out = a;
    } else if (a >= 0) {
        *out = a;
    } else if (b >= 0) {
        *out = b;
    } else {
        *out = -1;
        if (sa && sb && strcmp(sa, sb) == 0)
            *sout = sa;
    }
    return 0;
}

int qd_shp_broadcast(const qd_shp *a, const qd_shp *b, qd_shp *out)
{
    qd_shp r;
    qd_shp_unknown(&r);
    if (a->rank < 0 || b->rank < 0) {
        *out = r;
        return 0;
    }
    r.rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < r.rank; i++) {
        int ia = i - (r.rank - a->rank), ib = i - (r.rank - b->rank);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        const char *sa = ia >= 0 ? a->sym[ia] : NULL, *sb = ib >= 0 ? b->sym[ib] : NULL;
        if (broadcast_dim(da, sa, db, sb, &r.d[i], &r.sym[i]) != 0)
            return -1;
    }
    *out = r;
    return 0;
}

int qd_broadcast_shapes(int ra, const int64_t *da, int rb, const int64_t *db, int *rout,
                        int64_t *dout)
{
    if (ra < 0 || rb < 0 || ra > QD_MAX_RANK || rb > QD_MAX_RANK)
        return -1;
    qd_shp a, b, r;
    qd_shp_unknown_dims(&a, ra);
    qd_shp_unknown_dims(&b, rb);
    for (int i = 0; i < ra; i++)
        a.d[i] = da[i] < 0 ? -1 : da[i];
    for (int i = 0; i < rb; i++)
        b.d[i] = db[i] < 0 ? -1 : db[i];
    if (qd_shp_broadcast(&a, &b, &r) != 0)
        return -1;
    *rout = r.rank;
    for (int i = 0; i < r.rank; i++)
        dout[i] = r.d[i];
    return 0;
}

int64_t qd_shp_product(const qd_shp *s, int from, int to, const char **sym)
{
    int64_t p = 1;
    int n_unknown = 0;
    const char *lone = NULL;
    *sym = NULL;
    for (int i = from; i < to; i++) {
        if (s->d[i] < 0) {
            n_unknown++;
            lone = s->sym[i];
        } else if (qd_mul_i64(p, s->d[i], &p) != 0) {
            return -2;
        }
    }
    if (n_unknown == 0)
        return p;
    if (n_unknown == 1 && p == 1)
        *sym = lone;
    return -1;
}

/* ---- setting outputs ---- */

static qd_status copy_shape_names(qd_value *to, qd_dtype dtype, qd_shp *s)
{
    /* Copy names before freeing the old ones: they may be the same strings. */
    char *names[QD_MAX_RANK] = {0};
    for (int i = 0; i < s->rank; i++) {
        if (s->d[i] < 0 && s->sym[i] && !(names[i] = qd_strdup(s->sym[i]))) {
            for (int j = 0; j < i; j++)
                qd_free(names[j]);
            return QD_STATUS_OUT_OF_MEMORY;
        }
    }
    for (int i = 0; i < QD_MAX_RANK; i++) {
        qd_free(to->dim_params[i]);
        to->dim_params[i] = NULL;
    }
    qd_value_set_shape(to, dtype, s->rank, s->d);
    for (int i = 0; i < s->rank; i++)
        to->dim_params[i] = names[i];
    return QD_OK;
}

qd_status qd_shape_copy(qd_value *to, const qd_value *from, qd_dtype dtype)
{
    qd_shp s;
    qd_shp_of(from, &s);
    if (to == from) {
        to->dtype = dtype;
        return QD_OK;
    }
    return copy_shape_names(to, dtype, &s);
}

qd_status qd_set_output(qd_graph *g, qd_node *n, int index, qd_dtype dtype, const qd_shp *s)
{
    if (index < 0 || index >= n->n_outputs || !n->outputs[index])
        return QD_OK;
    qd_value *v = n->outputs[index];
    qd_shp want;
    if (s)
        want = *s;
    else
        qd_shp_unknown(&want);
    if (want.rank > QD_MAX_RANK)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED,
                            "output '%s' would have rank %d; at most %d is supported", v->name,
                            want.rank, QD_MAX_RANK);
    for (int i = 0; i < want.rank; i++) {
        if (want.d[i] < 0) {
            want.d[i] = -1;
        } else {
            want.sym[i] = NULL;
        }
    }
    if (dtype == QD_DT_UNDEFINED)
        dtype = v->dtype;
    /* Keep declared information that inference could not derive. */
    if (want.rank < 0 && v->rank >= 0 && v->rank <= QD_MAX_RANK) {
        v->dtype = dtype;
        return QD_OK;
    }
    if (want.rank >= 0 && want.rank == v->rank) {
        for (int i = 0; i < want.rank; i++) {
            if (want.d[i] < 0 && !want.sym[i]) {
                want.d[i] = v->dims[i] < 0 ? -1 : v->dims[i];
                want.sym[i] = want.d[i] < 0 ? v->dim_params[i] : NULL;
            }
        }
    }
    if (copy_shape_names(v, dtype, &want) != QD_OK)
        return qd_node_fail(g, n, QD_STATUS_OUT_OF_MEMORY, "out of memory setting the shape of '%s'",
                            v->name);
    return QD_OK;
}

/* ---- node helpers ---- */

qd_status qd_node_fail(qd_graph *g, const qd_node *n, qd_status status, const char *fmt, ...)
{
    char msg[QD_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qd_graph_fail(g, status, "node '%s' (%s): %s", n->name ? n->name : "?",
                         n->op_type ? n->op_type : "?", msg);
}

qd_status qd_need_inputs(qd_graph *g, const qd_node *n, int count)
{
    if (n->n_inputs < count)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "needs %d input%s, has %d", count,
                            count == 1 ? "" : "s", n->n_inputs);
    for (int i = 0; i < count; i++)
        if (!n->inputs[i])
            return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "input %d is required", i);
    return QD_OK;
}

qd_value *qd_input(const qd_node *n, int i)
{
    return i >= 0 && i < n->n_inputs ? n->inputs[i] : NULL;
}

qd_dtype qd_input_dtype(const qd_node *n, int i)
{
    const qd_value *v = qd_input(n, i);
    return v ? v->dtype : QD_DT_UNDEFINED;
}

int64_t qd_default_opset(const qd_graph *g) { return g->opset > 0 ? g->opset : QD_OPSET_LATEST; }

qd_status qd_axis(qd_graph *g, const qd_node *n, int64_t axis, int rank, int *out)
{
    if (axis < -(int64_t)rank || axis >= rank)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "axis %lld is out of range for rank %d",
                            (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return QD_OK;
}

int qd_mul_i64(int64_t a, int64_t b, int64_t *out) { return __builtin_mul_overflow(a, b, out) ? -1 : 0; }

int qd_add_i64(int64_t a, int64_t b, int64_t *out) { return __builtin_add_overflow(a, b, out) ? -1 : 0; }

int qd_dtype_is_int(qd_dtype dtype)
{
    switch (dtype) {
    case QD_DT_UINT8:
    case QD_DT_INT8:
    case QD_DT_UINT16:
    case QD_DT_INT16:
    case QD_DT_INT32:
    case QD_DT_INT64:
    case QD_DT_UINT32:
    case QD_DT_UINT64: return 1;
    default: return 0;
    }
}

int qd_const_ints(const qd_value *v, int64_t *out, int cap, int *count)
{
    *count = 0;
    if (!v || !v->konst || !qd_dtype_is_int(v->konst->dtype) || v->konst->rank > 1)
        return 0;
    int64_t n = qd_numel(v->konst->rank, v->konst->dims);
    if (n < 0)
        return 0;
    if (n > cap)
        return -1;
    for (int64_t i = 0; i < n; i++)
        out[i] = qd_tensor_get_i64(v->konst, i);
    *count = (int)n;
    return 1;
}

qd_status qd_int_list(qd_graph *g, const qd_node *n, const char *attr, int input, int64_t *out,
                      int cap, int *count, qd_list_state *state)
{
    *count = 0;
    *state = QD_LIST_ABSENT;
    if (attr && qd_node_attr(n, attr)) {
        const int64_t *vals;
        size_t nv;
        qd_status st = qd_node_attr_ints(g, n, attr, &vals, &nv);
        if (st != QD_OK)
            return st;
        if (nv > (size_t)cap)
            return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED, "attribute '%s' has %zu values", attr,
                                nv);
        if (nv)
            memcpy(out, vals, nv * sizeof *vals);
        *count = (int)nv;
        *state = QD_LIST_KNOWN;
        return QD_OK;
    }
    const qd_value *v = input >= 0 ? qd_input(n, input) : NULL;
    if (!v)
        return QD_OK;
    int r = qd_const_ints(v, out, cap, count);
    if (r < 0)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED, "input '%s' has too many values",
                            v->name);
    if (r == 0 && v->konst && v->konst->rank > 1)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "input '%s' must be 1-D", v->name);
    *state = r ? QD_LIST_KNOWN : QD_LIST_UNKNOWN;
    return QD_OK;
}
