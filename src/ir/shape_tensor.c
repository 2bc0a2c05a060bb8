/* Shape functions of elementwise ops and of the layout and shape-computation
 * ops (Reshape, Transpose, Concat, Slice, Gather, Shape, ...). */
#include <string.h>

#include "base/alloc.h"
#include "ir/shape_internal.h"

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        qd_status st_ = (expr);                                                                    \
        if (st_ != QD_OK)                                                                          \
            return st_;                                                                            \
    } while (0)

/* Longest integer list (axes, pads, starts...) read from an attribute or a
 * constant input; twice the rank covers pads. */
#define LIST_MAX (4 * QD_MAX_RANK)

/* The common dtype of inputs [from, to), ignoring unknown ones. ONNX binds
 * them to one type variable T. */
static qd_status same_dtype(qd_graph *g, const qd_node *n, int from, int to, qd_dtype *out)
{
    *out = QD_DT_UNDEFINED;
    for (int i = from; i < to; i++) {
        qd_dtype d = qd_input_dtype(n, i);
        if (d == QD_DT_UNDEFINED)
            continue;
        if (*out != QD_DT_UNDEFINED && d != *out)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "input types do not agree: %s and %s", qd_dtype_name(*out),
                                qd_dtype_name(d));
        *out = d;
    }
    return QD_OK;
}

/* Broadcasts inputs [from, to) into out; an error names the two shapes. */
static qd_status broadcast_inputs(qd_graph *g, const qd_node *n, int from, int to, qd_shp *out)
{
    qd_shp acc;
    qd_shp_of(qd_input(n, from), &acc);
    for (int i = from + 1; i < to; i++) {
        qd_shp s, r;
        qd_shp_of(qd_input(n, i), &s);
        if (qd_shp_broadcast(&acc, &s, &r) != 0) {
            char a[128], b[128];
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "shapes %s and %s do not broadcast",
                                qd_shp_str(&acc, a, sizeof a), qd_shp_str(&s, b, sizeof b));
        }
        acc = r;
    }
    *out = acc;
    return QD_OK;
}

static int is_variadic(qd_op op)
{
    return op == QD_OP_MAX || op == QD_OP_MIN || op == QD_OP_SUM || op == QD_OP_MEAN;
}

qd_status qd_shape_broadcast(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, is_variadic(n->op) ? 1 : 2));
    qd_dtype dt;
    qd_shp s;
    TRY(same_dtype(g, n, 0, n->n_inputs, &dt));
    TRY(broadcast_inputs(g, n, 0, n->n_inputs, &s));
    return qd_set_output(g, n, 0, dt, &s);
}

/* Pow: base and exponent may differ in type; the result is the base's. */
qd_status qd_shape_broadcast_first_type(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_shp s;
    TRY(broadcast_inputs(g, n, 0, n->n_inputs, &s));
    return qd_set_output(g, n, 0, qd_input_dtype(n, 0), &s);
}

/* Comparisons and logic: inputs share a type, the result is bool. */
qd_status qd_shape_broadcast_bool(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_dtype dt;
    qd_shp s;
    TRY(same_dtype(g, n, 0, n->n_inputs, &dt));
    TRY(broadcast_inputs(g, n, 0, n->n_inputs, &s));
    return qd_set_output(g, n, 0, QD_DT_BOOL, &s);
}

qd_status qd_shape_where(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 3));
    qd_dtype dt;
    qd_shp s;
    TRY(same_dtype(g, n, 1, 3, &dt));
    TRY(broadcast_inputs(g, n, 0, 3, &s));
    return qd_set_output(g, n, 0, dt, &s);
}

qd_status qd_shape_cast(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    int64_t to;
    TRY(qd_node_attr_int(g, n, "to", -1, &to));
    if (to == -1)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "attribute 'to' is required");
    if (to <= QD_DT_UNDEFINED || to > QD_DT_BFLOAT16)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED, "cannot cast to data type %lld",
                            (long long)to);
    qd_shp s;
    qd_shp_of(qd_input(n, 0), &s);
    return qd_set_output(g, n, 0, (qd_dtype)to, &s);
}

/* ---- Reshape ---- */

/* A product of dims split into its known part and its symbols, so that
 * batch*3*8*8 / batch = 192 can be worked out. */
typedef struct sym_product {
    int64_t known;
    const char *syms[QD_MAX_RANK];
    int n_syms;
    int n_unknown; /* unknown dims without a symbol */
    int overflow;
} sym_product;

