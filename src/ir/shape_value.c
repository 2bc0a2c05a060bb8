/* Symbolic evaluation of shape vectors.
 *
 * With a symbolic batch, Shape(x) cannot be folded to a constant, yet torch
 * exports compute Reshape targets from it (Gather, Unsqueeze, Concat). Walking
 * back through those few ops gives each element as a number, a symbol, or
 * unknown, which is enough for Reshape/Expand/ConstantOfShape to keep
 * "batch" on their outputs. */
#include <string.h>

#include "ir/shape_internal.h"

/* Deep enough for real shape subgraphs, small enough to bound the cost. */
#define SYMVEC_MAX_DEPTH 32

static void sv_unknown(qd_symvec *s, int rank, int n)
{
    memset(s, 0, sizeof *s);
    s->rank = rank;
    s->n = n;
}

/* Fallback: only the element count, from the value's own shape. */
static int from_shape(const qd_value *v, qd_symvec *out)
{
    if (!qd_dtype_is_int(v->dtype) && v->dtype != QD_DT_BOOL)
        return 0;
    if (v->rank == 0) {
        sv_unknown(out, 0, 1);
        return 1;
    }
    if (v->rank == 1 && v->dims[0] >= 0 && v->dims[0] <= QD_SYMVEC_MAX) {
        sv_unknown(out, 1, (int)v->dims[0]);
        return 1;
    }
    return 0;
}

static int attr_int(const qd_node *n, const char *name, int64_t def, int64_t *out)
{
    const qd_attr *a = qd_node_attr(n, name);
    *out = def;
    if (!a)
        return 1;
    if (a->type != QD_ATTR_INT)
        return 0;
    *out = a->i;
    return 1;
}

/* A constant integer list, from attribute (older opsets) or input. */
static int list_of(const qd_node *n, const char *attr, int input, int64_t *out, int *count)
{
    const qd_attr *a = attr ? qd_node_attr(n, attr) : NULL;
    if (a) {
        if (a->type != QD_ATTR_INTS || a->n > QD_SYMVEC_MAX)
            return 0;
        memcpy(out, a->ints, a->n * sizeof *out);
        *count = (int)a->n;
        return 1;
    }
    return qd_const_ints(qd_input(n, input), out, QD_SYMVEC_MAX, count) == 1;
}

static int eval(const qd_value *v, qd_symvec *out, int depth);

static int eval_shape(const qd_node *n, qd_symvec *out)
{
    const qd_value *x = qd_input(n, 0);
    if (!x || x->rank < 0 || x->rank > QD_MAX_RANK)
        return 0;
    int64_t start, end, r = x->rank;
    if (!attr_int(n, "start", 0, &start) || !attr_int(n, "end", r, &end))
        return 0;
    if (start < 0)
        start += r;
    if (end < 0)
        end += r;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    sv_unknown(out, 1, end > start ? (int)(end - start) : 0);
    for (int i = 0; i < out->n; i++) {
        int k = (int)start + i;
        out->known[i] = x->dims[k] >= 0;
        out->v[i] = x->dims[k];
        out->sym[i] = x->dims[k] < 0 ? x->dim_params[k] : NULL;
    }
    return 1;
}

static int eval_gather(const qd_node *n, qd_symvec *out, int depth)
{
    qd_symvec data, idx;
    int64_t axis;
    if (!attr_int(n, "axis", 0, &axis) || (axis != 0 && axis != -1))
        return 0;
    if (!eval(qd_input(n, 0), &data, depth) || data.rank != 1)
        return 0;
    if (!eval(qd_input(n, 1), &idx, depth))
        return 0;
    sv_unknown(out, idx.rank, idx.n);
    for (int i = 0; i < idx.n; i++) {
        if (!idx.known[i])
            continue;
        int64_t k = idx.v[i] < 0 ? idx.v[i] + data.n : idx.v[i];
        if (k < 0 || k >= data.n)
            return 0;
        out->known[i] = data.known[k];
        out->v[i] = data.v[k];
        out->sym[i] = data.sym[k];
    }
    return 1;
}

static int eval_concat(const qd_node *n, qd_symvec *out, int depth)
{
    sv_unknown(out, 1, 0);
    for (int i = 0; i < n->n_inputs; i++) {
        qd_symvec part;
        if (!eval(n->inputs[i], &part, depth) || part.rank != 1 ||
            out->n + part.n > QD_SYMVEC_MAX)
            return 0;
        memcpy(out->v + out->n, part.v, (size_t)part.n * sizeof *part.v);
        memcpy(out->sym + out->n, part.sym, (size_t)part.n * sizeof *part.sym);
        memcpy(out->known + out->n, part.known, (size_t)part.n);
        out->n += part.n;
    }
    return 1;
}

static int eval_slice(const qd_node *n, qd_symvec *out, int depth)
{
    qd_symvec data;
    int64_t starts[QD_SYMVEC_MAX], ends[QD_SYMVEC_MAX], axes[QD_SYMVEC_MAX],
        steps[QD_SYMVEC_MAX];
    int ns, ne, na = 1, nst = 1;
    if (!eval(qd_input(n, 0), &data, depth) || data.rank != 1)
        return 0;
    if (!list_of(n, "starts", 1, starts, &ns) || !list_of(n, "ends", 2, ends, &ne) || ns != 1 ||
        ne != 1)
        return 0;
    axes[0] = 0;
    steps[0] = 1;
    if ((qd_node_attr(n, "axes") || qd_input(n, 3)) && !list_of(n, "axes", 3, axes, &na))
        return 0;
    if (qd_input(n, 4) && !list_of(n, NULL, 4, steps, &nst))
        return 0;
    if (na != 1 || nst != 1 || (axes[0] != 0 && axes[0] != -1) || steps[0] == 0)
        return 0;
    int64_t first;
    int64_t len = qd_slice_axis(data.n, starts[0], ends[0], steps[0], &first);
    sv_unknown(out, 1, (int)len);
    for (int i = 0; i < len; i++) {
        int64_t k = first + i * steps[0]; /* in range for every i < len */
        out->known[i] = data.known[k];
        out->v[i] = data.v[k];
        out->sym[i] = data.sym[k];
    }
    return 1;
}

/* Add/Sub/Mul/Div where one side is known and neutral keep the other's
 * symbol; known pairs are computed. */
static int eval_arith(const qd_node *n, qd_symvec *out, int depth)
{
    qd_symvec a, b;
    if (!eval(qd_input(n, 0), &a, depth) || !eval(qd_input(n, 1), &b, depth))
        return 0;
    if (a.n != b.n && a.n != 1 && b.n != 1)
        return 0;
    int count = a.n > b.n ? a.n : b.n;
    sv_unknown(out, a.rank > b.rank ? a.rank : b.rank, count);
    for (int i = 0; i < count; i++) {
        int ia = a.n == 1 ? 0 : i, ib = b.n == 1 ? 0 : i;
        int ka = a.known[ia], kb = b.known[ib];
        int64_t x = a.v[ia], y = b.v[ib], r = 0;
        int ok = ka && kb;
        switch (n->op) {
        case QD_OP_ADD:
            ok = ok && qd_add_i64(x, y, &r) == 0;
            if (!ok && ((kb && y == 0) || (ka && x == 0)))
                out->sym[i] = kb ? a.sym[ia] : b.sym[ib];
            break;
        case QD_OP_SUB:
            ok = ok && y != INT64_MIN && qd_add_i64(x, -y, &r) == 0;
            if (!ok && kb && y == 0)
                out->sym[i] = a.sym[ia];
            break;
        case QD_OP_MUL:
            ok = ok && qd_mul_i64(x, y, &r) == 0;
            if (!ok && ((kb && y == 1) || (ka && x == 1)))
                out->sym[i] = kb ? a.sym[ia] : b.sym[ib];
            break;
        default: /* DIV */
            ok = ok && y != 0 && !(x == INT64_MIN && y == -1);
            if (ok)
                r = x / y;
            else if (kb && y == 1)
                out->sym[i] = a.sym[ia];
            break;
        }
        out->known[i] = (unsigned char)ok;
        out->v[i] = ok ? r : 0;
    }
    return 1;
}

/* Equal: a symbol is a size, so it differs from any negative number and
 * equals itself. */
static int eval_equal(const qd_node *n, qd_symvec *out, int depth)
{
    qd_symvec a, b;
    if (!eval(qd_input(n, 0), &a, depth) || !eval(qd_input(n, 1), &b, depth))
        return 0;
    if (a.n != b.n && a.n != 1 && b.n != 1)
        return 0;
    int count = a.n > b.n ? a.n : b.n;
    sv_unknown(out, a.rank > b.rank ? a.rank : b.rank, count);
    for (int i = 0; i < count; i++) {
        int ia = a.n == 1 ? 0 : i, ib = b.n == 1 ? 0 : i;
        if (a.known[ia] && b.known[ib]) {
            out->v[i] = a.v[ia] == b.v[ib];
            out->known[i] = 1;
        } else if ((a.known[ia] && a.v[ia] < 0) || (b.known[ib] && b.v[ib] < 0)) {
            out->v[i] = 0;
            out->known[i] = 1;
        } else if (!a.known[ia] && !b.known[ib] && a.sym[ia] && b.sym[ib] &&
                   strcmp(a.sym[ia], b.sym[ib]) == 0) {
            out->v[i] = 1;
            out->known[i] = 1;
        }
    }
    return 1;
}