static void product_add(sym_product *p, int64_t d, const char *sym)
{
    if (d >= 0) {
        if (qd_mul_i64(p->known, d, &p->known) != 0)
            p->overflow = 1;
    } else if (sym) {
        p->syms[p->n_syms++] = sym;
    } else {
        p->n_unknown++;
    }
}

/* Fills out.d[minus] (the -1 entry, or -1 for none) from the element count,
 * or checks the counts agree when everything is known. */
static qd_status reshape_infer_rest(qd_graph *g, const qd_node *n, const qd_shp *x, qd_shp *out,
                                    int minus)
{
    if (x->rank < 0)
        return QD_OK;
    sym_product in = {1, {0}, 0, 0, 0}, want = {1, {0}, 0, 0, 0};
    for (int i = 0; i < x->rank; i++)
        product_add(&in, x->d[i], x->sym[i]);
    for (int i = 0; i < out->rank; i++)
        if (i != minus)
            product_add(&want, out->d[i], out->sym[i]);
    if (in.overflow || want.overflow || in.n_unknown || want.n_unknown)
        return QD_OK;
    /* Cancel the symbols that appear on both sides. */
    int used[QD_MAX_RANK] = {0};
    for (int j = 0; j < want.n_syms; j++) {
        int found = 0;
        for (int i = 0; i < in.n_syms && !found; i++) {
            if (!used[i] && strcmp(in.syms[i], want.syms[j]) == 0)
                used[i] = found = 1;
        }
        if (!found)
            return QD_OK;
    }
    const char *rest = NULL;
    int n_rest = 0;
    for (int i = 0; i < in.n_syms; i++) {
        if (!used[i]) {
            rest = in.syms[i];
            n_rest++;
        }
    }
    if (minus < 0) {
        if (n_rest == 0 && in.known != want.known) {
            char a[128], b[128];
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "cannot reshape %s (%lld elements) into %s (%lld elements)",
                                qd_shp_str(x, a, sizeof a), (long long)in.known,
                                qd_shp_str(out, b, sizeof b), (long long)want.known);
        }
        return QD_OK;
    }
    if (n_rest == 0) {
        if (want.known == 0) /* -1 next to a 0 dim is ambiguous */
            return QD_OK;
        if (in.known % want.known != 0) {
            char a[128], b[128];
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "cannot reshape %s (%lld elements) into %s",
                                qd_shp_str(x, a, sizeof a), (long long)in.known,
                                qd_shp_str(out, b, sizeof b));
        }
        out->d[minus] = in.known / want.known;
    } else if (n_rest == 1 && in.known == want.known) {
        out->sym[minus] = rest;
    }
    return QD_OK;
}

qd_status qd_shape_reshape(qd_graph *g, qd_node *n)
{
    const qd_attr *shape_attr = qd_node_attr(n, "shape"); /* opset < 5 */
    TRY(qd_need_inputs(g, n, shape_attr ? 1 : 2));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t allowzero;
    TRY(qd_node_attr_int(g, n, "allowzero", 0, &allowzero));

    qd_symvec sv;
    if (shape_attr) {
        const int64_t *vals;
        size_t count;
        TRY(qd_node_attr_ints(g, n, "shape", &vals, &count));
        if (count > QD_SYMVEC_MAX)
            return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED, "target rank %zu is too large",
                                count);
        memset(&sv, 0, sizeof sv);
        sv.rank = 1;
        sv.n = (int)count;
        for (size_t i = 0; i < count; i++) {
            sv.v[i] = vals[i];
            sv.known[i] = 1;
        }
    } else if (!qd_symvec_eval(n->inputs[1], &sv)) {
        return qd_set_output(g, n, 0, dt, NULL);
    }
    if (sv.rank != 1)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "the target shape must be 1-D");
    if (sv.n > QD_MAX_RANK)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED,
                            "target rank %d exceeds the supported maximum %d", sv.n, QD_MAX_RANK);
    qd_shp_unknown_dims(&out, sv.n);
    int minus = -1;
    for (int i = 0; i < sv.n; i++) {
        if (!sv.known[i]) {
            out.sym[i] = sv.sym[i];
            continue;
        }
        int64_t v = sv.v[i];
        if (v == -1) {
            if (minus >= 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "the target shape has more than one -1");
            minus = i;
        } else if (v == 0 && !allowzero) {
            /* 0 copies the input's dim at the same position. */
            if (x.rank >= 0 && i >= x.rank)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "target dim %d is 0 but the input has rank %d", i, x.rank);
            if (x.rank >= 0)
                qd_shp_copy_dim(&out, i, &x, i);
        } else if (v < 0) {
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid target dim %lld",
                                (long long)v);
        } else {
            out.d[i] = v;
        }
    }
    TRY(reshape_infer_rest(g, n, &x, &out, minus));
    return qd_set_output(g, n, 0, dt, &out);
}

/* ---- layout ---- */

qd_status qd_shape_transpose(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    const int64_t *perm;
    size_t np;
    TRY(qd_node_attr_ints(g, n, "perm", &perm, &np));
    if (!perm && x.rank < 0)
        return qd_set_output(g, n, 0, n->inputs[0]->dtype, NULL);
    int rank = perm ? (int)(np > QD_MAX_RANK ? QD_MAX_RANK + 1 : np) : x.rank;
    if (rank > QD_MAX_RANK || (x.rank >= 0 && rank != x.rank))
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "perm has %zu entries for rank %d", np,
                            x.rank);
    qd_shp_unknown_dims(&out, rank);
    int seen[QD_MAX_RANK] = {0};
    for (int i = 0; i < rank; i++) {
        int64_t p = perm ? perm[i] : rank - 1 - i;
        if (p < 0 || p >= rank || seen[p])
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "perm is not a permutation of 0..%d",
                                rank - 1);
        seen[p] = 1;
        if (x.rank >= 0)
            qd_shp_copy_dim(&out, i, &x, (int)p);
    }
    return qd_set_output(g, n, 0, n->inputs[0]->dtype, &out);
}

qd_status qd_shape_flatten(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    int64_t axis;
    TRY(qd_node_attr_int(g, n, "axis", 1, &axis));
    qd_shp_unknown_dims(&out, 2);
    if (x.rank >= 0) {
        if (axis < -(int64_t)x.rank || axis > x.rank)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "axis %lld is out of range for rank %d", (long long)axis, x.rank);
        int a = (int)(axis < 0 ? axis + x.rank : axis);
        out.d[0] = qd_shp_product(&x, 0, a, &out.sym[0]);
        out.d[1] = qd_shp_product(&x, a, x.rank, &out.sym[1]);
        if (out.d[0] == -2 || out.d[1] == -2)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "element count overflows");
    }
    return qd_set_output(g, n, 0, n->inputs[0]->dtype, &out);
}

/* Normalises axes against rank, rejecting duplicates; marks them in mask. */
static qd_status axes_mask(qd_graph *g, const qd_node *n, const int64_t *axes, int count,
                           int rank, int *mask)
{
    memset(mask, 0, (size_t)rank * sizeof *mask);
    for (int i = 0; i < count; i++) {
        int a;
        TRY(qd_axis(g, n, axes[i], rank, &a));
        if (mask[a])
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "axis %lld is repeated",
                                (long long)axes[i]);
        mask[a] = 1;
    }
    return QD_OK;
}

/* Element count of a 1-D list input when only its shape is known. */
static int list_length(const qd_node *n, int input)
{
    const qd_value *v = qd_input(n, input);
    if (v && v->rank == 1 && v->dims[0] >= 0 && v->dims[0] <= LIST_MAX)
        return (int)v->dims[0];
    return -1;
}

qd_status qd_shape_squeeze(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t axes[LIST_MAX];
    int count;
    qd_list_state state;
    TRY(qd_int_list(g, n, "axes", 1, axes, LIST_MAX, &count, &state));
    if (x.rank < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    if (state == QD_LIST_UNKNOWN) {
        int len = list_length(n, 1);
        if (len < 0 || len > x.rank)
            return qd_set_output(g, n, 0, dt, NULL);
        qd_shp_unknown_dims(&out, x.rank - len);
        return qd_set_output(g, n, 0, dt, &out);
    }
    int mask[QD_MAX_RANK];
    if (state == QD_LIST_KNOWN && count > 0) {
        TRY(axes_mask(g, n, axes, count, x.rank, mask));
        for (int i = 0; i < x.rank; i++)
            if (mask[i] && x.d[i] >= 0 && x.d[i] != 1)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "cannot squeeze axis %d of size %lld", i, (long long)x.d[i]);
    } else {
        /* No axes: every dim of size 1 goes; an unknown dim might be 1. */
        for (int i = 0; i < x.rank; i++) {
            if (x.d[i] < 0)
                return qd_set_output(g, n, 0, dt, NULL);
            mask[i] = x.d[i] == 1;
        }
    }
    qd_shp_unknown_dims(&out, 0);
    for (int i = 0; i < x.rank; i++)
        if (!mask[i])
            qd_shp_copy_dim(&out, out.rank++, &x, i);
    return qd_set_output(g, n, 0, dt, &out);
}