/* Where with a known condition picks elements (torch's expand(-1) idiom). */
static int eval_where(const qd_node *n, qd_symvec *out, int depth)
{
    qd_symvec c, x, y;
    if (!eval(qd_input(n, 0), &c, depth) || !eval(qd_input(n, 1), &x, depth) ||
        !eval(qd_input(n, 2), &y, depth))
        return 0;
    int count = c.n > x.n ? c.n : x.n;
    count = count > y.n ? count : y.n;
    if ((c.n != count && c.n != 1) || (x.n != count && x.n != 1) || (y.n != count && y.n != 1))
        return 0;
    int rank = c.rank > x.rank ? c.rank : x.rank;
    sv_unknown(out, rank > y.rank ? rank : y.rank, count);
    for (int i = 0; i < count; i++) {
        int ic = c.n == 1 ? 0 : i;
        if (!c.known[ic])
            continue;
        const qd_symvec *src = c.v[ic] ? &x : &y;
        int is = src->n == 1 ? 0 : i;
        out->known[i] = src->known[is];
        out->v[i] = src->v[is];
        out->sym[i] = src->sym[is];
    }
    return 1;
}

static int eval(const qd_value *v, qd_symvec *out, int depth)
{
    if (!v || depth > SYMVEC_MAX_DEPTH)
        return 0;
    if (v->konst) {
        const qd_tensor *t = v->konst;
        if (!(qd_dtype_is_int(t->dtype) || t->dtype == QD_DT_BOOL) || t->rank > 1)
            return 0;
        int64_t count = qd_numel(t->rank, t->dims);
        if (count < 0 || count > QD_SYMVEC_MAX)
            return 0;
        sv_unknown(out, t->rank, (int)count);
        for (int i = 0; i < count; i++) {
            out->v[i] = qd_tensor_get_i64(t, i);
            out->known[i] = 1;
        }
        return 1;
    }
    const qd_node *n = v->producer;
    int ok = 0;
    if (n && v->producer_output == 0) {
        depth++;
        switch (n->op) {
        case QD_OP_SHAPE: ok = eval_shape(n, out); break;
        case QD_OP_GATHER: ok = eval_gather(n, out, depth); break;
        case QD_OP_CONCAT: ok = eval_concat(n, out, depth); break;
        case QD_OP_SLICE: ok = eval_slice(n, out, depth); break;
        case QD_OP_IDENTITY: ok = eval(qd_input(n, 0), out, depth); break;
        case QD_OP_CAST: {
            int64_t to;
            ok = attr_int(n, "to", 0, &to) && qd_dtype_is_int((qd_dtype)to) &&
                 eval(qd_input(n, 0), out, depth);
            break;
        }
        case QD_OP_UNSQUEEZE: /* scalar -> [1] */
            ok = eval(qd_input(n, 0), out, depth) && out->rank == 0;
            if (ok)
                out->rank = 1;
            break;
        case QD_OP_SQUEEZE: /* [1] -> scalar */
            ok = eval(qd_input(n, 0), out, depth) && out->rank == 1 && out->n == 1;
            if (ok)
                out->rank = 0;
            break;
        case QD_OP_ADD:
        case QD_OP_SUB:
        case QD_OP_MUL:
        case QD_OP_DIV: ok = eval_arith(n, out, depth); break;
        case QD_OP_EQUAL: ok = eval_equal(n, out, depth); break;
        case QD_OP_WHERE: ok = eval_where(n, out, depth); break;
        case QD_OP_RESHAPE: /* a shape vector reshaped to 1-D (or a scalar) */
            ok = (v->rank == 0 || v->rank == 1) && eval(qd_input(n, 0), out, depth) &&
                 (v->rank == 1 || out->n == 1);
            if (ok)
                out->rank = v->rank;
            break;
        default: break;
        }
    }
    return ok ? 1 : from_shape(v, out);
}

int qd_symvec_eval(const qd_value *v, qd_symvec *out)
{
    sv_unknown(out, 0, 0);
    return eval(v, out, 0);
}