qd_status qd_shape_unsqueeze(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t axes[LIST_MAX];
    int count;
    qd_list_state state;
    TRY(qd_int_list(g, n, "axes", 1, axes, LIST_MAX, &count, &state));
    if (state == QD_LIST_ABSENT)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "needs axes");
    if (state == QD_LIST_UNKNOWN)
        count = list_length(n, 1);
    if (x.rank < 0 || count < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    int rank = x.rank + count;
    if (rank > QD_MAX_RANK)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED,
                            "output rank %d exceeds the supported maximum %d", rank, QD_MAX_RANK);
    qd_shp_unknown_dims(&out, rank);
    if (state == QD_LIST_UNKNOWN)
        return qd_set_output(g, n, 0, dt, &out);
    int mask[QD_MAX_RANK];
    TRY(axes_mask(g, n, axes, count, rank, mask));
    for (int i = 0, k = 0; i < rank; i++) {
        if (mask[i])
            out.d[i] = 1;
        else
            qd_shp_copy_dim(&out, i, &x, k++);
    }
    return qd_set_output(g, n, 0, dt, &out);
}

qd_status qd_shape_concat(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    int64_t axis;
    if (!qd_node_attr(n, "axis") && qd_default_opset(g) >= 4)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "attribute 'axis' is required");
    TRY(qd_node_attr_int(g, n, "axis", 1, &axis));
    qd_dtype dt;
    TRY(same_dtype(g, n, 0, n->n_inputs, &dt));
    int rank = -1;
    for (int i = 0; i < n->n_inputs; i++) {
        const qd_value *v = n->inputs[i];
        if (!v)
            return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "input %d is required", i);
        if (v->rank < 0)
            continue;
        if (rank >= 0 && v->rank != rank)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "inputs have different ranks (%d and %d)", rank, v->rank);
        rank = v->rank;
    }
    if (rank < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    if (rank == 0)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "cannot concatenate scalars");
    int a;
    TRY(qd_axis(g, n, axis, rank, &a));
    qd_shp out;
    qd_shp_unknown_dims(&out, rank);
    out.d[a] = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        qd_shp s;
        qd_shp_of(n->inputs[i], &s);
        if (s.rank < 0) {
            out.d[a] = -1;
            continue;
        }
        for (int j = 0; j < rank; j++) {
            if (j == a) {
                if (out.d[a] >= 0 && (s.d[j] < 0 || qd_add_i64(out.d[a], s.d[j], &out.d[a])))
                    out.d[a] = -1;
            } else if (s.d[j] >= 0) {
                if (out.d[j] >= 0 && out.d[j] != s.d[j]) {
                    char b1[128], b2[128];
                    qd_shp prev;
                    qd_shp_of(n->inputs[0], &prev);
                    return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                        "input %d (%s) does not match %s outside axis %d", i,
                                        qd_shp_str(&s, b1, sizeof b1),
                                        qd_shp_str(&prev, b2, sizeof b2), a);
                }
                out.d[j] = s.d[j];
                out.sym[j] = NULL;
            } else if (out.d[j] < 0 && !out.sym[j]) {
                out.sym[j] = s.sym[j];
            }
        }
    }
    return qd_set_output(g, n, 0, dt, &out);
}

qd_status qd_shape_split(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t axis, num_outputs;
    TRY(qd_node_attr_int(g, n, "axis", 0, &axis));
    TRY(qd_node_attr_int(g, n, "num_outputs", -1, &num_outputs));
    int nout = n->n_outputs;
    if (nout < 1)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "has no outputs");
    /* One spare slot so that a list longer than the outputs is detected. */
    int64_t *sizes = qd_calloc((size_t)nout + 1, sizeof *sizes);
    if (!sizes)
        return qd_node_fail(g, n, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    int count;
    qd_list_state state;
    qd_status st = qd_int_list(g, n, "split", 1, sizes, nout + 1, &count, &state);
    if (st != QD_OK)
        goto done;
    if (x.rank < 0) {
        for (int i = 0; i < nout && st == QD_OK; i++)
            st = qd_set_output(g, n, i, dt, NULL);
        goto done;
    }
    int a;
    if ((st = qd_axis(g, n, axis, x.rank, &a)) != QD_OK)
        goto done;
    int64_t dim = x.d[a];
    if (state == QD_LIST_KNOWN && count > 0) {
        int64_t sum = 0;
        if (count != nout) {
            st = qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "'split' has %d entries for %d outputs",
                              count, nout);
            goto done;
        }
        for (int i = 0; i < count; i++) {
            if (sizes[i] < 0 || qd_add_i64(sum, sizes[i], &sum) != 0) {
                st = qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid split size %lld",
                                  (long long)sizes[i]);
                goto done;
            }
        }
        if (dim >= 0 && sum != dim) {
            st = qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                              "split sizes add up to %lld but axis %d has %lld", (long long)sum, a,
                              (long long)dim);
            goto done;
        }
    } else if (state == QD_LIST_UNKNOWN || dim < 0) {
        for (int i = 0; i < nout; i++)
            sizes[i] = -1;
    } else {
        /* Equal parts; opset 18's num_outputs lets the last one be smaller. */
        int64_t chunk = dim / nout + (dim % nout != 0);
        if (dim % nout != 0 && num_outputs < 0) {
            st = qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                              "axis %d of size %lld does not split into %d equal parts", a,
                              (long long)dim, nout);
            goto done;
        }
        for (int i = 0; i < nout; i++) {
            int64_t left = dim - chunk * i;
            sizes[i] = left < chunk ? (left > 0 ? left : 0) : chunk;
        }
    }
    for (int i = 0; i < nout && st == QD_OK; i++) {
        qd_shp out = x;
        out.d[a] = sizes[i];
        out.sym[a] = NULL;
        if (sizes[i] < 0 && nout == 1)
            out.sym[a] = x.sym[a];
        st = qd_set_output(g, n, i, dt, &out);
    }
done:
    qd_free(sizes);
    return st;
}

/* ---- Slice ---- */

int64_t qd_slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first)
{
    if (start < 0)
        start += dim;
    if (end < 0)
        end += dim;
    if (step > 0) {
        start = start < 0 ? 0 : start > dim ? dim : start;
        end = end < 0 ? 0 : end > dim ? dim : end;
        *first = start;
        return end > start ? (end - start - 1) / step + 1 : 0;
    }
    start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
    end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
    *first = start;
    /* Negate the step in unsigned arithmetic: INT64_MIN has no positive. */
    uint64_t mag = (uint64_t)0 - (uint64_t)step;
    return start > end ? (int64_t)((uint64_t)(start - end - 1) / mag) + 1 : 0;
}

qd_status qd_shape_slice(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    int attr_form = qd_node_attr(n, "starts") != NULL; /* opset < 10 */
    if (!attr_form)
        TRY(qd_need_inputs(g, n, 3));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    if (x.rank < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    int64_t starts[LIST_MAX], ends[LIST_MAX], axes[LIST_MAX], steps[LIST_MAX];
    int ns, ne, na, nst;
    qd_list_state ss, se, sa, sst;
    TRY(qd_int_list(g, n, "starts", 1, starts, LIST_MAX, &ns, &ss));
    TRY(qd_int_list(g, n, "ends", 2, ends, LIST_MAX, &ne, &se));
    TRY(qd_int_list(g, n, "axes", 3, axes, LIST_MAX, &na, &sa));
    TRY(qd_int_list(g, n, NULL, 4, steps, LIST_MAX, &nst, &sst));
    if (ss == QD_LIST_ABSENT || se == QD_LIST_ABSENT)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "needs starts and ends");
    out = x;
    if (sa == QD_LIST_UNKNOWN || sst == QD_LIST_UNKNOWN) {
        qd_shp_unknown_dims(&out, x.rank);
        return qd_set_output(g, n, 0, dt, &out);
    }
    int count = ss == QD_LIST_KNOWN ? ns : se == QD_LIST_KNOWN ? ne : na;
    if (ss == QD_LIST_UNKNOWN && se == QD_LIST_UNKNOWN && sa == QD_LIST_ABSENT) {
        qd_shp_unknown_dims(&out, x.rank);
        return qd_set_output(g, n, 0, dt, &out);
    }
    if ((ss == QD_LIST_KNOWN && ns != count) || (se == QD_LIST_KNOWN && ne != count) ||
        (sa == QD_LIST_KNOWN && na != count) || (sst == QD_LIST_KNOWN && nst != count))
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                            "starts, ends, axes and steps have different lengths");
    if (sa != QD_LIST_KNOWN)
        for (int i = 0; i < count; i++)
            axes[i] = i;
    int mask[QD_MAX_RANK];
    if (count > x.rank)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "slices %d axes of a rank %d input",
                            count, x.rank);
    TRY(axes_mask(g, n, axes, count, x.rank, mask));
    for (int i = 0; i < count; i++) {
        int a = (int)(axes[i] < 0 ? axes[i] + x.rank : axes[i]);
        int64_t step = sst == QD_LIST_KNOWN ? steps[i] : 1;
        if (step == 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "step is 0");
        int whole = ss == QD_LIST_KNOWN && se == QD_LIST_KNOWN && step == 1 && starts[i] == 0 &&
                    ends[i] >= INT32_MAX;
        if (whole)
            continue; /* x[:] keeps the dim, symbol included */
        out.sym[a] = NULL;
        int64_t first;
        if (ss != QD_LIST_KNOWN || se != QD_LIST_KNOWN || x.d[a] < 0)
            out.d[a] = -1;
        else
            out.d[a] = qd_slice_axis(x.d[a], starts[i], ends[i], step, &first);
    }
    return qd_set_output(g, n, 0, dt, &out);
}

qd_status qd_shape_gather(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_shp data, idx, out;
    qd_shp_of(n->inputs[0], &data);
    qd_shp_of(n->inputs[1], &idx);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t axis;
    TRY(qd_node_attr_int(g, n, "axis", 0, &axis));
    qd_dtype it = n->inputs[1]->dtype;
    if (it != QD_DT_UNDEFINED && it != QD_DT_INT32 && it != QD_DT_INT64)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "indices must be int32 or int64, not %s",
                            qd_dtype_name(it));
    if (data.rank < 0 || idx.rank < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    if (data.rank == 0)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "cannot gather from a scalar");
    int a;
    TRY(qd_axis(g, n, axis, data.rank, &a));
    int rank = data.rank - 1 + idx.rank;
    if (rank > QD_MAX_RANK)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED,
                            "output rank %d exceeds the supported maximum %d", rank, QD_MAX_RANK);
    /* Constant indices can be checked against a known dim. */
    const qd_tensor *k = n->inputs[1]->konst;
    if (k && data.d[a] >= 0 && qd_dtype_is_int(k->dtype)) {
        int64_t count = qd_numel(k->rank, k->dims);
        for (int64_t i = 0; i < count; i++) {
            int64_t v = qd_tensor_get_i64(k, i);
            if (v < -data.d[a] || v >= data.d[a])
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "index %lld is out of range for axis %d of size %lld",
                                    (long long)v, a, (long long)data.d[a]);
        }
    }
    qd_shp_unknown_dims(&out, rank);
    int j = 0;
    for (int i = 0; i < a; i++)
        qd_shp_copy_dim(&out, j++, &data, i);
    for (int i = 0; i < idx.rank; i++)
        qd_shp_copy_dim(&out, j++, &idx, i);
    for (int i = a + 1; i < data.rank; i++)
        qd_shp_copy_dim(&out, j++, &data, i);
    return qd_set_output(g, n, 0, dt, &out);
}

qd_status qd_shape_pad(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t pads[LIST_MAX], axes[LIST_MAX];
    int np, na;
    qd_list_state sp, sa;
    TRY(qd_int_list(g, n, "pads", 1, pads, LIST_MAX, &np, &sp));
    TRY(qd_int_list(g, n, NULL, 3, axes, LIST_MAX, &na, &sa));
    if (sp == QD_LIST_ABSENT)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "needs pads");
    if (x.rank < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    if (sp == QD_LIST_UNKNOWN || sa == QD_LIST_UNKNOWN) {
        qd_shp_unknown_dims(&out, x.rank);
        return qd_set_output(g, n, 0, dt, &out);
    }
    if (sa != QD_LIST_KNOWN) {
        na = x.rank;
        for (int i = 0; i < na; i++)
            axes[i] = i;
    }
    if (np != 2 * na)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "has %d pads for %d axes", np, na);
    int mask[QD_MAX_RANK];
    if (na > x.rank)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "pads %d axes of a rank %d input", na,
                            x.rank);
    TRY(axes_mask(g, n, axes, na, x.rank, mask));
    out = x;
    for (int i = 0; i < na; i++) {
        int a = (int)(axes[i] < 0 ? axes[i] + x.rank : axes[i]);
        int64_t add;
        if (qd_add_i64(pads[i], pads[i + na], &add) != 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "pads overflow");
        if (add == 0)
            continue;
        out.sym[a] = NULL;
        if (x.d[a] < 0) {
            out.d[a] = -1;
        } else if (qd_add_i64(x.d[a], add, &out.d[a]) != 0 || out.d[a] < 0) {
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "pads %lld,%lld make axis %d of size %lld negative",
                                (long long)pads[i], (long long)pads[i + na], a,
                                (long long)x.d[a]);
        }
    }
    return qd_set_output(g, n, 0, dt, &out);
}

/* A qd_shp from a symbolic shape vector; negative known entries rejected. */
static qd_status shp_from_symvec(qd_graph *g, const qd_node *n, const qd_symvec *sv, qd_shp *out)
{
    if (sv->rank != 1)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "the shape input must be 1-D");
    if (sv->n > QD_MAX_RANK)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED,
                            "rank %d exceeds the supported maximum %d", sv->n, QD_MAX_RANK);
    qd_shp_unknown_dims(out, sv->n);
    for (int i = 0; i < sv->n; i++) {
        if (sv->known[i] && sv->v[i] < 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid dim %lld in the shape input",
                                (long long)sv->v[i]);
        out->d[i] = sv->known[i] ? sv->v[i] : -1;
        out->sym[i] = sv->known[i] ? NULL : sv->sym[i];
    }
    return QD_OK;
}

qd_status qd_shape_expand(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_shp x, s, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    qd_symvec sv;
    if (!qd_symvec_eval(n->inputs[1], &sv))
        return qd_set_output(g, n, 0, dt, NULL);
    TRY(shp_from_symvec(g, n, &sv, &s));
    if (x.rank < 0) /* the output rank is max(rank(x), len(shape)) */
        return qd_set_output(g, n, 0, dt, NULL);
    if (qd_shp_broadcast(&x, &s, &out) != 0) {
        char a[128], b[128];
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "cannot expand %s to %s",
                            qd_shp_str(&x, a, sizeof a), qd_shp_str(&s, b, sizeof b));
    }
    return qd_set_output(g, n, 0, dt, &out);
}

qd_status qd_shape_tile(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t reps[LIST_MAX];
    int count;
    int r = qd_const_ints(n->inputs[1], reps, LIST_MAX, &count);
    if (x.rank < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    if (r != 1) {
        qd_shp_unknown_dims(&out, x.rank);
        return qd_set_output(g, n, 0, dt, &out);
    }
    if (count != x.rank)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "has %d repeats for rank %d", count,
                            x.rank);
    out = x;
    for (int i = 0; i < x.rank; i++) {
        if (reps[i] < 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "negative repeat %lld",
                                (long long)reps[i]);
        if (reps[i] == 1)
            continue;
        out.sym[i] = NULL;
        if (reps[i] == 0)
            out.d[i] = 0;
        else if (x.d[i] >= 0 && qd_mul_i64(x.d[i], reps[i], &out.d[i]) != 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "size overflows");
    }
    return qd_set_output(g, n, 0, dt, &out);
}

/* ---- shape computation ---- */

/* [start, end) of Shape's output within the input's dims (opset 15). */
qd_status qd_shape_attr_range(qd_graph *g, const qd_node *n, int rank, int *start, int *end)
{
    int64_t s, e;
    TRY(qd_node_attr_int(g, n, "start", 0, &s));
    TRY(qd_node_attr_int(g, n, "end", rank, &e));
    if (s < 0)
        s += rank;
    if (e < 0)
        e += rank;
    s = s < 0 ? 0 : s > rank ? rank : s;
    e = e < 0 ? 0 : e > rank ? rank : e;
    *start = (int)s;
    *end = (int)(e > s ? e : s);
    return QD_OK;
}

qd_status qd_shape_shape(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp out;
    qd_shp_unknown_dims(&out, 1);
    const qd_value *x = n->inputs[0];
    if (x->rank >= 0) {
        int s, e;
        TRY(qd_shape_attr_range(g, n, x->rank, &s, &e));
        out.d[0] = e - s;
    }
    return qd_set_output(g, n, 0, QD_DT_INT64, &out);
}

qd_status qd_shape_size(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp out;
    qd_shp_unknown_dims(&out, 0);
    return qd_set_output(g, n, 0, QD_DT_INT64, &out);
}

qd_status qd_shape_constant(qd_graph *g, qd_node *n)
{
    qd_shp out;
    qd_shp_unknown_dims(&out, 0);
    const qd_attr *a;
    if ((a = qd_node_attr(n, "value"))) {
        const qd_tensor *t;
        TRY(qd_node_attr_tensor(g, n, "value", &t));
        if (!t || t->rank > QD_MAX_RANK)
            return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "attribute 'value' is invalid");
        out.rank = t->rank;
        memcpy(out.d, t->dims, (size_t)t->rank * sizeof *t->dims);
        return qd_set_output(g, n, 0, t->dtype, &out);
    }
    if ((a = qd_node_attr(n, "value_float"))) {
        float f;
        TRY(qd_node_attr_float(g, n, "value_float", 0, &f));
        return qd_set_output(g, n, 0, QD_DT_FLOAT, &out);
    }
    if ((a = qd_node_attr(n, "value_int"))) {
        int64_t i;
        TRY(qd_node_attr_int(g, n, "value_int", 0, &i));
        return qd_set_output(g, n, 0, QD_DT_INT64, &out);
    }
    if ((a = qd_node_attr(n, "value_floats"))) {
        const float *f;
        size_t count;
        TRY(qd_node_attr_floats(g, n, "value_floats", &f, &count));
        out.rank = 1;
        out.d[0] = (int64_t)count;
        return qd_set_output(g, n, 0, QD_DT_FLOAT, &out);
    }
    if ((a = qd_node_attr(n, "value_ints"))) {
        const int64_t *v;
        size_t count;
        TRY(qd_node_attr_ints(g, n, "value_ints", &v, &count));
        out.rank = 1;
        out.d[0] = (int64_t)count;
        return qd_set_output(g, n, 0, QD_DT_INT64, &out);
    }
    if ((a = qd_node_attr(n, "value_string"))) {
        return qd_set_output(g, n, 0, QD_DT_STRING, &out);
    }
    if ((a = qd_node_attr(n, "value_strings"))) {
        out.rank = 1;
        out.d[0] = a->type == QD_ATTR_STRINGS ? (int64_t)a->n : -1;
        return qd_set_output(g, n, 0, QD_DT_STRING, &out);
    }
    if (qd_node_attr(n, "sparse_value"))
        return qd_set_output(g, n, 0, QD_DT_UNDEFINED, NULL);
    return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "has no value attribute");
}

qd_status qd_shape_constant_of_shape(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    const qd_tensor *value;
    TRY(qd_node_attr_tensor(g, n, "value", &value));
    if (value && qd_numel(value->rank, value->dims) != 1)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL,
                            "attribute 'value' must hold one element");
    qd_dtype dt = value ? value->dtype : QD_DT_FLOAT;
    qd_symvec sv;
    qd_shp out;
    if (!qd_symvec_eval(n->inputs[0], &sv))
        return qd_set_output(g, n, 0, dt, NULL);
    TRY(shp_from_symvec(g, n, &sv, &out));
    return qd_set_output(g, n, 0, dt, &out);
}

/* Element count of Range(start, limit, delta): max(ceil((limit-start)/delta), 0). */
static qd_status range_count(qd_graph *g, const qd_node *n, const qd_tensor *s,
                             const qd_tensor *l, const qd_tensor *d, int64_t *out)
{
    if (qd_dtype_is_int(s->dtype)) {
        int64_t start = qd_tensor_get_i64(s, 0), limit = qd_tensor_get_i64(l, 0),
                delta = qd_tensor_get_i64(d, 0);
        if (delta == 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "delta is 0");
        int64_t span;
        if (start == INT64_MIN || qd_add_i64(limit, -start, &span) != 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "range is too long");
        if (delta == -1 && span == INT64_MIN)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "range is too long");
        int64_t q = span / delta; /* truncates toward zero; round up when positive */
        if (q * delta != span && (span > 0) == (delta > 0))
            q++;
        *out = q < 0 ? 0 : q;
        return QD_OK;
    }
    double start = qd_tensor_get_f64(s, 0), limit = qd_tensor_get_f64(l, 0),
           delta = qd_tensor_get_f64(d, 0);
    if (delta == 0 || delta != delta)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "delta is %g", delta);
    double q = (limit - start) / delta;
    if (!(q < 9e18))
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "range is too long");
    if (!(q > 0)) {
        *out = 0;
        return QD_OK;
    }
    int64_t c = (int64_t)q;
    if ((double)c < q)
        c++;
    *out = c < 0 ? 0 : c;
    return QD_OK;
}

qd_status qd_shape_range(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 3));
    qd_dtype dt;
    TRY(same_dtype(g, n, 0, 3, &dt));
    qd_shp out;
    qd_shp_unknown_dims(&out, 1);
    const qd_tensor *s = n->inputs[0]->konst, *l = n->inputs[1]->konst, *d = n->inputs[2]->konst;
    if (s && l && d) {
        if (qd_numel(s->rank, s->dims) != 1 || qd_numel(l->rank, l->dims) != 1 ||
            qd_numel(d->rank, d->dims) != 1)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "start, limit and delta must be scalars");
        TRY(range_count(g, n, s, l, d, &out.d[0]));
    }
    return qd_set_output(g, n, 0, dt, &out);
}
